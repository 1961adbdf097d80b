"""Thin wrapper: `python scripts/evaluate.py ARGS` is `tlrl eval ARGS` (see tlrl.cli)."""
import sys

from tlrl.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
