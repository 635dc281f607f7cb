"""``python -m benchmarks.bench``: the same as ``banter bench``."""

import sys

from benchmarks.bench import main

sys.exit(main())
