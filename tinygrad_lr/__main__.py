"""`python -m tinygrad_lr`: the command line, the same as the `tinygrad-lr` script (see tinygrad_lr.cli)."""

from tinygrad_lr.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
