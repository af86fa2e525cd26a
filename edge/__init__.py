"""fetalplanes edge runtime: everything the box beside the scanner needs.

Imports only numpy, OpenCV and (inside its backend) the inference library.
Heavy or optional libraries (torch, tensorrt, pycuda, onnxruntime) are imported
where they are used, never here.
"""

__version__ = "0.1.0"

from edge.errors import FetalPlanesError  # noqa: E402,F401
