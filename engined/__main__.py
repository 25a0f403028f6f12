"""``python -m engined``: the ``engined`` command line (serve, status, probe, check-config)."""

import sys

from engined.daemon._cli import main

if __name__ == "__main__":
    sys.exit(main())
