"""Sub-commands of the dataset layer, registered into `fetalplanes` through an entry point."""

from edge.cli import register_modules

COMMAND_MODULES = ("fetaldata.commands.data",)


def register(subparsers) -> None:
    register_modules(subparsers, COMMAND_MODULES)
