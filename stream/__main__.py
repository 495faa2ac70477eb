"""``python -m stream worker|contract ...`` (same as the ``linky-stream`` console script)."""

import sys

from stream.cli import main

sys.exit(main())
