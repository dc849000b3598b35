"""The command line every walkthrough shares: `python examples/NN_name.py [--out-dir DIR] [--fast]`."""

import argparse
from collections.abc import Callable


def run(main: Callable[..., dict], doc: str) -> None:
    """Parse --out-dir and --fast, then call main(out_dir, fast=...)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out-dir", default=".", help="where to write the PNG pictures (default: here)")
    parser.add_argument("--fast", action="store_true", help="fewer epochs, for the test suite")
    args = parser.parse_args()
    main(args.out_dir, fast=args.fast)
