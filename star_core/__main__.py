"""``python -m star_core``: the ``star`` command line."""

import sys

from .cli import main

sys.exit(main())
