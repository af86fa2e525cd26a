"""STAND-INS for libraries that cannot be installed where the project is developed (tensorrt, pycuda).

They let unit tests exercise the project's own logic around those libraries; they
say nothing about the real libraries' behaviour. Install them with
:func:`install_fake_tensorrt` (through pytest's monkeypatch, so they vanish after the test).
"""

from __future__ import annotations

import sys
import types

from tests.fakes.fake_pycuda import make_fake_pycuda
from tests.fakes.fake_tensorrt import make_fake_tensorrt


def install_fake_tensorrt(monkeypatch, version: str = "10.3.0", gpu_name: str = "Fake GPU (stand-in)", compute_capability=(8, 7)):
    """Put a fake ``tensorrt`` and ``pycuda.driver`` into sys.modules; returns (trt, cuda)."""
    cuda = make_fake_pycuda(gpu_name, compute_capability)
    trt = make_fake_tensorrt(version, cuda)
    pkg = types.ModuleType("pycuda")
    pkg.__path__ = []  # a package, so that `import pycuda.driver` resolves from sys.modules
    pkg.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return trt, cuda


def hide_tensorrt(monkeypatch):
    """Make `import tensorrt` and `import pycuda.driver` fail as on a box without them."""
    for name in ("tensorrt", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)


def build_fake_engine(onnx_path, engine_path, trt, max_batch: int = 4):
    """Serialize an FP32 "engine" with the STAND-IN builder and write its sidecar (independent of calibration/)."""
    from pathlib import Path

    from edge.backends.engine_sidecar import EngineSidecar, write_sidecar
    from edge.files import sha256_file
    from edge.modelinfo import read_onnx_metadata

    info = read_onnx_metadata(str(onnx_path))
    builder = trt.Builder(trt.Logger())
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    assert trt.OnnxParser(network, None).parse(Path(onnx_path).read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    # the profile follows the network's own input where its dimensions are static (as a real build must)
    declared = list(network.get_input(0).shape)[1:]
    tail = [d if d > 0 else m for d, m in zip(declared, info.input_shape(1)[1:])] if declared else list(info.input_shape(1)[1:])
    profile.set_shape(network.get_input(0).name, [1] + tail, [1] + tail, [max_batch] + tail)
    config.add_optimization_profile(profile)
    Path(engine_path).write_bytes(builder.build_serialized_network(network, config))
    sidecar = EngineSidecar(
        model_info=info.to_dict(),
        precision="fp32",
        mode="fp32",
        tensorrt_version=trt.__version__,
        gpu_name="Fake GPU (stand-in)",
        compute_capability="8.7",
        onnx_path=str(Path(onnx_path).resolve()),
        onnx_sha256=sha256_file(onnx_path),
        profile={network.get_input(0).name: {"min": [1] + tail, "opt": [1] + tail, "max": [max_batch] + tail}},
    )
    write_sidecar(engine_path, sidecar)
    return Path(engine_path)
