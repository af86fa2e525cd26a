"""Sub-commands of the calibration stage, registered into `fetalplanes` through an entry point."""

from edge.cli import register_modules

COMMAND_MODULES = (
    "calibration.commands.quantize",
    "calibration.commands.compare",
    "calibration.commands.build_engine",
    "calibration.commands.selftest",
)


def register(subparsers) -> None:
    register_modules(subparsers, COMMAND_MODULES)
