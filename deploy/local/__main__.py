"""``python -m deploy.local up|down|status|reset|fetch|env``."""

import sys

from deploy.local.stack import main

sys.exit(main())
