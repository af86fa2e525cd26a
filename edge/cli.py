"""`fetalplanes`: one console command, with sub-commands.

``edge`` registers its own commands (run, classify, doctor); the packages
above it (``fetaldata``, ``calibration``, ``export``) contribute theirs through the
``fetalplanes.commands`` entry-point group, so that ``edge`` never imports them
and the edge box runs without PyTorch.

Exit codes: 0 success, 1 failure, 2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from edge import __version__
from edge.errors import EXIT_FAILURE, EXIT_USAGE, FetalPlanesError
from edge.interrupts import handle_interrupts

EDGE_COMMAND_MODULES = ("edge.commands.run", "edge.commands.classify", "edge.commands.doctor")

Handler = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    summary: str,
    handler: Handler | None,
    example: str,
    description: str = "",
) -> argparse.ArgumentParser:
    """Add one sub-command whose --help says what it does, with an example."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=(description or summary),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(func=handler)
    return parser


def register_modules(subparsers: argparse._SubParsersAction, modules: Sequence[str]) -> None:
    """Call ``register(subparsers)`` of each command module (modules must import light)."""
    for module in modules:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # a command module this install does not carry
                continue
            raise
        mod.register(subparsers)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2 with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n  (see `{self.prog} --help`)\n")


def _plugins() -> list[Callable[[argparse._SubParsersAction], None]]:
    found = []
    try:
        from importlib.metadata import entry_points

        eps = entry_points()
        group = eps.select(group="fetalplanes.commands") if hasattr(eps, "select") else eps.get("fetalplanes.commands", [])
        specs = sorted({ep.value for ep in group})
    except Exception:  # pragma: no cover - broken metadata
        specs = []
    for spec in specs:
        module, _, attr = spec.partition(":")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except ImportError:
            continue  # that package is not installed on this box
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fetalplanes",
        description="Recognise standard maternal-fetal ultrasound planes, from training to the live box.",
        epilog="example:\n  fetalplanes demo --out demo_run\n\n`fetalplanes COMMAND --help` for each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fetalplanes {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    register_modules(sub, EDGE_COMMAND_MODULES)
    for register in _plugins():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        # SIGTERM (systemd stop, `kill`, a scheduler) takes Ctrl-C's path: every command's cleanup runs, exit 130
        with handle_interrupts():
            return int(args.func(args) or 0)
    except FetalPlanesError as exc:
        print(f"fetalplanes {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        how = f" ({exc.args[0]})" if exc.args and str(exc.args[0]).startswith("SIG") else ""
        print(f"fetalplanes {args.command}: interrupted{how}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # pragma: no cover
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
