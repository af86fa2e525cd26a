"""STAND-IN for ``pycuda.driver``: NOT pycuda, no GPU involved.

"Device memory" is a dict of numpy byte arrays keyed by fake addresses, so that
code written against pycuda (pagelocked_empty, mem_alloc, memcpy_*_async, Stream,
Device, retain_primary_context) can be exercised on a CPU. The fake TensorRT
engine (fake_tensorrt.py) reads and writes this memory by address.

As in CUDA/pycuda, the stack of current contexts belongs to each thread (a context
pushed in one thread is not current in another), and ``Context.detach()`` ends the
context object: detached while current it is also popped (pycuda's documented
pattern: push, work, detach); detached while not current it is counted in
``_state["detached_not_current"]`` (pycuda then pushes it itself, and from another
thread leaks it); a detached context cannot be pushed again.
"""

from __future__ import annotations

import itertools
import threading
import types

import numpy as np


class FakeCudaError(Exception):
    pass


def make_fake_pycuda(gpu_name: str = "Fake GPU (stand-in)", compute_capability: tuple[int, int] = (8, 7)):
    """A fresh module object standing in for ``pycuda.driver``."""
    mod = types.ModuleType("pycuda.driver")
    mod.__stand_in__ = True
    mod.Error = FakeCudaError
    memory: dict[int, np.ndarray] = {}
    addresses = itertools.count(0x10000, 0x10000)
    state = {"initialised": False, "allocated": 0, "freed": 0, "detached": 0, "detached_not_current": 0}
    local = threading.local()

    def stack() -> list:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    mod._memory, mod._state, mod._context_stack = memory, state, stack

    def init():
        state["initialised"] = True

    class DeviceAllocation:
        def __init__(self, nbytes: int):
            self.address = next(addresses)
            self.nbytes = int(nbytes)
            memory[self.address] = np.zeros(self.nbytes, np.uint8)
            state["allocated"] += 1

        def __int__(self):
            return self.address

        def free(self):
            if memory.pop(self.address, None) is not None:
                state["freed"] += 1

    class Stream:
        def __init__(self):
            self.handle = next(addresses)
            self.synchronized = 0

        def synchronize(self):
            self.synchronized += 1

    class Context:
        def __init__(self):
            self.valid = True

        def push(self):
            if not self.valid:
                raise FakeCudaError("cuCtxPushCurrent failed: invalid context (detached)")
            stack().append(self)

        @staticmethod
        def pop():  # pycuda: Context.pop() pops whatever context is current in this thread
            if not stack():
                raise FakeCudaError("cuCtxPopCurrent failed: no current context in this thread")
            stack().pop()

        def detach(self):
            if not self.valid:
                raise FakeCudaError("context::detach: cannot detach from invalid context")
            if stack() and stack()[-1] is self:
                stack().pop()
            else:
                state["detached_not_current"] += 1
            self.valid = False
            state["detached"] += 1

    class Device:
        def __init__(self, index: int):
            if not state["initialised"]:
                raise FakeCudaError("cuInit not called")
            if index != 0:
                raise FakeCudaError(f"invalid device ordinal {index}")

        def name(self):
            return gpu_name

        def compute_capability(self):
            return compute_capability

        def retain_primary_context(self):
            return Context()

    def _require_context():
        if not stack():
            raise FakeCudaError("no current CUDA context in this thread")

    def pagelocked_empty(shape, dtype):
        return np.empty(shape, dtype)

    def mem_alloc(nbytes):
        _require_context()
        return DeviceAllocation(nbytes)

    def memcpy_htod_async(dest, src, stream=None):
        _require_context()
        raw = np.ascontiguousarray(src).view(np.uint8).reshape(-1)
        buf = memory[int(dest)]
        assert raw.size <= buf.size, f"htod of {raw.size} bytes into a {buf.size}-byte allocation"
        buf[: raw.size] = raw

    def memcpy_htod(dest, src):
        memcpy_htod_async(dest, src)

    def memcpy_dtoh_async(dest, src, stream=None):
        _require_context()
        out = dest.view(np.uint8).reshape(-1)
        out[:] = memory[int(src)][: out.size]

    def read(address: int, shape, dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return memory[int(address)][:n].view(dtype).reshape(shape).copy()

    def write(address: int, array: np.ndarray) -> None:
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        memory[int(address)][: raw.size] = raw

    for fn in (init, pagelocked_empty, mem_alloc, memcpy_htod, memcpy_htod_async, memcpy_dtoh_async):
        setattr(mod, fn.__name__, fn)
    mod.Device, mod.Stream, mod.DeviceAllocation, mod.Context = Device, Stream, DeviceAllocation, Context
    mod._read, mod._write = read, write
    return mod
