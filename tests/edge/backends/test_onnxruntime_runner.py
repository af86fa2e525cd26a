"""The ONNX Runtime runner's session options (threads, spin-waiting)."""

import numpy as np
import pytest

from edge.backends import open_runner
from edge.commands.run import overrides_from_args
from edge.live.config import load_run_config


@pytest.mark.parametrize("spin, flag", [(False, "0"), (True, "1")])
def test_spin_option_reaches_the_session(tiny_onnx, spin, flag):
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    with open_runner(tiny_onnx, threads=1, spin=spin) as runner, open_runner(tiny_onnx, threads=1) as default:
        opts = runner.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == flag
        assert opts.intra_op_num_threads == 1
        assert np.allclose(runner.infer(x), default.infer(x))  # same results, only the waiting differs


def test_live_loop_does_not_spin_unless_asked(tiny_onnx):
    import argparse

    from edge.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "--model", str(tiny_onnx), "--input", "file://x.mp4"])
    assert load_run_config(None, overrides_from_args(args)).spin is False
    args = parser.parse_args(["run", "--model", str(tiny_onnx), "--input", "file://x.mp4", "--spin"])
    assert isinstance(args, argparse.Namespace) and load_run_config(None, overrides_from_args(args)).spin is True
