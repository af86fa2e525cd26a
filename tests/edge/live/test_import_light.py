"""`edge` imports (and `fetalplanes run/classify --help` work) with torch, tensorrt and pycuda absent."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CODE = """
import sys
for name in ("torch", "torchvision", "tensorrt", "pycuda", "pycuda.driver", "fetaldata", "calibration", "export"):
    sys.modules[name] = None  # any import of these now raises ImportError
import edge, edge.live
import edge.live.loop, edge.commands.run, edge.commands.classify, edge.live.classify, edge.live.config
import edge.live.capture, edge.live.outputs, edge.live.overlay, edge.live.sources, edge.live.status
import edge.live.temporal, edge.live.rotation
from edge.cli import build_parser
parser = build_parser()
parser.parse_args(["run", "--model", "m.onnx", "--input", "0"])
parser.parse_args(["classify", "x", "--model", "m.onnx", "--out", "r.csv"])
heavy = [m for m in ("torch", "tensorrt", "pycuda") if sys.modules.get(m) is not None]
assert not heavy, heavy
print("ok")
"""


def test_edge_live_imports_without_torch_tensorrt_pycuda():
    r = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr


def test_run_loop_works_without_torch(tmp_path, tiny_onnx, real_videos):
    code = (
        "import sys\n"
        "for n in ('torch', 'torchvision', 'tensorrt', 'pycuda'): sys.modules[n] = None\n"
        "from edge.cli import main\n"
        f"sys.exit(main(['run', '--model', {str(tiny_onnx)!r}, '--input', {str(real_videos[0])!r}, "
        "'--max-frames', '3', '-q']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "3 frames" in r.stdout
