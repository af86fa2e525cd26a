"""`fetalplanes doctor` and edge.sysinfo: parsers on canned text from other machines, checks on this one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from edge import doctor, sysinfo
from edge.cli import main
from edge.doctor import FAIL, INFO, OK, WARN, DoctorOptions, Facts

# ----------------------------------------------------------------------------- canned machine texts

# Intel Xeon E5-2690 v4 (Broadwell): AVX2, no AVX-512, no VNNI.
CPUINFO_X86_AVX2 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm rdseed adx smap xsaveopt

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm rdseed adx smap xsaveopt
"""

# Intel Xeon Gold 6248 (Cascade Lake): AVX-512 with VNNI.
CPUINFO_X86_VNNI = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
flags\t\t: fpu sse sse2 lm avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni
"""

# Intel Core i7-12700 (Alder Lake): AVX-VNNI without AVX-512.
CPUINFO_X86_AVX_VNNI = """processor\t: 0
model name\t: 12th Gen Intel(R) Core(TM) i7-12700
flags\t\t: fpu sse sse2 lm avx avx2 fma avx_vnni
"""

# Jetson AGX Orin (Cortex-A78AE, aarch64): no "model name", Features with asimddp.
CPUINFO_ORIN = """processor\t: 0
BogoMIPS\t: 62.50
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc flagm paca pacg
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd42
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 62.50
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc flagm paca pacg
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd42
CPU revision\t: 1
"""

# Jetson Nano (Cortex-A57): ARMv8.0, no dot product.
CPUINFO_NANO = """processor\t: 0
model name\t: ARMv8 Processor rev 1 (v8l)
BogoMIPS\t: 38.40
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd07
"""

NVIDIA_SMI_QUERY = "NVIDIA A100-SXM4-40GB, 535.104.05, 40960, 8.0\nTesla T4, 535.104.05, 15360, 7.5\n"
NVIDIA_SMI_BANNER = """+---------------------------------------------------------------------------------------+
| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |
|-----------------------------------------+----------------------+----------------------+
"""
PROC_NVIDIA_VERSION = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.3.0\n"
PROC_NVIDIA_VERSION_OPEN = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build  (dvs-builder@U16-I3-B03-4-3)\n"

# Captured on an NVIDIA H200 machine (driver 580, open kernel module) with `fetalplanes doctor`'s own commands.
H200_SMI_QUERY = "NVIDIA H200, 580.159.04, 143771, 9.0\n"
H200_SMI_BANNER = """Sun Nov 29 19:21:58 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|=========================================+========================+======================|
|   0  NVIDIA H200                    On  |   00000000:00:06.0 Off |                    0 |
"""
H200_PROC_VERSION = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \nGCC version:  gcc version 15.3.0 (GCC) \n"

TEGRA_JP62 = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n"
TEGRA_JP512 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"

OPENCV_WITH_GST = """
General configuration for OpenCV 4.8.0 =====================================
  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
      avcodec:                   YES (58.54.100)
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
OPENCV_WITHOUT_GST = """
General configuration for OpenCV 5.0.0 =====================================
  Video I/O:
    FFMPEG:                      YES
      avcodec:                   YES (62.28.101)
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
    Orbbec:                      NO
"""

ALL_LIBS = {"numpy": "1.26.4", "cv2": "4.8.0", "onnxruntime": "1.19.2", "onnx": None, "torch": None, "tensorrt": None, "pycuda": None, "yaml": "6.0"}


def canned_facts(**overrides) -> Facts:
    base = dict(
        python="3.10.12",
        libraries=dict(ALL_LIBS),
        providers=["CPUExecutionProvider"],
        cpu=sysinfo.parse_cpuinfo(CPUINFO_X86_AVX2),
        opencv_build=sysinfo.parse_opencv_build(OPENCV_WITHOUT_GST),
        opencv_origin="pip:opencv-python-headless 4.8.0.76",
    )
    base.update(overrides)
    return Facts(**base)


def by_check(findings, check):
    return [f for f in findings if f.check == check]


# ----------------------------------------------------------------------------- parsers


def test_cpuinfo_x86_avx2_without_vnni():
    cpu = sysinfo.parse_cpuinfo(CPUINFO_X86_AVX2)
    assert cpu.model == "Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz"
    assert cpu.arch == "x86_64" and cpu.logical_cpus == 2
    # no "core id" lines in this excerpt: physical cores unknown rather than guessed
    assert cpu.physical_cores == 0
    with_ids = CPUINFO_X86_AVX2.replace("flags", "physical id\t: 0\ncore id\t\t: 0\nflags")
    assert sysinfo.parse_cpuinfo(with_ids).physical_cores == 1  # two hyper-threads of one core
    assert cpu.isa["avx2"] and not cpu.isa["avx512"]
    assert not cpu.int8_dot_product
    [f] = doctor.check_cpu(cpu)
    assert f.status == WARN and "no VNNI" in f.detail and "FP32" in f.fix
    assert doctor.pick_precision("onnx", cpu, has_gpu=False, has_tensorrt=False)[0] == "ONNX Runtime FP32 (CPU)"


@pytest.mark.parametrize("text, flag", [(CPUINFO_X86_VNNI, "avx512_vnni"), (CPUINFO_X86_AVX_VNNI, "avx_vnni")])
def test_cpuinfo_x86_with_vnni(text, flag):
    cpu = sysinfo.parse_cpuinfo(text)
    assert cpu.isa[flag] and cpu.int8_dot_product
    assert doctor.check_cpu(cpu)[0].status == OK
    assert doctor.pick_precision("onnx", cpu, False, False)[0] == "ONNX Runtime INT8 (CPU)"


def test_cpuinfo_jetson_orin_has_arm_dotprod():
    cpu = sysinfo.parse_cpuinfo(CPUINFO_ORIN)
    assert cpu.arch == "aarch64" and cpu.logical_cpus == 2
    assert cpu.model.startswith("Cortex-A78AE")
    assert cpu.isa["asimddp"] and not cpu.isa["avx2"] and not cpu.isa["i8mm"]
    assert cpu.int8_dot_product
    assert "asimddp" in cpu.isa_summary()


def test_cpuinfo_jetson_nano_lacks_dotprod():
    cpu = sysinfo.parse_cpuinfo(CPUINFO_NANO)
    assert cpu.arch == "aarch64" and not cpu.int8_dot_product
    assert cpu.model.startswith("Cortex-A57") and cpu.physical_cores == 1
    [f] = doctor.check_cpu(cpu)
    assert f.status == WARN and "asimddp" in f.detail


def test_nvidia_smi_parsing():
    gpus = sysinfo.parse_nvidia_smi_query(NVIDIA_SMI_QUERY)
    assert [(g.name, g.driver, g.memory_mib, g.compute_capability) for g in gpus] == [
        ("NVIDIA A100-SXM4-40GB", "535.104.05", 40960, "8.0"),
        ("Tesla T4", "535.104.05", 15360, "7.5"),
    ]
    assert sysinfo.parse_nvidia_smi_query("") == []
    # older drivers print "[N/A]" or an error for compute_cap
    [old] = sysinfo.parse_nvidia_smi_query("Tesla K80, 470.57.02, 11441 MiB, [N/A]\n")
    assert old.memory_mib == 11441 and old.compute_capability == ""
    assert sysinfo.parse_nvidia_smi_banner(NVIDIA_SMI_BANNER) == {"driver": "535.104.05", "cuda_version": "12.2"}
    assert sysinfo.parse_nvidia_proc_version(PROC_NVIDIA_VERSION) == "535.104.05"
    assert sysinfo.parse_nvidia_proc_version(PROC_NVIDIA_VERSION_OPEN) == "550.54.14"
    assert sysinfo.parse_nvidia_proc_version("") == ""


def test_nvidia_texts_captured_on_an_h200():
    [gpu] = sysinfo.parse_nvidia_smi_query(H200_SMI_QUERY)
    assert (gpu.name, gpu.driver, gpu.memory_mib, gpu.compute_capability) == ("NVIDIA H200", "580.159.04", 143771, "9.0")
    assert sysinfo.parse_nvidia_smi_banner(H200_SMI_BANNER) == {"driver": "580.159.04", "cuda_version": "13.0"}
    assert sysinfo.parse_nvidia_proc_version(H200_PROC_VERSION) == "580.159.04"
    gpu.cuda_version = "13.0"
    facts = canned_facts(gpus=[gpu], driver="580.159.04")
    [row] = by_check(doctor.check_gpu(facts), "gpu")
    assert row.status == OK and "compute capability 9.0" in row.detail and "CUDA 13.0" in row.detail
    # no TensorRT there: the doctor says what is missing but nothing blocks the ONNX path
    assert by_check(doctor.check_gpu(facts), "tensorrt")[0].status == WARN
    assert doctor.verdict(doctor.diagnose(DoctorOptions(), facts)) == 0


@pytest.mark.parametrize(
    "text, l4t, jetpack, trt",
    [
        (TEGRA_JP62, "36.4.3", "6.2", "10.3"),
        (TEGRA_JP512, "35.4.1", "5.1.2", "8.5"),
        ("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64", "36.3.0", "6.0", "8.6"),
        ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64", "36.4.0", "6.1", "10.3"),
        ("# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic, EABI: aarch64", "38.2.0", "7.x", "10.x/11.x"),
    ],
)
def test_tegra_release_to_jetpack_and_tensorrt(text, l4t, jetpack, trt):
    assert sysinfo.parse_tegra_release(text) == l4t
    assert sysinfo.jetpack_for_l4t(l4t) == (jetpack, trt)


def test_tegra_release_garbage_and_device_tree():
    assert sysinfo.parse_tegra_release("hello") == ""
    assert sysinfo.jetpack_for_l4t("") == ("", "")
    assert sysinfo.jetpack_for_l4t("12.1") == ("", "")
    assert sysinfo.parse_device_tree_model(b"NVIDIA Jetson AGX Orin Developer Kit\x00") == "NVIDIA Jetson AGX Orin Developer Kit"


def test_read_jetson_from_a_fake_root(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    (tmp_path / "etc/nv_tegra_release").write_text(TEGRA_JP62)
    j = sysinfo.read_jetson(str(tmp_path))
    assert j == {"model": "NVIDIA Jetson Orin Nano Developer Kit", "l4t": "36.4.3", "jetpack": "6.2", "tensorrt_expected": "10.3"}
    assert sysinfo.read_jetson(str(tmp_path / "nowhere")) == {}


def test_opencv_build_information():
    with_gst = sysinfo.parse_opencv_build(OPENCV_WITH_GST)
    assert with_gst == {"version": "4.8.0", "ffmpeg": True, "gstreamer": True, "v4l2": True, "cuda": False}
    without = sysinfo.parse_opencv_build(OPENCV_WITHOUT_GST)
    assert without["version"] == "5.0.0" and without["ffmpeg"] and without["v4l2"] and not without["gstreamer"]


def test_opencv_origin():
    pip = {"opencv-python": {"version": "4.10.0.84", "location": "/opt/fetalplanes/lib/python3.10/site-packages"}}
    assert sysinfo.opencv_origin("/opt/fetalplanes/lib/python3.10/site-packages/cv2/__init__.py", pip) == "pip:opencv-python 4.10.0.84"
    # a pip wheel installed elsewhere does not make JetPack's cv2 a pip one
    assert sysinfo.opencv_origin("/usr/lib/python3.10/dist-packages/cv2/__init__.py", pip) == "system"
    assert sysinfo.opencv_origin("/usr/lib/python3/dist-packages/cv2.cpython-310-aarch64-linux-gnu.so", {}) == "system"
    assert sysinfo.opencv_origin("/home/me/src/cv2/__init__.py", {}) == "unknown"


# ----------------------------------------------------------------------------- decisions on canned machines


def test_jetson_with_pip_opencv_is_warned_and_gstreamer_missing_is_a_warning():
    findings = doctor.check_opencv(sysinfo.parse_opencv_build(OPENCV_WITHOUT_GST), "pip:opencv-python 4.10.0.84", is_jetson=True)
    [origin] = by_check(findings, "opencv origin")
    assert origin.status == WARN and "hides JetPack" in origin.detail and "pip uninstall opencv-python" in origin.fix
    assert by_check(findings, "opencv gstreamer")[0].status == WARN
    # the same wheel on an x86 box is fine; missing GStreamer is only information there
    x86 = doctor.check_opencv(sysinfo.parse_opencv_build(OPENCV_WITHOUT_GST), "pip:opencv-python 4.10.0.84", is_jetson=False)
    assert not by_check(x86, "opencv origin") and by_check(x86, "opencv gstreamer")[0].status == INFO
    # JetPack's own OpenCV with GStreamer: no warning at all
    ok = doctor.check_opencv(sysinfo.parse_opencv_build(OPENCV_WITH_GST), "system", is_jetson=True)
    assert [f.status for f in ok] == [OK]


def test_jetson_orin_with_tensorrt_picks_an_int8_engine():
    facts = canned_facts(
        cpu=sysinfo.parse_cpuinfo(CPUINFO_ORIN),
        gpus=[sysinfo.GpuInfo(name="NVIDIA Jetson AGX Orin (integrated GPU)", driver="36.4.3")],
        jetson={"model": "NVIDIA Jetson AGX Orin", "l4t": "36.4.3", "jetpack": "6.2", "tensorrt_expected": "10.3"},
        libraries=dict(ALL_LIBS, tensorrt="10.3.0", pycuda="2024.1"),
        opencv_build=sysinfo.parse_opencv_build(OPENCV_WITH_GST),
        opencv_origin="system",
    )
    findings = doctor.diagnose(DoctorOptions(), facts)
    assert doctor.verdict(findings) == 0
    assert "JetPack 6.2" in by_check(findings, "jetson")[0].detail
    assert [f.status for f in by_check(findings, "tensorrt")] == [OK]
    choice, _ = doctor.pick_precision("onnx", facts.cpu, facts.has_gpu, facts.has_tensorrt)
    assert choice.startswith("TensorRT INT8")
    # a pip TensorRT that does not match JetPack's is flagged
    wrong = canned_facts(**{**facts.__dict__, "libraries": dict(facts.libraries, tensorrt="8.5.2.2")})
    mismatch = [f for f in doctor.check_gpu(wrong) if f.check == "tensorrt" and f.status == WARN]
    assert mismatch and "does not match" in mismatch[0].detail


def test_gpu_without_tensorrt_and_old_gpus():
    facts = canned_facts(gpus=sysinfo.parse_nvidia_smi_query(NVIDIA_SMI_QUERY), driver="535.104.05")
    gpu = doctor.check_gpu(facts)
    assert by_check(gpu, "tensorrt")[0].status == WARN and by_check(gpu, "pycuda")[0].status == WARN
    assert "compute capability 8.0" in by_check(gpu, "gpu")[0].detail
    assert doctor.check_providers(["CPUExecutionProvider"], has_gpu=True, is_jetson=False)[0].status == WARN
    cpu = sysinfo.parse_cpuinfo(CPUINFO_X86_AVX2)
    assert doctor.pick_precision("onnx", cpu, True, True, "5.3")[0] == "TensorRT FP16 engine"
    assert doctor.pick_precision("onnx", cpu, True, False)[0] == "ONNX Runtime FP32 (CPU)"
    assert doctor.pick_precision("tensorrt", cpu, True, True)[0].startswith("TensorRT engine")


def test_missing_required_library_blocks():
    findings = doctor.diagnose(DoctorOptions(), canned_facts(libraries=dict(ALL_LIBS, onnxruntime=None)))
    [ort] = by_check(findings, "onnxruntime")
    assert ort.status == FAIL and "pip install onnxruntime" in ort.fix
    assert doctor.verdict(findings) == 1
    assert "NOT READY" in doctor.format_table(findings)


def test_python_below_311_mentions_tomli():
    assert "tomli" in doctor.check_python("3.10.12")[0].detail
    assert doctor.check_python("3.8.10")[0].status == FAIL


def _quantize_report(int8="m.int8.onnx", fp32="m.onnx", same=990, images=1000, **rec):
    """A report in the shape `fetalplanes quantize` writes (edge.quantize_report.QuantizeReport)."""
    recommendation = {"file": int8, "name": "int8", "precision": "int8", "hz": 363.4, "threads": 2,
                      "reason": "fastest whose accuracy holds", **rec}
    evidence = {"images": images, "same": same, "labelled": 96, "reference_correct": 80, "candidate_correct": 80}
    return {"kind": "fetalplanes-quantize-report", "fp32_model": fp32, "int8_model": int8, "accuracy_holds": True,
            "gate": {"min_agreement": 0.99, "max_drop_points": 1.0}, "recommendation": recommendation,
            "speed": {"candidates": [
                {"name": "fp32", "path": fp32, "precision": "fp32", "holds": True, "hz": 300.0},
                {"name": "int8", "path": int8, "precision": "int8", "holds": True, "hz": 363.4, "evidence": evidence}]}}


def test_quantize_report(tmp_path):
    from edge.quantize_report import QuantizeReport

    # the doctor reads the typed record: no guessing among key names
    (tmp_path / "m.int8.quantize.json").write_text(json.dumps(_quantize_report(hz=774.2)))
    [rec] = doctor.quantize_report_findings(tmp_path / "m.onnx")
    assert rec.detail.endswith("recommends: m.int8.onnx (int8; 774 Hz; fastest whose accuracy holds)")
    # the INT8 file itself: the deployability rule re-judged on the counts the report stored
    found = doctor.quantize_report_findings(tmp_path / "m.int8.onnx")
    assert [f.status for f in found if f.check == "deployable"] == [OK]
    (tmp_path / "m.int8.quantize.json").write_text(json.dumps(_quantize_report(same=987)))  # 98.7 %: 13 flips > 10
    [dep] = [f for f in doctor.quantize_report_findings(tmp_path / "m.int8.onnx") if f.check == "deployable"]
    assert dep.status == WARN and "NOT deployable" in dep.detail and "0.9870 < 0.99" in dep.detail and "m.onnx" in dep.fix
    assert QuantizeReport.read(tmp_path / "m.int8.quantize.json").verdict_for(tmp_path / "m.int8.onnx").deployable is False
    # anything else is a clear warning, not a guess
    for junk in ('{"recommended": "m.int8.onnx"}', "[1, 2]", "not json"):
        (tmp_path / "m.int8.quantize.json").write_text(junk)
        [bad] = doctor.quantize_report_findings(tmp_path / "m.onnx")
        assert bad.status == WARN and "m.int8.quantize.json" in bad.detail and "fetalplanes quantize" in bad.fix
    (tmp_path / "m.int8.quantize.json").unlink()
    # model.int8.onnx finds model.quantize.json written for model.onnx
    (tmp_path / "model.quantize.json").write_text("{}")
    assert doctor.quantize_report_path(tmp_path / "model.int8.onnx") == tmp_path / "model.quantize.json"
    assert doctor.quantize_report_path(tmp_path / "other.onnx") == tmp_path / "other.quantize.json"
    # `quantize --out net.int8.onnx` writes net.int8.quantize.json: found for net.int8.onnx and for net.onnx
    (tmp_path / "net.int8.quantize.json").write_text("{}")
    assert doctor.quantize_report_path(tmp_path / "net.int8.onnx") == tmp_path / "net.int8.quantize.json"
    assert doctor.quantize_report_path(tmp_path / "net.onnx") == tmp_path / "net.int8.quantize.json"


def test_disk_check(tmp_path):
    Usage = namedtuple("Usage", "total used free")
    assert doctor.check_disk(str(tmp_path / "rec"), 2.0, lambda p: Usage(100e9, 99.5e9, 0.5e9))[0].status == FAIL
    [ok] = doctor.check_disk(str(tmp_path / "rec" / "deeper"), 2.0, lambda p: Usage(100e9, 50e9, 50e9))
    assert ok.status == OK and "50.0 GB free" in ok.detail and "to be created" in ok.detail


# ----------------------------------------------------------------------------- input and model on real files


def test_input_is_parsed_by_the_loops_own_parser(tmp_path):
    # the doctor accepts and refuses exactly what `fetalplanes run` does (edge.live.sources.parse_source)
    [bad] = doctor.check_input("foo://bar", {})
    assert bad.status == FAIL and "unknown scheme foo" in bad.detail and "v4l2://" in bad.fix
    [dev] = doctor.check_input("v4l2:///dev/video97", {})
    assert dev.status == FAIL and "no such device" in dev.detail


def test_input_checks(real_videos, tmp_path):
    build = sysinfo.parse_opencv_build(OPENCV_WITHOUT_GST)
    [ok] = doctor.check_input(str(real_videos[0]), build)
    assert ok.status == OK and re.search(r"\d+x\d+", ok.detail)
    [missing] = doctor.check_input(str(tmp_path / "nope.mp4"), build)
    assert missing.status == FAIL and "no such file" in missing.detail
    [gst] = doctor.check_input("v4l2src device=/dev/video0 ! videoconvert ! appsink", build)
    assert gst.status == FAIL and "GStreamer" in gst.detail and "system OpenCV" in gst.fix
    [dev] = doctor.check_input("/dev/video97", build)
    assert dev.status == FAIL and "v4l2-ctl" in dev.fix
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 2048)
    [bad] = doctor.check_input(str(broken), build)
    assert bad.status == FAIL


def test_input_image_folder(real_db_dir):
    [ok] = doctor.check_input(str(real_db_dir / "Images"), {})
    assert ok.status == OK and "images" in ok.detail


def test_model_checks(tiny_onnx, tmp_path):
    facts = canned_facts(cpu=sysinfo.parse_cpuinfo(CPUINFO_X86_AVX2))
    findings = doctor.check_model(str(tiny_onnx), facts, measure_s=0.05)
    assert by_check(findings, "model metadata")[0].status == OK and "planes" in by_check(findings, "model metadata")[0].detail
    [load] = by_check(findings, "model load")
    assert load.status == OK and float(re.search(r"([\d.]+) Hz", load.detail).group(1)) > 0
    assert "FP32" in by_check(findings, "precision")[0].detail
    # a quantize report beside the model is quoted
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    (tmp_path / "m.int8.quantize.json").write_text(json.dumps(_quantize_report()))
    rec = by_check(doctor.check_model(str(model), facts, 0.05), "quantize report")
    assert rec and "m.int8.onnx (int8; 363 Hz; fastest whose accuracy holds)" in rec[0].detail
    # not a model
    junk = tmp_path / "junk.onnx"
    junk.write_text("not onnx")
    assert by_check(doctor.check_model(str(junk), facts, 0.05), "model")[0].status == FAIL


def test_engine_on_a_box_without_tensorrt(tiny_onnx, tmp_path, monkeypatch):
    import edge.backends
    from edge.backends import read_model_info

    info = read_model_info(tiny_onnx)
    monkeypatch.setattr(edge.backends, "read_model_info", lambda path: info)  # the sidecar's metadata
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    [load] = by_check(doctor.check_model(str(engine), canned_facts(), 0.05), "model load")
    assert load.status == FAIL and "an NVIDIA GPU, TensorRT, pycuda" in load.detail
    gpu_no_pycuda = canned_facts(gpus=[sysinfo.GpuInfo("Tesla T4")], libraries=dict(ALL_LIBS, tensorrt="10.3.0"))
    [load] = by_check(doctor.check_model(str(engine), gpu_no_pycuda, 0.05), "model load")
    assert load.status == FAIL and load.detail.endswith("lacks pycuda")


def test_cli_exit_codes_and_json(tiny_onnx, real_videos, tmp_path, capsys):
    code = main(["doctor", "--model", str(tiny_onnx), "--input", str(real_videos[0]), "--record-dir", str(tmp_path), "--measure-s", "0.05", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ready"] is True and report["exit_code"] == 0
    assert {"cpu", "gpus", "libraries"} <= set(report["machine"])
    assert any(f["check"] == "model load" and f["status"] == OK for f in report["findings"])
    assert main(["doctor", "--input", str(tmp_path / "missing.mp4")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "NOT READY" in out
    assert main(["doctor", "--measure-s", "0"]) == 2
    assert main(["doctor", "--config", str(tmp_path / "none.toml")]) == 2


def test_cli_reads_the_box_config(tiny_onnx, real_videos, tmp_path, capsys):
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'model = "{tiny_onnx}"\ninput = "{real_videos[0]}"\noutputs = ["jsonl://{tmp_path}/out/p.jsonl", "display://0"]\n')
    assert main(["doctor", "--config", str(cfg), "--measure-s", "0.05", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["model"] == str(tiny_onnx) and report["options"]["input"] == str(real_videos[0])
    assert report["options"]["record_dir"] == str(tmp_path / "out")
    assert [f["status"] for f in report["findings"] if f["check"] == "config"] == [OK]
    # a flag overrides the file
    assert main(["doctor", "--config", str(cfg), "--input", str(tmp_path / "gone.mp4"), "--measure-s", "0.05"]) == 1
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    assert main(["doctor", "--config", str(bad)]) == 2
    typo = tmp_path / "typo.toml"
    typo.write_text('modle = "m.onnx"\n')
    assert main(["doctor", "--config", str(typo)]) == 2
    assert "unknown setting 'modle'" in capsys.readouterr().err
    no_model = tmp_path / "no_model.toml"
    no_model.write_text(f'input = "{real_videos[0]}"\n')
    assert main(["doctor", "--config", str(no_model)]) == 1
    assert "no model given" in capsys.readouterr().out


def test_config_with_an_output_run_would_refuse(tmp_path, capsys):
    cfg = tmp_path / "box.toml"
    cfg.write_text('model = "m.onnx"\ninput = "0"\noutputs = ["foo://x.mp4"]\n')
    assert main(["doctor", "--config", str(cfg)]) == 1
    assert "unknown scheme foo" in capsys.readouterr().out


def test_output_dirs(tmp_path):
    assert doctor.output_dirs(["display://0", f"jsonl://{tmp_path}/a/p.jsonl", f"{tmp_path}/a/rec.mp4?codec=MJPG", f"file://{tmp_path}/b/r.avi"]) == [
        str(tmp_path / "a"),
        str(tmp_path / "b"),
    ]


# ----------------------------------------------------------------------------- this machine


def test_doctor_reports_this_machine_correctly(capsys):
    """No GPU, no TensorRT, the CPU's real VNNI state, OpenCV without GStreamer - each checked against the machine."""
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    findings = {f["check"]: f for f in report["findings"]}
    machine = report["machine"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and re.search(r"^flags\s*:", cpuinfo.read_text(), re.M):
        flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.M).group(1).split())
        assert machine["cpu"]["isa"]["avx2"] == ("avx2" in flags)
        has_vnni = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
        assert machine["cpu"]["int8_dot_product"] == has_vnni
        assert findings["cpu"]["status"] == (OK if has_vnni else WARN)
        assert ("VNNI" in findings["cpu"]["detail"]) or not has_vnni
    has_gpu = shutil.which("nvidia-smi") is not None or Path("/etc/nv_tegra_release").exists()
    if has_gpu:
        pytest.skip("this machine has an NVIDIA GPU: the no-GPU expectations do not apply")
    assert machine["gpus"] == [] and "no NVIDIA GPU" in findings["gpu"]["detail"]
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        assert machine["libraries"]["tensorrt"] is None and "not installed" in findings["tensorrt"]["detail"]
    cv2 = pytest.importorskip("cv2")
    has_gst = re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None
    assert ("opencv gstreamer" in findings) == (not has_gst)


def test_doctor_and_sysinfo_import_light():
    code = (
        "import sys, edge.doctor, edge.sysinfo; edge.sysinfo.machine_stamp(); edge.doctor.Facts.read();"
        "bad = [m for m in ('torch', 'tensorrt', 'pycuda', 'calibration', 'export') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "trt, jetpack, route, fix",
    [
        ("8.5.2.2", "5.1.x", "entropy calibrator (Q/DQ from 8.6 on)", "--data DIR"),
        ("8.6.2.3", "6.0", "INT8 from the Q/DQ ONNX", ""),
        ("10.3.0.30", "6.1 / 6.2", "INT8 from the Q/DQ ONNX", ""),
        ("11.0.0", "", "INT8 only from a Q/DQ ONNX", "--target tensorrt"),
    ],
)
def test_int8_advice_follows_the_tensorrt_version(trt, jetpack, route, fix):
    """JetPack 5.1 ships TensorRT 8.5.2: no Q/DQ route there, and no "upgrade to JetPack 5.1.2" (it is still 8.5)."""
    facts = canned_facts(
        cpu=sysinfo.parse_cpuinfo(CPUINFO_ORIN),
        gpus=[sysinfo.GpuInfo(name="NVIDIA Jetson AGX Orin (integrated GPU)", compute_capability="8.7")],
        libraries=dict(ALL_LIBS, tensorrt=trt, pycuda="2024.1"),
    )
    [finding] = by_check(doctor.check_gpu(facts), "int8 route")
    assert route in finding.detail and fix in finding.fix and "5.1.2" not in finding.fix
    assert (f"JetPack {jetpack}" in finding.detail) == bool(jetpack)
    choice, why = doctor.pick_precision("onnx", facts.cpu, True, True, "8.7", trt)
    fix_cmd = doctor._precision_fix(choice, "model.onnx")
    if trt.startswith("8.5"):
        assert choice.startswith("TensorRT INT8 engine, calibrated") and "8.6+" in why
        assert "--onnx model.onnx --precision int8 --data" in fix_cmd and "quantize" not in fix_cmd
    else:
        assert choice == "TensorRT INT8 engine (FP16 as fallback)" and "--target tensorrt" in why
        assert "--target tensorrt" in fix_cmd and "--onnx model.int8.onnx --precision int8" in fix_cmd
