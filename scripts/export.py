"""Thin wrapper: `python scripts/export.py ARGS` is `tlrl export ARGS` (see tlrl.cli)."""
import sys

from tlrl.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
