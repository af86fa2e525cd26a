"""fetalplanes export: training (PyTorch), evaluation, ONNX export, the demo and the study's experiments.

May import ``edge`` and ``calibration``. torch is imported where used, so that `--help` works without it.
"""
