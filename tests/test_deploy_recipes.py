"""The deployment recipes in deploy/: Dockerfiles, their build-context ignore files, the systemd unit,
the example box config and the install script. Docker and systemd cannot run here, so each file is
parsed and checked against the repository and the real CLI."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILES = sorted(p for p in DEPLOY.glob("Dockerfile.*") if p.suffix != ".dockerignore")
CONFIG_IN_IMAGE = "/etc/fetalplanes/box.toml"


# ----------------------------------------------------------------------------- a small Dockerfile parser


@dataclass
class Instruction:
    name: str  # upper case: FROM, RUN, COPY, ...
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comment lines are removed even inside a continuation
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        if logical:
            name, _, args = logical.partition(" ")
            out.append(Instruction(name.upper(), args.strip(), start))
    if pending:
        raise ValueError(f"line {start}: continuation never ends")
    return out


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT arguments: the JSON exec form, or the shell form split like a shell would."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copy_sources(args: str) -> list[str]:
    """Sources of a COPY/ADD (flags and the destination removed)."""
    parts = json.loads(args) if args.startswith("[") else shlex.split(args)
    parts = [p for p in parts if not p.startswith("--")]
    return parts[:-1]


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides; '!' re-includes."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat[1:] if negate else pat
        if any(fnmatch(prefix, pat.strip("/")) for prefix in prefixes):
            excluded = not negate
    return excluded


def read_ignore(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text().splitlines()] if path.is_file() else []
    return [ln for ln in lines if ln and not ln.startswith("#")]


def test_parser_on_a_canned_dockerfile():
    text = 'ARG X=1\nFROM base:${X}\n# c\nRUN a \\\n  # inside\n  && b\nCOPY --chown=u:g a.txt b/ /dst/\nCMD ["x", "y"]\n'
    ins = parse_dockerfile(text)
    assert [i.name for i in ins] == ["ARG", "FROM", "RUN", "COPY", "CMD"]
    assert ins[2].args == "a  && b" and ins[2].line == 4
    assert copy_sources(ins[3].args) == ["a.txt", "b/"]
    assert exec_form(ins[4].args) == ["x", "y"]
    assert dockerignore_excludes(["*", "!edge", "**/__pycache__"], "edge/cli.py") is False
    assert dockerignore_excludes(["*", "!edge", "**/__pycache__"], "edge/__pycache__/cli.pyc") is True
    assert dockerignore_excludes(["*", "!edge"], ".venv/bin/python") is True
    with pytest.raises(ValueError):
        parse_dockerfile("RUN a \\\n")


# ----------------------------------------------------------------------------- the Dockerfiles


def test_both_recipes_exist():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.jetson", "Dockerfile.cpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile(dockerfile: Path):
    ins = parse_dockerfile(dockerfile.read_text())
    names = [i.name for i in ins]
    known = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "VOLUME", "EXPOSE", "LABEL", "HEALTHCHECK", "ENTRYPOINT", "CMD", "SHELL", "STOPSIGNAL"}
    assert set(names) <= known, set(names) - known
    first = next(i for i in ins if i.name != "ARG")
    assert first.name == "FROM", f"{dockerfile.name}: the first instruction after ARGs must be FROM"
    # every COPY/ADD source exists in the repository and is not left out of the build context
    ignore = read_ignore(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    copied = [src for i in ins if i.name in ("COPY", "ADD") for src in copy_sources(i.args)]
    assert copied, "the recipe installs nothing from the repository"
    for src in copied:
        assert not src.startswith(("http://", "https://", "/")), f"{dockerfile.name}: COPY {src} is not a repository path"
        assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src}: no such file in the repository"
        files = [p for p in (REPO / src).rglob("*.py")] if (REPO / src).is_dir() else [REPO / src]
        for f in files:
            if "__pycache__" not in f.parts:
                rel = f.relative_to(REPO).as_posix()
                assert not dockerignore_excludes(ignore, rel), f"{dockerfile.name}.dockerignore leaves out {rel}"
    assert any(s.rstrip("/") == "edge" for s in copied) and "pyproject.toml" in copied
    assert dockerignore_excludes(ignore, ".venv/bin/python") and dockerignore_excludes(ignore, ".git/HEAD"), "the build context would carry the venv / .git"
    # the container runs the loop on the box config that the image carries
    entry = exec_form(next(i for i in ins if i.name == "ENTRYPOINT").args)
    cmd = exec_form(next(i for i in ins if i.name == "CMD").args)
    argv = entry + cmd
    assert Path(argv[0]).name == "fetalplanes" and argv[1:3] == ["run", "--config"], argv
    config_target = argv[3]
    assert any(i.name == "COPY" and i.args.split()[-1] == config_target and "deploy/box.example.toml" in i.args for i in ins)
    assert any(i.name == "USER" and i.args not in ("root", "0") for i in ins), "run as an unprivileged user"


def test_jetson_recipe_keeps_the_system_opencv_and_tensorrt():
    text = (DEPLOY / "Dockerfile.jetson").read_text()
    ins = parse_dockerfile(text)
    base = next(i for i in ins if i.name == "FROM").args
    assert base.startswith("nvcr.io/nvidia/l4t-"), base
    runs = " ".join(i.args for i in ins if i.name == "RUN")
    assert "--system-site-packages" in runs
    assert "opencv-python" not in runs and "[opencv]" not in runs, "pip's OpenCV would hide JetPack's (GStreamer)"
    assert "jetson-constraints.txt" in runs
    constraints = (DEPLOY / "jetson-constraints.txt").read_text()
    assert "numpy" in constraints and "<2" in constraints


def env_of(ins: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs of a Dockerfile, in order, with $VAR / ${VAR} expanded from earlier ones."""
    import re

    env: dict[str, str] = {}
    for i in ins:
        if i.name == "ENV":
            for part in shlex.split(i.args):
                key, sep, value = part.partition("=")
                assert sep, f"line {i.line}: ENV {part} is not key=value"
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
    return env


def test_jetson_recipe_builds_pycuda_or_fails():
    """pycuda has no aarch64 wheel: the image must compile it (toolchain, CUDA on PATH) and stop if it does not."""
    ins = parse_dockerfile((DEPLOY / "Dockerfile.jetson").read_text())
    env = env_of(ins)
    assert env.get("CUDA_ROOT") == "/usr/local/cuda"
    assert "/usr/local/cuda/bin" in env.get("PATH", "").split(":"), "nvcc must be on PATH for pycuda's build"
    runs = [i.args for i in ins if i.name == "RUN"]
    apt = next(r for r in runs if "apt-get install" in r)
    assert "build-essential" in apt.split() or {"gcc", "g++"} <= set(apt.split()), "pycuda needs a C++ compiler"
    assert "python3-dev" in apt.split(), "pycuda needs Python's headers"
    [build] = [r for r in runs if "pycuda" in r]
    steps = [step.strip() for step in build.split("&&")]
    install = next(k for k, step in enumerate(steps) if "pip install" in step and "pycuda" in step.split())
    assert "||" not in build, "a failed pycuda build must fail the image build, not print a warning"
    assert "stubs" in steps[install], "libcuda is mounted only at run time: link against CUDA's stub"
    checks = [step for step in steps[install + 1 :] if "pycuda._driver" in step]
    assert checks and "sys.exit" in checks[0], "after installing, the build must check that pycuda's driver module exists"

def test_jetson_pycuda_check_passes_only_with_a_built_driver_module(tmp_path):
    ins = parse_dockerfile((DEPLOY / "Dockerfile.jetson").read_text())
    [build] = [i.args for i in ins if i.name == "RUN" and "pycuda" in i.args]
    code = shlex.split(next(step for step in build.split("&&") if "pycuda._driver" in step))[-1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode != 0 and "pycuda did not build" in missing.stderr
    pkg = tmp_path / "pycuda"  # a stand-in for a built pycuda: the package and its compiled driver module
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_driver.py").write_text("raise ImportError('needs libcuda.so.1, as at image build time')\n")
    built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env=dict(env, PYTHONPATH=str(tmp_path)))
    assert built.returncode == 0, built.stderr  # found without importing it (importing needs the GPU)


def test_cpu_recipe_installs_the_opencv_extra():
    runs = " ".join(i.args for i in parse_dockerfile((DEPLOY / "Dockerfile.cpu").read_text()) if i.name == "RUN")
    assert '".[opencv]"' in runs or "'.[opencv]'" in runs
    assert "opencv" in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_container_command_parses_with_the_real_cli(dockerfile: Path):
    ins = parse_dockerfile(dockerfile.read_text())
    argv = exec_form(next(i for i in ins if i.name == "ENTRYPOINT").args) + exec_form(next(i for i in ins if i.name == "CMD").args)
    _parse_with_cli(argv[1:])


def _parse_with_cli(args: list[str]):
    from edge.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if args[0] not in sub.choices:
        pytest.skip(f"`fetalplanes {args[0]}` is not registered in this checkout")
    ns = parser.parse_args(args)  # exits 2 (SystemExit) on an unknown flag
    assert ns.command == args[0]
    return ns


# ----------------------------------------------------------------------------- the systemd unit


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit file -> {section: {key: [values in order]}}; comments and continuations handled."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, {})
            continue
        assert current is not None, f"setting outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        sections[current].setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit((DEPLOY / "fetalplanes.service").read_text())


def test_unit_parser_on_canned_text():
    u = parse_unit("# c\n[Unit]\nDescription=x\n[Service]\nExecStart=/bin/a \\\n  --b c\nEnvironment=A=1\nEnvironment=B=2\n")
    assert u["Service"]["ExecStart"] == ["/bin/a  --b c"] and u["Service"]["Environment"] == ["A=1", "B=2"]


def test_unit_sections_restart_and_journal(unit):
    assert {"Unit", "Service", "Install"} <= set(unit)
    svc = unit["Service"]
    assert svc["Restart"] == ["on-failure"]
    assert float(svc["RestartSec"][0]) > 0
    assert "StartLimitIntervalSec" in unit["Unit"] and int(unit["Unit"]["StartLimitBurst"][0]) >= 1
    assert svc["StandardOutput"] == ["journal"] and svc["StandardError"] == ["journal"]
    assert "2" in svc.get("RestartPreventExitStatus", [""])[0].split(), "a bad config (exit 2) must not restart forever"
    assert svc["User"][0] not in ("root", "0")
    assert "video" in svc.get("SupplementaryGroups", [""])[0].split(), "capture cards (and the Jetson GPU) need group video"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_execstart_runs_the_loop_on_the_installed_config(unit):
    [exec_start] = unit["Service"]["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/") and Path(argv[0]).name == "fetalplanes", "systemd needs an absolute path"
    assert argv[1:3] == ["run", "--config"]
    config = argv[3]
    steps = "\n".join(_install_steps("--cpu"))
    venv = str(Path(argv[0]).parent.parent)
    assert f"-m venv {venv}" in steps, "install.sh must create the venv the unit runs"
    assert f"deploy/box.example.toml {config}" in steps, "install.sh must install the config the unit reads"
    if "--status" in argv:
        status = Path(argv[argv.index("--status") + 1])
        assert status.parent == Path("/run") / unit["Service"]["RuntimeDirectory"][0], "the status file must live in the RuntimeDirectory"
    for pre in unit["Service"].get("ExecStartPre", []):
        pre_argv = shlex.split(pre.lstrip("-"))
        assert Path(pre_argv[0]).name == "fetalplanes" and pre_argv[1] == "doctor"
        _parse_with_cli(pre_argv[1:])
    _parse_with_cli(argv[1:])


# ----------------------------------------------------------------------------- config and install script


def test_box_example_toml_parses_and_is_a_valid_run_config():
    path = DEPLOY / "box.example.toml"
    data = tomllib.loads(path.read_text())
    assert {"model", "input", "outputs"} <= set(data) and isinstance(data["outputs"], list)
    assert data["status"].startswith("/run/fetalplanes/")
    try:
        from edge.live.config import load_run_config
    except ImportError:
        pytest.skip("edge.live.config is not in this checkout")
    config = load_run_config(path)  # unknown keys or wrong types raise here
    config.validate()
    assert config.rotation.enabled and config.rotation.max_total_mb > 0, "a box running for months needs bounded files"


def _install_steps(mode: str) -> list[str]:
    """The commands `deploy/install.sh --dry-run MODE` would run."""
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run", mode], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [ln[2:] for ln in proc.stdout.splitlines() if ln.startswith("+ ")]


@pytest.mark.parametrize("mode", ["--cpu", "--jetson"])
def test_install_script_dry_run(mode):
    script = DEPLOY / "install.sh"
    assert os.access(script, os.X_OK), "install.sh must be executable"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = dict(os.environ, PYTHON=sys.executable)
    steps = _install_steps(mode)
    text = "\n".join(steps)
    assert "systemctl daemon-reload" in text and "systemctl enable fetalplanes" in text
    assert f"deploy/fetalplanes.service /etc/systemd/system/fetalplanes.service" in text
    assert "doctor --config /etc/fetalplanes/box.toml" in text
    venv_line = next(s for s in steps if " -m venv " in s)
    if mode == "--jetson":
        assert "--system-site-packages" in venv_line
        assert "[opencv]" not in text and "jetson-constraints.txt" in text
    else:
        assert "--system-site-packages" not in venv_line and "[opencv]" in text
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr
