"""`python -m sglang.launch_server ARGS` (same entry point as `sglang serve`)."""

import sys


def main(argv=None):
    from sglang._sim.runner import run

    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
