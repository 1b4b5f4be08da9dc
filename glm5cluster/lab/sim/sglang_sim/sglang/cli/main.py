"""The `sglang` console script: `sglang serve ARGS` runs the server like launch_server."""

import sys

USAGE = "usage: sglang [-h] {serve,version} ...\n"


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] == "version":
        from sglang.version import __version__

        print(__version__)
        return 0
    if args[0] != "serve":
        sys.stderr.write(USAGE)
        sys.stderr.write(
            f"sglang: error: argument command: invalid choice: '{args[0]}' (choose from 'serve', 'version')\n"
        )
        return 2
    from sglang._sim.runner import run

    return run(args[1:], prog="sglang serve")


if __name__ == "__main__":
    sys.exit(main())
