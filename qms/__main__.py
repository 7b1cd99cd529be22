"""`python -m qms` is the `qms` command."""
import sys

from qms.cli.main import main

sys.exit(main())
