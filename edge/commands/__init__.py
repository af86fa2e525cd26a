"""The `fetalplanes` sub-commands of the box: one module per command, each with ``register(subparsers)``."""
