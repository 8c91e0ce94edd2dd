"""``python -m durable_helpers.stubs``: (re)generate the gRPC stubs and print where they are."""

from __future__ import annotations

import argparse
import sys

from durable_helpers.stubs import ProtoCompileError, generate


def main(argv: list[str] | None = None) -> int:
    """Regenerate the stubs; print the cache folder. Exit code 1 with protoc's message on error.

    Example:
        >>> main(["--quiet"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="python -m durable_helpers.stubs", description=__doc__)
    parser.add_argument(
        "--protos", help="folder with .proto files (default: the project's protos/)"
    )
    parser.add_argument("--cache", help="cache root (default: ~/.cache/durable-helpers/stubs)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    try:
        folder = generate(args.protos, args.cache, force=True)
    except (ProtoCompileError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"Stubs generated in {folder}")
        for module in sorted(folder.glob("*.py")):
            print(f"  {module.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
