"""Thin wrapper: `python scripts/plot.py ARGS` is `tlrl plot ARGS` (see tlrl.cli)."""
import sys

from tlrl.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
