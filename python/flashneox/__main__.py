"""`python -m flashneox <command> ...`: the flashneox command line (serve, generate, logits, ...)."""
import sys

from . import _core


def main() -> int:
    return _core.main(["flashneox", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
