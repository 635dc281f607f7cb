"""``python -m streams`` is the ``banter`` command."""

import sys

from streams.cli import main

sys.exit(main())
