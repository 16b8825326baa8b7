"""`python -m deepest` is the `deepest` command."""

import sys

from .cli import main

sys.exit(main())
