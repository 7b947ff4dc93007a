"""Command line: ``simulator <command>``; ``simulate`` is ``simulator simulate``.

User errors (bad flags, bad files, unstable systems asked for a number) print one line on stderr and
exit with status 2; no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import InputError

# Subcommand modules in simulator/commands/, each with add_parser(subparsers) and run(args) -> int.
COMMANDS = ("simulate_cmd", "profile_cmd", "plan_cmd", "report_cmd", "validate_cmd")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _load_commands() -> list:
    mods = []
    for name in COMMANDS:
        try:
            mods.append(importlib.import_module(f"simulator.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"simulator.commands.{name}":
                raise
    return mods


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="simulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for mod in _load_commands():
        mod.add_parser(sub)
    return parser


def _run(argv: list[str], prog_prefix: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args((prog_prefix or []) + argv)
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``simulator``."""
    return _run(sys.argv[1:] if argv is None else argv)


def simulate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``simulate`` (same as ``simulator simulate``)."""
    return _run(sys.argv[1:] if argv is None else argv, prog_prefix=["simulate"])


if __name__ == "__main__":
    sys.exit(main())
