"""Fault class: signals (Ctrl-C, SIGTERM from systemd or a scheduler, SIGKILL) during train, quantize and
classify. Afterwards: exit 130 (SIGKILL: killed), no process left behind, every file either complete and
valid or absent (no half-written model, checkpoint or report), and a training run that resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from faults_common import children_of, cli_command, cli_env, needs_proc, real_subset_db, wait_gone, REPO


class Child:
    """A CLI command in its own session, its output collected by threads."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen(cli_command(args), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: k.extend(iter(s.readline, "")), daemon=True).start()

    def wait_until(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"ended (exit {self.proc.returncode}) before {what}:\n{''.join(self.err)[-3000:]}")
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"no {what} within {timeout} s:\n{''.join(self.err)[-3000:]}")

    def finish(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"did not end within {timeout} s after the signal:\n{''.join(self.err)[-3000:]}")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def stderr(self) -> str:
        time.sleep(0.2)  # let the reader threads drain
        return "".join(self.err)


def _send(child: Child, how: str) -> None:
    if how == "ctrl-c":  # the terminal sends SIGINT to the whole foreground process group
        os.killpg(child.proc.pid, signal.SIGINT)
    else:
        os.kill(child.proc.pid, getattr(signal, how))


def _wait_reading(child: Child, folder: Path, timeout: float) -> None:
    """Until the child holds a file of ``folder`` open. An image is open for about 50 us of each 4 ms it takes
    (numpy.fromfile, then decoding): polling every 0.1 s, with a scan of /proc each time, caught it only after
    about a minute alone and missed it for 120 s in a loaded full run; so poll the child's own fds every 2 ms and
    its children's now and then."""
    end = time.monotonic() + timeout
    n = 0
    while time.monotonic() < end:
        if _opened_under(child.proc.pid, folder) or (
                n % 100 == 0 and any(_opened_under(c, folder) for c in children_of(child.proc.pid))):
            return
        if child.proc.poll() is not None:
            pytest.fail(f"ended (exit {child.proc.returncode}) before reading the archive:\n{''.join(child.err)[-3000:]}")
        n += 1
        time.sleep(0.002)
    child.kill()
    pytest.fail(f"no reading the archive within {timeout} s:\n{''.join(child.err)[-3000:]}")


def _opened_under(pid: int, folder: Path) -> bool:
    try:
        return any(str(folder) in os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@pytest.fixture(scope="module")
def real12(real_db_dir, tmp_path_factory) -> Path:
    return real_subset_db(real_db_dir, tmp_path_factory.mktemp("real12"))


@pytest.mark.parametrize("how", ["SIGTERM", "ctrl-c", "SIGKILL"])
def test_train_interrupted_leaves_no_process_and_a_resumable_checkpoint(how, real12, tmp_path, capsys):
    pytest.importorskip("torch")
    needs_proc()
    from export.checkpoint import read_checkpoint

    out = tmp_path / "run"
    args = ["train", "--data", str(real12), "--out", str(out), "--image-size", "32", "--pretrained", "none",
            "--no-progress", "--batch-size", "4", "--no-cache", "--epochs", "500", "--patience", "500"]
    child = Child(args)  # default --workers 2
    child.wait_until(lambda: (out / "last.pt").is_file(), 180, "first checkpoint")
    child.wait_until(lambda: len(children_of(child.proc.pid)) >= 2, 60, "DataLoader workers")
    family = children_of(child.proc.pid)
    _send(child, how)
    rc = child.finish()
    assert not wait_gone(family), f"processes left behind after {how}: {wait_gone(family, 0)}"
    if how == "SIGKILL":
        assert rc == -signal.SIGKILL
    else:
        err = child.stderr
        said = "".join(child.out) + err
        assert rc == 130, err[-3000:]
        assert "interrupted" in err and "--resume" in said, said[-3000:]
        assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    assert not list(out.glob(".*.tmp*")), "a half-written temporary file was left"
    ckpt, info = read_checkpoint(out / "last.pt")
    epoch = int(ckpt["epoch"])
    assert epoch >= 1 and info.input_size == 32
    if how == "SIGTERM":  # and it resumes
        from edge.cli import main

        resume = [a if a != "500" else str(epoch + 1) for a in args] + ["--resume", "--workers", "0"]
        resume[resume.index("--patience") + 1] = "500"
        assert main(resume) == 0, capsys.readouterr().err[-3000:]
        assert int(read_checkpoint(out / "last.pt")[0]["epoch"]) == epoch + 1


def test_quantize_interrupted_leaves_no_partial_model_or_report(make_tiny_onnx, phantom_db, tmp_path):
    src = make_tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "out" / "tiny.int8.onnx"
    child = Child(["quantize", "--onnx", str(src), "--data", str(phantom_db), "--out", str(out),
                   "--calib-size", "24", "--threads", "1", "--speed-seconds", "2", "--speed-rounds", "3"])
    child.wait_until(lambda: any("check images" in line for line in child.out), 180, "the check images")
    family = children_of(child.proc.pid)
    _send(child, "SIGTERM")
    rc = child.finish()
    err = child.stderr
    assert rc == 130 and "interrupted (SIGTERM)" in err and "Traceback" not in err, err[-3000:]
    assert not wait_gone(family)
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert not [n for n in left if n.startswith(".")], f"work files left: {left}"
    assert not (out.parent / "tiny.int8.quantize.json").exists() or out.is_file()
    if out.exists():  # interrupted after the model was complete: it must load
        from edge.backends import open_runner

        with open_runner(out):
            pass


def test_classify_interrupted_exits_130_without_a_partial_csv(real_db_dir, tiny_onnx, tmp_path):
    needs_proc()
    src = real_db_dir / "Images" / "Patient00097_Plane4_1_of_1.png"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    archive = tmp_path / "archive"
    archive.mkdir()
    one = tmp_path / "one.png"  # a copy of our own: the shared file may sit on another filesystem, read-only
    one.write_bytes(src.read_bytes())
    for i in range(30000):  # hard links: an archive large enough (about a minute of work) to be caught reading it
        os.link(one, archive / f"Patient{i:05d}_Plane4_1_of_1.png")
    out = tmp_path / "results.csv"
    child = Child(["classify", str(archive), "--model", str(tiny_onnx), "--out", str(out)])
    _wait_reading(child, archive, 120)
    _send(child, "SIGTERM")
    rc = child.finish()
    err = child.stderr
    assert rc == 130 and "interrupted (SIGTERM)" in err and "Traceback" not in err, err[-3000:]
    if out.exists():  # if anything was written, it is a complete CSV
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines and lines[0].startswith("exam,file,label")


def test_an_interrupt_during_a_fork_is_kept_not_swallowed():
    """A signal whose KeyboardInterrupt would land in an at-fork hook is recorded and raised at the next
    safe point; outside a fork it raises at once; the previous handlers come back afterwards."""
    from edge import interrupts

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with interrupts.handle_interrupts():
            interrupts._forking.add(1)  # as between os.fork's hooks
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run: recorded, not raised
                assert interrupts.pending() == "SIGTERM"
            finally:
                interrupts._forking.discard(1)
            interrupts.raise_if_interrupted()
    assert signal.getsignal(signal.SIGTERM) is before and interrupts.pending() is None
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        with interrupts.handle_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
