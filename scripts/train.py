"""Thin wrapper: `python scripts/train.py ARGS` is `tlrl train ARGS` (see tlrl.cli)."""
import sys

from tlrl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
