"""`fetalplanes doctor`: can this box run the given model on the given input, and if not, why.

Each check turns facts (read by :mod:`edge.sysinfo`, or by opening the model and
the capture source) into :class:`Finding` rows: a status, what was found in plain
words and the fix. The decisions are pure functions of those facts, so they are
tested with canned inputs from machines we do not have (Jetson, GPU servers).

Exit code: 0 when nothing blocks running the model on the input, 1 when
something does, 2 for bad usage. torch, tensorrt and pycuda are never imported
here; their presence is probed through :mod:`edge.sysinfo`.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge import sysinfo
from edge.errors import EXIT_FAILURE, EXIT_OK, FetalPlanesError

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
REQUIRED = ("numpy", "cv2", "onnxruntime")


@dataclass
class Finding:
    """One line of the doctor's table: a check, its status, what was found and what to do."""

    check: str
    status: str
    detail: str
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.status == FAIL


@dataclass
class DoctorOptions:
    """What to check beyond the machine itself."""

    model: str | None = None
    input: str | None = None
    record_dir: str | None = None
    min_free_gb: float = 2.0
    measure_s: float = 1.0
    open_timeout_s: float = 15.0


@dataclass
class Facts:
    """Everything the checks decide on, read once from the machine (or canned in tests)."""

    python: str
    libraries: dict[str, str | None]
    providers: list[str]
    cpu: sysinfo.CpuInfo
    gpus: list[sysinfo.GpuInfo] = field(default_factory=list)
    driver: str = ""
    jetson: dict[str, str] = field(default_factory=dict)
    opencv_build: dict[str, Any] = field(default_factory=dict)
    opencv_origin: str = "unknown"

    @classmethod
    def read(cls) -> "Facts":
        build, origin = {}, "unknown"
        try:
            import cv2

            build = sysinfo.parse_opencv_build(cv2.getBuildInformation())
            origin = sysinfo.opencv_origin(getattr(cv2, "__file__", "") or "", sysinfo.installed_opencv_dists())
        except Exception:  # reported by check_libraries
            pass
        return cls(
            python=sys.version.split()[0],
            libraries=sysinfo.library_versions(),
            providers=sysinfo.onnxruntime_providers(),
            cpu=sysinfo.read_cpu_info(),
            gpus=sysinfo.read_gpus(),
            driver=sysinfo.read_driver_version(),
            jetson=sysinfo.read_jetson(),
            opencv_build=build,
            opencv_origin=origin,
        )

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def has_tensorrt(self) -> bool:
        return self.libraries.get("tensorrt") is not None

    @property
    def has_pycuda(self) -> bool:
        return self.libraries.get("pycuda") is not None


# --------------------------------------------------------------------------- machine checks


def check_python(version: str) -> list[Finding]:
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (3, 9):
        return [Finding("python", FAIL, f"Python {version} is older than 3.9", "use Python 3.9 or newer (JetPack 5 has 3.8: use a venv with python3.9)")]
    note = "" if (major, minor) >= (3, 11) else " (no tomllib: TOML config files need `pip install tomli`, or use YAML with PyYAML)"
    return [Finding("python", OK, f"Python {version}{note}")]


def check_libraries(libs: dict[str, str | None]) -> list[Finding]:
    """Required runtime packages must be importable; optional ones are reported."""
    out = []
    fixes = {
        "numpy": "pip install 'numpy>=1.22' (on Jetson with the system OpenCV: 'numpy<2')",
        "cv2": "on Jetson: sudo apt install python3-opencv (keep the venv's --system-site-packages); elsewhere: pip install 'fetalplanes[opencv]'",
        "onnxruntime": "pip install onnxruntime",
    }
    for name in REQUIRED:
        v = libs.get(name)
        if v is None:
            out.append(Finding(name, FAIL, f"{name} is not installed", fixes[name]))
        elif v == "":
            out.append(Finding(name, WARN, f"{name} is installed but does not import", f"reinstall it: {fixes[name]}"))
        else:
            out.append(Finding(name, OK, f"{name} {v}"))
    for name in ("torch", "onnx"):
        v = libs.get(name)
        out.append(Finding(name, INFO, f"{name} {v}" if v is not None else f"{name} not installed (not needed on the box; training and export only)"))
    if libs.get("yaml") is None:
        out.append(Finding("yaml", INFO, "PyYAML not installed: `run --config` reads TOML only", "pip install pyyaml to use YAML config files"))
    return out


def check_providers(providers: list[str], has_gpu: bool, is_jetson: bool) -> list[Finding]:
    if not providers:
        return [Finding("onnxruntime providers", FAIL, "ONNX Runtime gives no execution provider", "reinstall onnxruntime")]
    detail = "ONNX Runtime providers: " + ", ".join(providers)
    gpu_eps = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    if has_gpu and not gpu_eps:
        fix = (
            "optional: a Jetson onnxruntime-gpu wheel (NVIDIA's Jetson index) adds the CUDA provider; the TensorRT engine path does not need it"
            if is_jetson
            else "optional: pip install onnxruntime-gpu for the CUDA provider; the TensorRT engine path does not need it"
        )
        return [Finding("onnxruntime providers", WARN, detail + " (CPU only although a GPU is present)", fix)]
    return [Finding("onnxruntime providers", OK, detail)]


def check_cpu(cpu: sysinfo.CpuInfo) -> list[Finding]:
    """CPU model and whether INT8 kernels can be expected to pay off on it."""
    detail = f"{cpu.model}, {cpu.logical_cpus} logical CPUs ({cpu.arch}); INT8-relevant: {cpu.isa_summary()}"
    if cpu.int8_dot_product:
        return [Finding("cpu", OK, detail + " - has an 8-bit dot-product instruction: INT8 can pay off")]
    if cpu.arch == "aarch64":
        return [Finding("cpu", WARN, detail + " - no Arm dot-product (asimddp): INT8 on the CPU gains little", "deploy FP32 on the CPU, or INT8 through TensorRT on the GPU")]
    return [
        Finding(
            "cpu",
            WARN,
            detail + " - no VNNI: ONNX Runtime INT8 gains little or runs slower than FP32 here",
            "deploy the FP32 model on this CPU unless `fetalplanes quantize` measured INT8 faster here",
        )
    ]


def check_gpu(facts: Facts) -> list[Finding]:
    """GPU, CUDA driver, Jetson release, TensorRT and pycuda."""
    out = []
    if not facts.has_gpu:
        out.append(Finding("gpu", INFO, "no NVIDIA GPU found (nvidia-smi absent, not a Jetson): TensorRT engines cannot run here; ONNX Runtime on the CPU will"))
    for g in facts.gpus:
        bits = [g.name]
        if g.compute_capability:
            bits.append(f"compute capability {g.compute_capability}")
        if g.memory_mib:
            bits.append(f"{g.memory_mib} MiB")
        if g.driver:
            bits.append(f"driver {g.driver}")
        if g.cuda_version:
            bits.append(f"CUDA {g.cuda_version} (driver)")
        out.append(Finding("gpu", OK, ", ".join(bits)))
    if facts.driver and not any(g.driver for g in facts.gpus):
        out.append(Finding("cuda driver", INFO, f"NVIDIA kernel driver {facts.driver}"))
    if facts.jetson:
        j = facts.jetson
        detail = f"{j.get('model') or 'Jetson'}; L4T {j.get('l4t') or 'unknown'}"
        if j.get("jetpack"):
            detail += f" = JetPack {j['jetpack']} (ships TensorRT {j.get('tensorrt_expected')})"
        out.append(Finding("jetson", INFO, detail))
    trt, pyc = facts.libraries.get("tensorrt"), facts.libraries.get("pycuda")
    if trt is not None:
        out.append(Finding("tensorrt", OK if facts.has_gpu else WARN, f"TensorRT {trt or '(version unknown)'}" + ("" if facts.has_gpu else " but no GPU to run engines on")))
        expected = facts.jetson.get("tensorrt_expected", "")
        if trt and expected and not any(trt.startswith(e.strip().rstrip("x")) for e in expected.replace("or", "/").split("/")):
            out.append(Finding("tensorrt", WARN, f"TensorRT {trt} does not match JetPack's TensorRT {expected}", "use the TensorRT that JetPack installed (sudo apt install python3-libnvinfer); do not pip install tensorrt on a Jetson"))
        if trt:
            out.append(_int8_route_finding(trt))
    elif facts.has_gpu:
        fix = "sudo apt install nvidia-tensorrt python3-libnvinfer (JetPack); create the venv with --system-site-packages" if facts.jetson else "install TensorRT's Python package (pip install tensorrt from NVIDIA's index)"
        out.append(Finding("tensorrt", WARN, "GPU present but TensorRT's Python package is not installed: engines cannot be built or run", fix))
    else:
        out.append(Finding("tensorrt", INFO, "TensorRT not installed (needs an NVIDIA GPU)"))
    if pyc is not None:
        out.append(Finding("pycuda", OK, f"pycuda {pyc or '(version unknown)'}"))
    elif facts.has_gpu:
        out.append(Finding("pycuda", WARN, "pycuda not installed: the TensorRT runner needs it for device buffers", "pip install pycuda (needs the CUDA toolkit headers: on Jetson they come with JetPack)"))
    else:
        out.append(Finding("pycuda", INFO, "pycuda not installed (needs an NVIDIA GPU)"))
    return out


def _int8_route_finding(tensorrt_version: str) -> Finding:
    """How this TensorRT builds INT8 engines (worded by JetPack; see docs/tensorrt.md's table)."""
    from edge.backends.tensorrt_versions import int8_routes, jetpack_of, qdq_refusal_hint

    routes = int8_routes(tensorrt_version)
    jp = jetpack_of(tensorrt_version)
    trt = f"TensorRT {tensorrt_version}" + (f" (JetPack {jp})" if jp else "")
    if routes == ("calibrator",):
        return Finding("int8 route", INFO, f"{trt}: INT8 engines are built with the entropy calibrator (Q/DQ from 8.6 on)",
                       qdq_refusal_hint(tensorrt_version))
    if routes == ("qdq",):
        return Finding("int8 route", INFO, f"{trt}: INT8 only from a Q/DQ ONNX (calibrators and the INT8 flag were removed in 11)",
                       "fetalplanes quantize --target tensorrt, then build-engine --precision int8 from that file")
    return Finding("int8 route", INFO, f"{trt}: INT8 from the Q/DQ ONNX (`quantize --target tensorrt`, whose report "
                   "measured the accuracy), or with the entropy calibrator from the FP32 ONNX")


def check_opencv(build: dict[str, Any], origin: str, is_jetson: bool) -> list[Finding]:
    """OpenCV's video I/O backends and, on Jetson, whether pip's wheel hides JetPack's OpenCV."""
    if not build:
        return []
    backends = ", ".join(f"{name} {'yes' if build.get(key) else 'no'}" for name, key in (("FFMPEG", "ffmpeg"), ("GStreamer", "gstreamer"), ("V4L2", "v4l2")))
    out = [Finding("opencv build", OK if build.get("ffmpeg") or build.get("v4l2") else WARN, f"OpenCV {build.get('version', '?')} ({origin}); video I/O: {backends}",
                   "" if build.get("ffmpeg") or build.get("v4l2") else "this OpenCV cannot read video: install one built with FFMPEG or V4L2")]
    if not build.get("gstreamer"):
        fix = (
            "use the system OpenCV: pip uninstall opencv-python opencv-python-headless; sudo apt install python3-opencv"
            if is_jetson
            else "only needed for GStreamer pipelines as --input; V4L2 devices, files and RTSP work without it"
        )
        out.append(Finding("opencv gstreamer", WARN if is_jetson else INFO, "OpenCV has no GStreamer: GStreamer pipelines (nvv4l2camerasrc, nvvidconv) cannot be opened", fix))
    if is_jetson and origin.startswith("pip:"):
        out.append(
            Finding(
                "opencv origin",
                WARN,
                f"cv2 comes from the pip wheel {origin[4:]}, which hides JetPack's system OpenCV (with GStreamer)",
                "pip uninstall " + origin[4:].split()[0] + "; keep the venv created with --system-site-packages so JetPack's cv2 is used",
            )
        )
    return out


# --------------------------------------------------------------------------- capture source


def _with_timeout(fn: Callable[[], tuple[bool, str]], timeout_s: float) -> tuple[bool, str]:
    """Run ``fn`` in a daemon thread; a source that hangs (a dead RTSP camera) counts as failed."""
    result: list[tuple[bool, str]] = []

    def target():
        try:
            result.append(fn())
        except Exception as exc:  # OpenCV raises cv2.error on some backends
            result.append((False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"))

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    return result[0] if result else (False, f"no answer within {timeout_s:g} s")


def input_fix(spec: Any, build: dict[str, Any]) -> str:
    """What to do when a source (an :class:`edge.live.sources.SourceSpec`) does not open."""
    if spec.kind == "v4l2":
        return "check the cable and the capture card: ls /dev/video*; v4l2-ctl --list-devices; v4l2-ctl -d DEV --list-formats-ext; the service user must be in group 'video'"
    if spec.kind == "gstreamer":
        if not build.get("gstreamer"):
            return "this OpenCV has no GStreamer: on Jetson use the system OpenCV (see docs/deploy.md); elsewhere give /dev/videoN instead"
        return "test the pipeline alone: gst-launch-1.0 <pipeline with '! fakesink' instead of '! appsink'>"
    if spec.kind == "stream":
        return "check the address, network and credentials (try: ffprobe URI)"
    if spec.kind == "file":
        return "check the path; containers OpenCV reads here: mp4, avi, mov, mkv"
    return "give a folder of PNG/JPEG images or a glob such as 'exam/*.png'"


def check_input(text: str, build: dict[str, Any], timeout_s: float = 15.0) -> list[Finding]:
    """Does the capture source open and deliver one frame? Parsed and opened exactly as `fetalplanes run` does."""
    from edge.live.sources import parse_source

    try:
        spec = parse_source(text)
    except FetalPlanesError as exc:
        return [Finding("input", FAIL, str(exc.message), exc.hint)]
    if spec.kind == "v4l2" and spec.device_index is None and not Path(spec.location).exists():
        return [Finding("input", FAIL, f"{spec.location}: no such device", input_fix(spec, build))]
    if spec.kind == "gstreamer" and build and not build.get("gstreamer"):
        return [Finding("input", FAIL, "the input is a GStreamer pipeline but this OpenCV has no GStreamer", input_fix(spec, build))]
    ok, what = _with_timeout(lambda: _open_and_read(spec), timeout_s)
    if ok:
        return [Finding("input", OK, f"{text}: {spec.kind} source opens, one frame read: {what}")]
    return [Finding("input", FAIL, f"{text}: {spec.kind} does not deliver frames: {what}", input_fix(spec, build))]


def _open_and_read(spec: Any) -> tuple[bool, str]:
    """Open the source with the loop's own opener (edge.live.sources.open_source) and read one frame."""
    try:  # OpenCV's own warnings about a missing device would clutter the table
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except Exception:
        pass
    from edge.live.sources import open_source

    try:
        source = open_source(spec)
    except FetalPlanesError as exc:
        return False, exc.message
    try:
        ok, frame = source.read()
        if not ok or frame is None:
            return False, "opened, but no frame could be read"
        what = f"{frame.shape[1]}x{frame.shape[0]}"
        count = int(getattr(source, "frame_count", 0) or 0)
        if spec.kind == "images":
            what = f"{count} images, first {what}"
        fps = getattr(source, "fps", 0.0) or 0.0
        return True, what + (f" at {fps:.3g} fps" if fps > 0 else "") + (f", {count} frames" if spec.kind == "file" and count else "")
    finally:
        source.close()


# --------------------------------------------------------------------------- disk


def check_disk(record_dir: str, min_free_gb: float, usage: Callable[[str], Any] = shutil.disk_usage) -> list[Finding]:
    """Free space and write permission where recordings and predictions go."""
    path = Path(record_dir).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free_gb = usage(str(existing)).free / 1e9
    writable = os.access(existing, os.W_OK)
    where = str(path) if existing == path else f"{path} (to be created in {existing})"
    if not writable:
        return [Finding("record dir", FAIL, f"{where} is not writable by this user", f"sudo mkdir -p {path} && sudo chown $USER {path} (the service's StateDirectory does this for /var/lib/fetalplanes)")]
    if free_gb < min_free_gb:
        return [Finding("record dir", FAIL, f"{where}: only {free_gb:.1f} GB free (< {min_free_gb:g} GB)", "free space or point --record-dir at a larger disk; bound the loop's files (see docs/deploy.md)")]
    return [Finding("record dir", OK, f"{where}: {free_gb:.1f} GB free")]


# --------------------------------------------------------------------------- model and precision


def quantize_report_path(model: str | Path) -> Path:
    """The quantize report for a model (:func:`edge.quantize_report.find_report`: the one file-name rule)."""
    from edge.quantize_report import find_report

    return find_report(model)


def quantize_report_findings(model: str | Path) -> list[Finding]:
    """What the quantize report beside ``model`` says: the file to deploy, and the deployability rule's
    verdict (:mod:`edge.deployability`) on ``model`` from the counts the report stored."""
    from edge.quantize_report import QuantizeReport

    path = quantize_report_path(model)
    if not path.is_file():
        return []
    try:
        report = QuantizeReport.read(path)
    except FetalPlanesError as exc:
        return [Finding("quantize report", WARN, exc.message, exc.hint)]
    out = [Finding("quantize report", INFO, f"{path.name} (measured on the machine that ran quantize) recommends: "
                   f"{report.recommendation.describe()}")]
    verdict = report.verdict_for(model)
    if verdict is not None and not report.candidate_for(model).is_reference:
        if verdict.deployable:
            out.append(Finding("deployable", OK, f"{Path(model).name} passes the deployability rule: {verdict.why}"))
        else:
            out.append(Finding("deployable", WARN, f"{Path(model).name} is NOT deployable by the rule: {verdict.why}",
                               f"deploy {Path(report.fp32_model).name} (FP32) instead, or re-run `fetalplanes quantize`"))
    return out


def pick_precision(
    model_kind: str, cpu: sysinfo.CpuInfo, has_gpu: bool, has_tensorrt: bool, compute_capability: str = "",
    tensorrt_version: str = "",
) -> tuple[str, str]:
    """(precision to deploy, why) from the hardware alone.

    GPU + TensorRT: a TensorRT INT8 engine (FP16 on GPUs without INT8 tensor math,
    compute capability < 6.1), by the route this TensorRT takes: from the Q/DQ ONNX on
    8.6+ (JetPack 6), with the entropy calibrator on 8.5 (JetPack 5.1), see
    :func:`edge.backends.tensorrt_versions.int8_routes`. CPU: INT8 when it has VNNI /
    AMX / Arm dotprod, otherwise FP32, since INT8 without 8-bit dot products gains little or loses.
    """
    from edge.backends.tensorrt_versions import int8_routes, jetpack_of

    if model_kind == "tensorrt":
        return "TensorRT engine (as built)", "an engine runs only on the GPU and TensorRT version it was built with"
    if has_gpu and has_tensorrt:
        try:
            cc = float(compute_capability) if compute_capability else None
        except ValueError:
            cc = None
        if cc is not None and cc < 6.1:
            return "TensorRT FP16 engine", f"compute capability {compute_capability} has no fast INT8; build with --precision fp16"
        trt = f"TensorRT {tensorrt_version}" if tensorrt_version else "TensorRT"
        jp = jetpack_of(tensorrt_version) if tensorrt_version else ""
        trt += f" (JetPack {jp})" if jp else ""
        if tensorrt_version and int8_routes(tensorrt_version) == ("calibrator",):
            return (
                "TensorRT INT8 engine, calibrated (FP16 as fallback)",
                f"GPU + {trt}: build INT8 with the entropy calibrator from the FP32 ONNX and training images; "
                "fetalplanes builds from a Q/DQ ONNX only on TensorRT 8.6+ (JetPack 6)",
            )
        return (
            "TensorRT INT8 engine (FP16 as fallback)",
            f"GPU + {trt}: build the engine on this box from the INT8 Q/DQ ONNX (`fetalplanes quantize --target tensorrt`)",
        )
    if cpu.int8_dot_product:
        return "ONNX Runtime INT8 (CPU)", f"the CPU has {cpu.isa_summary()}: INT8 kernels use 8-bit dot products, usually faster than FP32 (the quantize report measures it)"
    return "ONNX Runtime FP32 (CPU)", "no VNNI/AMX/Arm dotprod: INT8 gains little or loses on this CPU"


def measure_hz(runner: Any, input_shape: tuple[int, ...], seconds: float, max_runs: int = 500) -> tuple[float, int]:
    """Inferences per second at batch 1 on zeros, after one warm-up run: (Hz, runs)."""
    import numpy as np

    x = np.zeros(input_shape, np.float32)
    runner.infer(x)
    n, t0 = 0, time.perf_counter()
    while n < max_runs and (n < 3 or time.perf_counter() - t0 < seconds):
        runner.infer(x)
        n += 1
    elapsed = time.perf_counter() - t0
    return (n / elapsed if elapsed > 0 else float("inf")), n


def check_model(model: str, facts: Facts, measure_s: float = 1.0) -> list[Finding]:
    """Does the model load here, what does it carry, how fast is it, what precision to deploy."""
    from edge.backends import open_runner, read_model_info
    from edge.backends.loader import model_kind

    out = []
    try:
        kind = model_kind(model)
        info = read_model_info(model)
    except FetalPlanesError as exc:
        return [Finding("model", FAIL, exc.message, exc.hint)]
    out.append(Finding("model metadata", OK, f"{Path(model).name}: task {info.task}, {info.num_classes} labels ({', '.join(info.labels)}), {info.arch}, input {info.size_text} px x{info.channels}"))
    if kind == "tensorrt" and not (facts.has_gpu and facts.has_tensorrt and facts.has_pycuda):
        missing = [n for n, ok in (("an NVIDIA GPU", facts.has_gpu), ("TensorRT", facts.has_tensorrt), ("pycuda", facts.has_pycuda)) if not ok]
        out.append(Finding("model load", FAIL, f"{model} is a TensorRT engine but this box lacks {', '.join(missing)}", "run the .onnx model here, or run the engine on the GPU box it was built on"))
        return out
    try:
        runner = open_runner(model)
        with runner:
            hz, n = measure_hz(runner, info.input_shape(1), measure_s)
        out.append(Finding("model load", OK, f"loads with {runner.name}; {hz:.0f} Hz at batch 1 (model only, {n} runs on zeros)"))
    except FetalPlanesError as exc:
        out.append(Finding("model load", FAIL, exc.message, exc.hint))
        return out
    except Exception as exc:  # a backend fault the runner did not wrap
        out.append(Finding("model load", FAIL, f"{model}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", "re-export the model; run `fetalplanes doctor --json` and report it"))
        return out
    cc = facts.gpus[0].compute_capability if facts.gpus else ""
    choice, why = pick_precision(kind, facts.cpu, facts.has_gpu, facts.has_tensorrt, cc, facts.libraries.get("tensorrt") or "")
    out.append(Finding("precision", INFO, f"would pick: {choice} - {why}", _precision_fix(choice, model)))
    out += quantize_report_findings(model)
    return out


def _precision_fix(choice: str, model: str) -> str:
    stem = Path(model).name.split(".")[0]
    if choice.startswith("TensorRT INT8 engine, calibrated"):
        return (f"fetalplanes build-engine --onnx {stem}.onnx --precision int8 --data FETAL_PLANES_DB "
                f"--calib-cache {stem}.calib --out {stem}.engine")
    if choice.startswith("TensorRT INT8"):
        return (f"fetalplanes quantize --onnx {stem}.onnx --data FETAL_PLANES_DB --target tensorrt --out {stem}.int8.onnx, "
                f"then fetalplanes build-engine --onnx {stem}.int8.onnx --precision int8 --out {stem}.engine")
    if choice.startswith("TensorRT FP16"):
        return f"fetalplanes build-engine --onnx {stem}.onnx --precision fp16 --out {stem}.engine"
    if choice.startswith("ONNX Runtime INT8") and ".int8" not in Path(model).name:
        return f"fetalplanes quantize --onnx {Path(model).name} --data DIR --out {stem}.int8.onnx (it measures which file is fastest here)"
    return ""


# --------------------------------------------------------------------------- the whole run


def diagnose(options: DoctorOptions, facts: Facts | None = None) -> list[Finding]:
    """All findings for this machine (``facts`` read here unless given)."""
    facts = facts or Facts.read()
    is_jetson = bool(facts.jetson)
    findings = check_python(facts.python)
    findings += check_libraries(facts.libraries)
    findings += check_providers(facts.providers, facts.has_gpu, is_jetson)
    findings += check_cpu(facts.cpu)
    findings += check_gpu(facts)
    findings += check_opencv(facts.opencv_build, facts.opencv_origin, is_jetson)
    if options.input:
        findings += check_input(options.input, facts.opencv_build, options.open_timeout_s) if facts.libraries.get("cv2") else [Finding("input", FAIL, "cannot open the input without OpenCV", "install OpenCV (see the cv2 row)")]
    if options.record_dir:
        findings += check_disk(options.record_dir, options.min_free_gb)
    if options.model:
        if facts.libraries.get("onnxruntime") is None:
            findings.append(Finding("model load", FAIL, "cannot load the model without onnxruntime", "pip install onnxruntime"))
        else:
            findings += check_model(options.model, facts, options.measure_s)
    return findings


def verdict(findings: list[Finding]) -> int:
    """0 when nothing blocks, 1 otherwise."""
    return EXIT_FAILURE if any(f.blocking for f in findings) else EXIT_OK


def format_table(findings: list[Finding], width: int = 100) -> str:
    """A readable table: status, check, finding, and the fix on the line below."""
    name_w = max(len(f.check) for f in findings) if findings else 5
    lines = [f"{'status':<6}  {'check':<{name_w}}  finding", f"{'-' * 6}  {'-' * name_w}  {'-' * 40}"]
    for f in findings:
        lines.append(f"{f.status:<6}  {f.check:<{name_w}}  {f.detail}")
        if f.fix and f.status in (WARN, FAIL):
            lines.append(f"{'':<6}  {'':<{name_w}}  fix: {f.fix}")
        elif f.fix:
            lines.append(f"{'':<6}  {'':<{name_w}}  hint: {f.fix}")
    n_fail = sum(f.blocking for f in findings)
    n_warn = sum(f.status == WARN for f in findings)
    lines.append("")
    lines.append(f"verdict: {'NOT READY' if n_fail else 'ready'} ({n_fail} blocking, {n_warn} warnings)")
    return "\n".join(lines)


def to_json(findings: list[Finding], options: DoctorOptions, stamp: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "ready": verdict(findings) == EXIT_OK,
        "exit_code": verdict(findings),
        "options": asdict(options),
        "findings": [asdict(f) | {"blocking": f.blocking} for f in findings],
        "machine": stamp if stamp is not None else sysinfo.machine_stamp(),
    }


def output_dirs(outputs: list[str]) -> list[str]:
    """Folders that file outputs (video files, jsonl://) write into, in order, without duplicates.

    Parsed by the loop's own :func:`edge.live.outputs.parse_output` (a FetalPlanesError for an output it would refuse).
    """
    from edge.live.outputs import parse_output

    dirs: list[str] = []
    for out in outputs:
        spec = parse_output(out)
        if spec.kind in ("video", "jsonl") and spec.location:
            d = str(Path(spec.location).expanduser().absolute().parent)
            if d not in dirs:
                dirs.append(d)
    return dirs


def read_box_config(path: str) -> tuple[dict[str, str], list[Finding]]:
    """model / input / record_dir from the box config, read and validated as `fetalplanes run --config` does.

    Returns the keys (flags override them) and a finding on the config itself.
    """
    try:
        from edge.live.config import load_run_config
    except ImportError as exc:  # pragma: no cover - an install without the live loop
        raise FetalPlanesError(f"--config needs the live loop (edge.live), which is not importable here ({exc})", hint="reinstall fetalplanes") from None
    config = load_run_config(path)  # raises FetalPlanesError (exit 2) on a missing or invalid file
    try:
        config.validate()
    except FetalPlanesError as exc:
        return {}, [Finding("config", FAIL, f"{path}: {exc.message}", exc.hint)]
    try:
        dirs = output_dirs(config.outputs)
    except FetalPlanesError as exc:
        return {}, [Finding("config", FAIL, f"{path}: {exc.message}", exc.hint)]
    if config.status:
        status_dir = str(Path(config.status).expanduser().absolute().parent)
        dirs += [status_dir] if status_dir not in dirs else []
    keys = {"model": config.model, "input": config.input_uri, "record_dir": dirs[0] if dirs else ""}
    detail = f"{path}: valid; outputs {', '.join(config.outputs) or 'none'}" + (f"; status file {config.status}" if config.status else "")
    return {k: v for k, v in keys.items() if v}, [Finding("config", OK, detail)]
