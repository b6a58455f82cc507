"""`python -m syncd` is the same entry point as the `syncd` console script."""

import sys

from syncd.cli.commands import main

sys.exit(main())
