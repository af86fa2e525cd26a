"""The project's one exception type and the CLI's exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran but failed (accuracy below threshold, a runtime fault)
EXIT_USAGE = 2  # bad arguments or bad input data: the user must change something


class FetalPlanesError(Exception):
    """An error the user can act on.

    ``message`` says what was wrong (naming the file, row or argument), ``hint``
    says what to do about it. ``exit_code`` is what the CLI exits with:
    2 for bad usage or input, 1 for a failure while running.
    """

    def __init__(self, message: str, hint: str = "", exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise a FetalPlanesError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FetalPlanesError(
            f"{purpose} needs the Python package '{module}', which is not importable here ({exc}).",
            hint=f"pip install 'fetalplanes[{extra}]' (or install '{module}' by hand)",
        ) from exc
