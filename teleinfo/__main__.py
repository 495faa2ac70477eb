"""``python -m teleinfo ...``"""

import sys

from teleinfo.cli import main

sys.exit(main())
