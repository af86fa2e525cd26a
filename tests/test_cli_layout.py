"""One CLI layout: every command in `<pkg>/commands/<command>.py`, shared arguments in `edge/cli_args.py`,
and every `fetalplanes ...` example in README.md and docs/*.md parses with the real parser."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from edge.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "fetaldata", "calibration", "export")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# modules outside `commands/` that may still use argparse, and why
ARGPARSE_ALLOWED = {
    "edge/cli.py": "the main parser",
    "edge/cli_args.py": "the shared arguments",
    "fetaldata/scoring.py": "`python -m fetaldata.scoring` (docs/phantom.md), a script, not a fetalplanes command",
}


def _parse(argv: list[str]) -> tuple[int | None, str]:
    """(exit code or None when parsing succeeded, what the parser wrote)."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue()
    return None, out.getvalue()


# --------------------------------------------------------------------------- docs examples

_COMMAND_WORD = re.compile(r"^(?:[^:\s]*/)?fetalplanes$")  # fetalplanes, .venv/bin/fetalplanes
_IMAGE_WORD = re.compile(r"^fetalplanes:[\w.-]+$")  # `docker run ... fetalplanes:cpu ARGS` (its entry point is fetalplanes)
_LAUNCHERS = {"sudo", "exec", "time", "torchrun"}
_SHELL_STOP = {">", ">>", "|", "||", "&&", ";", "&", "2>", "2>&1"}


def _argv_after_command(line: str) -> list[str] | None:
    """The arguments given to `fetalplanes` in one shell line (None when the line does not run it)."""
    line = line.replace("$(which fetalplanes)", "fetalplanes")
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    for i, tok in enumerate(tokens):
        launched = i == 0 or tokens[0] in _LAUNCHERS
        is_module = tok == "edge.cli" and i > 0 and tokens[i - 1] == "-m"
        is_image = tokens[:2] == ["docker", "run"] and _IMAGE_WORD.match(tok) and tokens[i - 1] not in ("--name", "-t")
        if (launched and _COMMAND_WORD.match(tok)) or is_module or is_image:
            argv = []
            for t in tokens[i + 1:]:
                if t in _SHELL_STOP:
                    break
                argv.append(t)
            if is_image and not argv:
                return None  # `docker run ... fetalplanes:cpu`: the image's default command
            return argv
    return None


def _doc_examples() -> list[tuple[str, list[str], bool]]:
    """(where, argv, complete) for every `fetalplanes` command line in the docs.

    ``complete``: a line of a fenced code block (must parse as is); otherwise an inline code span in prose,
    which may leave out required arguments but must not use an unknown command, option or choice.
    """
    found = []
    for doc in DOCS:
        in_fence = False
        pending = ""
        for number, raw in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if raw.lstrip().startswith("```"):
                in_fence, pending = not in_fence, ""
                continue
            where = f"{doc.relative_to(REPO)}:{number}"
            if in_fence:
                line = pending + raw
                if line.rstrip().endswith("\\"):
                    pending = line.rstrip()[:-1] + " "
                    continue
                pending = ""
                argv = _argv_after_command(line.lstrip("$ "))
                if argv:
                    found.append((where, argv, True))
            else:
                for span in re.findall(r"`([^`]+)`", raw):
                    if re.match(r"^(?:\S*/)?fetalplanes\s+\S", span):
                        argv = _argv_after_command(span)
                        if argv and not argv[0].isupper() and not argv[0].startswith("<"):  # COMMAND, <version>
                            found.append((where, argv, False))
    return found


EXAMPLES = _doc_examples()


def test_the_docs_have_examples_to_check():
    complete = [e for e in EXAMPLES if e[2]]
    assert len(complete) >= 60, f"only {len(complete)} example command lines found: is the extraction broken?"
    commands = {argv[0] for _, argv, _ in EXAMPLES}
    assert {"run", "classify", "doctor", "train", "evaluate", "export", "quantize", "compare", "build-engine",
            "selftest", "demo", "experiment", "data"} <= commands


@pytest.mark.parametrize("where,argv,complete", EXAMPLES, ids=[f"{w} {' '.join(a)[:50]}" for w, a, _ in EXAMPLES])
def test_doc_example_parses(where, argv, complete):
    code, said = _parse(argv)
    if code == 0 and "--help" in argv:
        return
    if complete:
        assert code is None, f"{where}: `fetalplanes {shlex.join(argv)}` does not parse:\n{said}"
    else:  # an inline mention may omit required arguments or an option's value, nothing else
        assert code is None or "the following arguments are required" in said or "expected one argument" in said, (
            f"{where}: `fetalplanes {shlex.join(argv)}` does not parse:\n{said}")


# --------------------------------------------------------------------------- every command's --help


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append(prefix + (name,))
                paths += _command_paths(sub, prefix + (name,))
    return paths


COMMANDS = _command_paths(build_parser())


def test_every_package_registers_its_commands():
    names = {p[0] for p in COMMANDS}
    assert {"run", "classify", "doctor", "data", "quantize", "compare", "build-engine", "selftest",
            "train", "evaluate", "export", "demo", "experiment"} <= names
    assert ("data", "check") in COMMANDS and ("data", "phantom-video") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_help_works(path):
    code, said = _parse([*path, "--help"])
    assert code == 0 and "usage: fetalplanes " + " ".join(path) in said and "example:" in said, said


# --------------------------------------------------------------------------- the layout


def test_commands_live_in_commands_packages_and_cli_only_lists_them():
    for package in PACKAGES:
        cli = REPO / package / "cli.py"
        tree = ast.parse(cli.read_text(encoding="utf-8"))
        listed = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", "").endswith("COMMAND_MODULES") for t in n.targets)]
        assert listed, f"{cli} lists no command modules"
        modules = ast.literal_eval(listed[0].value)
        assert modules and all(m.startswith(f"{package}.commands.") for m in modules), modules
        for module in modules:
            path = REPO / (module.replace(".", "/") + ".py")
            assert "def register(" in path.read_text(encoding="utf-8"), f"{path} has no register(subparsers)"
        on_disk = {f"{package}.commands.{p.stem}" for p in (REPO / package / "commands").glob("*.py") if p.stem != "__init__"}
        assert on_disk == set(modules), f"{package}/commands/ and {package}/cli.py disagree: {on_disk ^ set(modules)}"


def test_no_argparse_in_implementation_modules():
    bad = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "/commands/" in rel or rel.endswith("/cli.py") or rel in ARGPARSE_ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if "argparse" in names:
                    bad.append(f"{rel}:{node.lineno}")
    assert not bad, "argparse outside <pkg>/commands/ and <pkg>/cli.py: " + ", ".join(bad)


def test_data_is_declared_once():
    """--data (a FETAL_PLANES_DB folder) comes from edge.cli_args everywhere it means that folder."""
    declared = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if re.search(r"add_argument\(\s*\"--data\"", text):
                declared.append(path.relative_to(REPO).as_posix())
    # selftest's --data is a folder of images of any layout, not a FETAL_PLANES_DB folder
    assert sorted(declared) == ["calibration/commands/selftest.py", "edge/cli_args.py"], declared
    required = {
        ("train",): ["--out", "o"],
        ("evaluate",): ["--model", "m.onnx"],
        ("compare",): ["--reference", "r.onnx", "--candidate", "c.onnx"],
        ("quantize",): ["--onnx", "m.onnx", "--out", "m.int8.onnx"],
        ("experiment", "table2"): ["--out", "study"],
    }
    for path, rest in required.items():
        assert _parse([*path, "--data", "FETAL_PLANES_DB", *rest])[0] is None, path
        code, said = _parse([*path, "--data", " ", *rest])
        assert code == 2 and "argument --data: an empty folder name" in said, (path, said)


# --------------------------------------------------------------------------- --gpu and the old --device


@pytest.mark.parametrize("command", [["build-engine", "--onnx", "m.onnx", "--precision", "fp16", "--out", "m.engine"],
                                     ["selftest"]])
def test_gpu_index_and_the_deprecated_device_alias(command, capsys):
    parser = build_parser()
    assert parser.parse_args(command).gpu == 0
    assert parser.parse_args([*command, "--gpu", "1"]).gpu == 1
    assert "deprecated" not in capsys.readouterr().err
    args = parser.parse_args([*command, "--device", "2"])
    assert args.gpu == 2 and not hasattr(args, "device")
    err = capsys.readouterr().err
    assert "--device is deprecated" in err and "--gpu" in err
    code, said = _parse([*command, "--gpu", "cuda:0"])
    assert code == 2 and "--gpu" in said


@pytest.mark.parametrize("command", [["train", "--data", "d", "--out", "o"], ["experiment", "fig3", "--data", "d", "--out", "o"]])
def test_torch_device_is_checked(command):
    parser = build_parser()
    for good in ("auto", "cpu", "cuda", "cuda:1", "CUDA:0"):
        assert parser.parse_args([*command, "--device", good]).device == good
    code, said = _parse([*command, "--device", "gpu0"])
    assert code == 2 and "use auto, cpu, cuda or cuda:N" in said
