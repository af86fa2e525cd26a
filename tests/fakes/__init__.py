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
