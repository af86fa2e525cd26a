"""Sub-commands of the training/export stage, registered into `fetalplanes` through an entry point."""

from edge.cli import register_modules

COMMAND_MODULES = (
    "export.commands.train",
    "export.commands.evaluate",
    "export.commands.export_onnx",
    "export.commands.import_weights",
    "export.commands.demo",
    "export.commands.experiment",
    "export.commands.qat",
)


def register(subparsers) -> None:
    register_modules(subparsers, COMMAND_MODULES)
