"""`python -m tlrl ...` is the `tlrl` command (see `tlrl.cli`)."""
import sys

from tlrl.cli import main

sys.exit(main())
