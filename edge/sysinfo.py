"""Facts about the machine: CPU and its INT8 instruction sets, GPU, Jetson, libraries.

Used by `fetalplanes doctor` and to stamp benchmark results (:func:`machine_stamp`).
Every parser here is a pure function of the text it is given (``/proc/cpuinfo``,
``nvidia-smi`` output, ``/etc/nv_tegra_release``, ``cv2.getBuildInformation()``),
so it is tested on canned inputs from machines we do not have. The readers around
them never raise: a fact that cannot be read is reported as missing.

Nothing here imports torch, tensorrt or pycuda: their presence is probed with
``importlib.util.find_spec`` and their versions read from package metadata.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- CPU

#: Instruction sets that matter for INT8 inference, and the /proc/cpuinfo flags
#: (x86 "flags", Arm "Features") that announce them.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"),
    "avx_vnni": ("avx_vnni", "avxvnni"),
    "amx_int8": ("amx_int8",),
    "asimddp": ("asimddp",),  # Arm dot product (SDOT/UDOT), ARMv8.2-A
    "i8mm": ("i8mm",),  # Arm int8 matrix multiply, ARMv8.6-A
}

# Arm CPU part numbers (MIDR "CPU part") of the cores found in Jetson boards and Arm servers.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
    "0x004": "Carmel (NVIDIA)",
}


@dataclass
class CpuInfo:
    """What /proc/cpuinfo says: model, logical CPUs, flags and the INT8-relevant subset."""

    model: str = "unknown"
    arch: str = "unknown"  # "x86_64" or "aarch64" (from the text), else platform.machine()
    logical_cpus: int = 0
    physical_cores: int = 0  # distinct (physical id, core id) on x86; one per processor on Arm
    flags: list[str] = field(default_factory=list)
    isa: dict[str, bool] = field(default_factory=dict)

    @property
    def int8_dot_product(self) -> bool:
        """True when the CPU has an 8-bit dot-product instruction (VNNI, AMX or Arm dotprod)."""
        return any(self.isa.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"))

    def isa_summary(self) -> str:
        """The INT8-relevant instruction sets present, e.g. 'AVX2, AVX-512, AVX512-VNNI'."""
        names = {
            "avx2": "AVX2",
            "avx512": "AVX-512",
            "avx512_vnni": "AVX512-VNNI",
            "avx_vnni": "AVX-VNNI",
            "amx_int8": "AMX-INT8",
            "asimddp": "Arm dotprod (asimddp)",
            "i8mm": "Arm i8mm",
        }
        present = [names[k] for k in ISA_FLAGS if self.isa.get(k)]
        return ", ".join(present) if present else "none of AVX2/AVX-512/VNNI/AMX/dotprod"


def isa_from_flags(flags: set[str] | list[str]) -> dict[str, bool]:
    """Which INT8-relevant instruction sets a set of cpuinfo flags announces."""
    fl = {f.lower() for f in flags}
    return {name: any(f in fl for f in spellings) for name, spellings in ISA_FLAGS.items()}


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse the text of /proc/cpuinfo (x86 or Arm) into a :class:`CpuInfo`."""
    model = ""
    flags: list[str] = []
    processors = 0
    arm_part = ""
    implementer = ""
    cores: set[tuple[str, str]] = set()
    package = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor" and value.isdigit():
            processors += 1
        elif key in ("model name", "cpu model") and not model:
            model = value
        elif key in ("flags", "features") and not flags:
            flags = value.split()
        elif key == "cpu part" and not arm_part:
            arm_part = value.lower()
        elif key == "cpu implementer" and not implementer:
            implementer = value.lower()
        elif key == "hardware" and not model:  # older Arm kernels
            model = value
        elif key == "physical id":
            package = value
        elif key == "core id":
            cores.add((package, value))
    is_arm = bool(arm_part) or "asimd" in flags or "neon" in flags
    if arm_part and (not model or model.startswith("ARMv")):  # "ARMv8 Processor rev 1 (v8l)" says nothing
        core = ARM_PARTS.get(arm_part, f"Arm core part {arm_part}")
        model = f"{core} (implementer {implementer})" if implementer else core
    arch = "aarch64" if is_arm else ("x86_64" if "sse2" in flags or "lm" in flags else "unknown")
    return CpuInfo(
        model=model or "unknown",
        arch=arch,
        logical_cpus=processors,
        physical_cores=len(cores) if cores else (processors if is_arm else 0),
        flags=flags,
        isa=isa_from_flags(flags),
    )


def read_cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """The CPU of this machine (falls back to ``platform`` when /proc/cpuinfo is absent)."""
    try:
        info = parse_cpuinfo(Path(path).read_text(errors="replace"))
    except OSError:
        info = CpuInfo(model=platform.processor() or "unknown")
    if info.arch == "unknown":
        info.arch = platform.machine() or "unknown"
    if not info.logical_cpus:
        info.logical_cpus = os.cpu_count() or 0
    return info


# --------------------------------------------------------------------------- GPU


@dataclass
class GpuInfo:
    """One NVIDIA GPU as nvidia-smi (or a Jetson's device tree) describes it."""

    name: str
    driver: str = ""
    memory_mib: int = 0
    compute_capability: str = ""
    cuda_version: str = ""  # the CUDA version the driver supports


NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader,nounits"]


def parse_nvidia_smi_query(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0] or parts[0].lower().startswith("name"):
            continue
        mem = re.match(r"\d+", parts[2]) if len(parts) > 2 else None
        cc = parts[3] if len(parts) > 3 and re.fullmatch(r"\d+\.\d+", parts[3]) else ""
        gpus.append(GpuInfo(name=parts[0], driver=parts[1], memory_mib=int(mem.group()) if mem else 0, compute_capability=cc))
    return gpus


def parse_nvidia_smi_banner(text: str) -> dict[str, str]:
    """Driver and CUDA versions from the banner of plain ``nvidia-smi`` output."""
    out = {}
    m = re.search(r"Driver Version:\s*([\d.]+)", text)
    if m:
        out["driver"] = m.group(1)
    m = re.search(r"CUDA Version:\s*([\d.]+)", text)
    if m:
        out["cuda_version"] = m.group(1)
    return out


def parse_nvidia_proc_version(text: str) -> str:
    """The kernel driver version from /proc/driver/nvidia/version ('' when absent)."""
    m = re.search(r"Kernel Module(?: for \S+)?\s+([\d.]+)", text)
    return m.group(1) if m else ""


def _run(cmd: list[str], timeout: float = 10.0) -> str:
    """stdout of a command, '' when it is missing or fails."""
    if not shutil.which(cmd[0]):
        return ""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def read_gpus() -> list[GpuInfo]:
    """NVIDIA GPUs of this machine via nvidia-smi; on Jetson the integrated GPU from the device tree."""
    gpus = parse_nvidia_smi_query(_run(["nvidia-smi", *NVIDIA_SMI_QUERY]))
    if gpus:
        banner = parse_nvidia_smi_banner(_run(["nvidia-smi"]))
        for g in gpus:
            g.cuda_version = banner.get("cuda_version", "")
        return gpus
    jetson = read_jetson()
    if jetson.get("model"):
        return [GpuInfo(name=f"{jetson['model']} (integrated GPU)", driver=jetson.get("l4t", ""))]
    return []


def read_driver_version() -> str:
    """The NVIDIA kernel driver version ('' when no NVIDIA driver is loaded)."""
    try:
        return parse_nvidia_proc_version(Path("/proc/driver/nvidia/version").read_text(errors="replace"))
    except OSError:
        return ""


# --------------------------------------------------------------------------- Jetson

#: L4T (Jetson Linux) release -> (JetPack, TensorRT it ships). Most specific key wins.
L4T_TO_JETPACK: dict[str, tuple[str, str]] = {
    "32.6": ("4.6", "8.0"),
    "32.7": ("4.6.x", "8.2"),
    "35.1": ("5.0.2", "8.4"),
    "35.2": ("5.1", "8.5"),
    "35.3": ("5.1.1", "8.5"),
    "35.4": ("5.1.2", "8.5"),
    "35.5": ("5.1.3", "8.5"),
    "35.6": ("5.1.4", "8.5"),
    "35": ("5.x", "8.5"),
    "36.2": ("6.0 DP", "8.6"),
    "36.3": ("6.0", "8.6"),
    "36.4.0": ("6.1", "10.3"),
    "36.4.2": ("6.1", "10.3"),
    "36.4.3": ("6.2", "10.3"),
    "36.4.4": ("6.2.1", "10.3"),
    "36.4": ("6.1/6.2", "10.3"),
    "36": ("6.x", "8.6 or 10.3"),
    "38": ("7.x", "10.x/11.x"),
}


def parse_tegra_release(text: str) -> str:
    """L4T version ('36.4.3') from /etc/nv_tegra_release ('# R36 (release), REVISION: 4.3, ...')."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def jetpack_for_l4t(l4t: str) -> tuple[str, str]:
    """(JetPack, TensorRT) for an L4T version; ('', '') when unknown. Newer majors: 10.x/11.x."""
    if not l4t:
        return "", ""
    parts = l4t.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in L4T_TO_JETPACK:
            return L4T_TO_JETPACK[key]
    if parts[0].isdigit() and int(parts[0]) > 38:
        return "newer than 7", "10.x/11.x"
    return "", ""


def parse_device_tree_model(raw: str | bytes) -> str:
    """/proc/device-tree/model ends with a NUL; return the plain board name."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw.replace("\x00", "").strip()


def read_jetson(root: str = "/") -> dict[str, str]:
    """Board model, L4T, JetPack and TensorRT of a Jetson; {} elsewhere."""
    base = Path(root)
    out: dict[str, str] = {}
    try:
        model = parse_device_tree_model((base / "proc/device-tree/model").read_bytes())
    except OSError:
        model = ""
    try:
        l4t = parse_tegra_release((base / "etc/nv_tegra_release").read_text(errors="replace"))
    except OSError:
        l4t = ""
    if not l4t and "jetson" not in model.lower():
        return {}
    out["model"] = model
    if l4t:
        jp, trt = jetpack_for_l4t(l4t)
        out.update(l4t=l4t, jetpack=jp, tensorrt_expected=trt)
    return out


# --------------------------------------------------------------------------- OpenCV


def parse_opencv_build(text: str) -> dict[str, Any]:
    """Video I/O backends from ``cv2.getBuildInformation()``: version, FFMPEG, GStreamer, V4L2."""

    def yes(label: str) -> bool:
        m = re.search(rf"^\s*{label}:\s*(.*)$", text, re.MULTILINE | re.IGNORECASE)
        return bool(m) and m.group(1).strip().upper().startswith("YES")

    version = re.search(r"General configuration for OpenCV\s+(\S+)", text)
    return {
        "version": version.group(1) if version else "",
        "ffmpeg": yes("FFMPEG"),
        "gstreamer": yes("GStreamer"),
        "v4l2": yes(r"v4l/v4l2") or yes("V4L/V4L2") or yes("v4l2"),
        "cuda": yes("NVIDIA CUDA"),
    }


#: pip distributions that install a ``cv2`` module.
PIP_OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")


def opencv_origin(cv2_file: str, pip_dists: dict[str, dict[str, str]]) -> str:
    """Where the imported cv2 comes from: 'pip:<dist> <version>', 'system' (distro/JetPack) or 'unknown'.

    ``pip_dists``: {dist name: {"version": ..., "location": site dir}} of installed pip OpenCV wheels.
    """
    path = cv2_file.replace("\\", "/")
    for name, meta in sorted(pip_dists.items()):
        location = meta.get("location", "").replace("\\", "/").rstrip("/")
        if location and path.startswith(location + "/"):
            return f"pip:{name} {meta.get('version', '')}".strip()
    if path.startswith(("/usr/lib/", "/usr/local/lib/")) and "/dist-packages/" in path:
        return "system"
    return "unknown"


def installed_opencv_dists() -> dict[str, dict[str, str]]:
    """pip OpenCV distributions installed here: {name: {"version", "location"}}."""
    found = {}
    for name in PIP_OPENCV_DISTS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[name] = {"version": dist.version, "location": str(dist.locate_file(""))}
    return found


# --------------------------------------------------------------------------- libraries

#: import name -> distribution names that may provide it (first found wins).
LIBRARY_DISTS: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "cv2": PIP_OPENCV_DISTS,
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13", "tensorrt_lean", "tensorrt-libs"),
    "pycuda": ("pycuda",),
    "yaml": ("PyYAML",),
}


def library_version(module: str) -> str | None:
    """Version of an importable module without importing it; None when absent, '' when unknown.

    numpy and cv2 are imported (the edge needs them anyway; a system cv2 has no pip metadata).
    """
    if importlib.util.find_spec(module) is None:
        return None
    for dist in LIBRARY_DISTS.get(module, (module,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if module in ("numpy", "cv2"):
        try:
            return str(__import__(module).__version__)
        except Exception:  # a broken install: the doctor reports it separately
            return ""
    return ""


def library_versions(modules: tuple[str, ...] = tuple(LIBRARY_DISTS)) -> dict[str, str | None]:
    """{module: version, '' unknown, None absent} for the project's runtime and optional libraries."""
    return {m: library_version(m) for m in modules}


def onnxruntime_providers() -> list[str]:
    """ONNX Runtime's execution providers here ([] when onnxruntime is absent or broken)."""
    try:
        import onnxruntime as ort

        return list(ort.get_available_providers())
    except Exception:
        return []


# --------------------------------------------------------------------------- stamp


def machine_stamp() -> dict[str, Any]:
    """A JSON-ready description of this machine for benchmark results and bug reports.

    CPU model, logical CPUs, INT8 instruction sets, GPUs, Jetson release,
    OS, Python and library versions, ONNX Runtime providers. Never raises.
    """
    cpu = read_cpu_info()
    return {
        "cpu": {
            "model": cpu.model,
            "arch": cpu.arch,
            "logical_cpus": cpu.logical_cpus,
            "physical_cores": cpu.physical_cores,
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpu.logical_cpus,
            "isa": cpu.isa,
            "int8_dot_product": cpu.int8_dot_product,
        },
        "gpus": [asdict(g) for g in read_gpus()],
        "nvidia_driver": read_driver_version(),
        "jetson": read_jetson(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "onnxruntime_providers": onnxruntime_providers(),
    }
