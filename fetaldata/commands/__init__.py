"""The `fetalplanes` sub-commands of the dataset layer: one module per command, each with ``register(subparsers)``."""
