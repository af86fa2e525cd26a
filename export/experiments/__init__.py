"""The study's experiments (Burgos-Artizzu et al., Sci Rep 2020), one function per table and figure.

``run_experiment(name, ExperimentConfig(...))`` trains (``export.train``) and evaluates
(``export.evaluate.evaluate_model``) every sub-run, resuming finished ones, and writes the table or
figure in the study's layout with the published numbers (``benchmarks/paper/published.json``) beside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edge.errors import FetalPlanesError
from export.experiments.config import EDGE_ARCHS, QUICK_ARCH, ExperimentConfig, RunSpec  # noqa: F401
from export.experiments.runs import Trainer, default_trainer


def _table2(c, t):
    from export.experiments import table2
    return table2.run(c, t)


def _table3(c, t):
    from export.experiments import table3
    return table3.run(c, t)


def _table4(c, t):
    from export.experiments import table4
    return table4.run(c, t)


def _fig(name):
    def run(c, t):
        from export.experiments import figures
        return getattr(figures, f"run_{name}")(c, t)
    return run


#: name -> (what it reproduces, function); fig3 comes after table2 so that it can reuse its DenseNet-169 run.
EXPERIMENTS: dict[str, tuple[str, Callable[[ExperimentConfig, Trainer], dict[str, Path]]]] = {
    "table2": ("architectures: top-1/top-3 error, class accuracy, parameters, FP32/INT8 speed", _table2),
    "table3": ("ablations (Inception-v3): no pre-training, last layers only, no augmentation, class re-weighting",
               _table3),
    "table4": ("transfer across operator/machine groups with >= 2000 images, plus all sources (Inception-v3)",
               _table4),
    "fig5": ("learning curve: top-1 error against the number of training patients (Inception-v3)", _fig("fig5")),
    "fig4": ("brain sub-planes with their confusion matrix (DenseNet-169)", _fig("fig4")),
    "fig3": ("confusion matrix of the study's best model (DenseNet-169) beside the technicians", _fig("fig3")),
}


def run_experiment(name: str, config: ExperimentConfig, trainer: Trainer | None = None) -> dict[str, Path]:
    """Run one experiment (or ``all``); returns the files written {kind: path} (prefixed by the name for ``all``)."""
    if name == "all":
        out: dict[str, Path] = {}
        for n in EXPERIMENTS:
            out.update({f"{n}.{k}": v for k, v in run_experiment(n, config, trainer).items()})
        return out
    if name not in EXPERIMENTS:
        raise FetalPlanesError(f"unknown experiment '{name}'", hint=f"use one of: {', '.join(EXPERIMENTS)}, all")
    return EXPERIMENTS[name][1](config, trainer or default_trainer)
