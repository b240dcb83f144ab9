"""python -m sluice.replica: one replica of a Python deployment, as the
platform runs it (sluice.serve.hosted)."""

import sys

from sluice.serve.hosted import main

if __name__ == "__main__":
    sys.exit(main())
