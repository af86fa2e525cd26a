"""Helpers of the fault suite: run the CLI in a child process (timeouts, signals), find its descendants,
build small faulty inputs. Imported by the tests/faults modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_IMAGES = 12


def cli_command(args: list[str], prelude: str = "") -> list[str]:
    """`python -c` running `edge.cli.main(args)` of this checkout, after an optional prelude."""
    code = f"import sys\n{prelude}\nfrom edge.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return [sys.executable, "-u", "-c", code, *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(args: list[str], timeout: float = 120, prelude: str = "") -> subprocess.CompletedProcess:
    """Run a command to its end; a hang fails the test (the child and its children are killed)."""
    proc = subprocess.Popen(cli_command(args, prelude), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"`fetalplanes {' '.join(args)}` hung for {timeout} s (killed)\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code``, no traceback, every needle in stderr; returns stderr."""
    err = result.stderr
    assert result.returncode == code, f"exit {result.returncode}, wanted {code}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    for n in needles:
        assert n in err, f"{n!r} not in stderr:\n{err[-3000:]}"
    return err


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """The pids still alive after up to ``timeout`` seconds."""
    end = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = {p for p in left if alive(p)}
    return left


def needs_proc() -> None:
    if not Path("/proc/self/stat").is_file():
        pytest.skip("needs Linux /proc to follow child processes")


def real_subset_db(real_db_dir: Path, dst: Path) -> Path:
    """The 12 real FETAL_PLANES_DB images with their own rows of the real CSV: a dataset that trains."""
    images = sorted((real_db_dir / "Images").glob("*.png"))
    if len(images) < REAL_IMAGES:
        pytest.skip(f"the {REAL_IMAGES} real images are not all under {real_db_dir / 'Images'}")
    names = {p.stem for p in images}
    lines = (real_db_dir / "FETAL_PLANES_DB_data.csv").read_text(encoding="utf-8-sig").splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(";", 1)[0] in names]
    (dst / "Images").mkdir(parents=True, exist_ok=True)
    (dst / "FETAL_PLANES_DB_data.csv").write_text("\n".join(kept) + "\n")
    for p in images:
        shutil.copyfile(p, dst / "Images" / p.name)
    return dst


def onnx_with_input_shape(src: Path, dst: Path, dims: tuple) -> Path:
    """A copy of ONNX model ``src`` whose declared input shape is ``dims`` (metadata unchanged)."""
    import onnx

    model = onnx.load(str(src))
    shape = model.graph.input[0].type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = int(d)
    onnx.save(model, str(dst))
    return dst
