"""``python -m stayflow.sandbox``: what ``Sandbox.start(subprocess=True)`` runs."""

from __future__ import annotations

import argparse

from stayflow.sandbox.runner import serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stayflow.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state-file", default=None)
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited socket")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    serve_forever(args.host, args.port, args.state_file, fd=args.fd, announce=not args.quiet)


if __name__ == "__main__":
    main()
