"""Inference backends behind one interface (Polygraphy-style runners).

``open_runner(path)`` picks the implementation from the model file:
``*.onnx`` -> ONNX Runtime, ``*.engine``/``*.plan`` -> TensorRT. Each backend
imports its library only when activated.
"""

from edge.backends.base import Runner  # noqa: F401
from edge.backends.loader import open_runner, read_model_info  # noqa: F401
