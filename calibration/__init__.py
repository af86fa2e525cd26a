"""fetalplanes calibration: calibration sets, INT8 quantization (ONNX Runtime, TensorRT) and accuracy checks.

May import ``edge``; never ``export``. torch, tensorrt, pycuda and onnx are imported where used.
"""
