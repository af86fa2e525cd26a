"""`fetalplanes import-weights`: the published SonoNet release -> a self-describing ONNX model or checkpoint.

The release is read and checked by :mod:`export.sononet_weights`; the description is
:func:`export.sononet.sononet_model_info`; the ONNX file goes through the exporter of ``fetalplanes export``
(:func:`export.onnx_export.export_model`) with its PyTorch-vs-ONNX-Runtime parity check.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import FetalPlanesError
from export.sononet import resolve_variant
from export.sononet_weights import import_sononet


def import_weights(variant: str, weights: str | Path, out: str | Path, *, data: str | Path | None = None,
                   samples: int = 16, opset: int = 17, exporter: str = "auto", atol: float = 1e-3, rtol: float = 1e-3,
                   check_opencv: bool = True):
    """The published SonoNet ``variant`` -> ``out``: a self-describing ONNX file (``.onnx``, checked against
    PyTorch like ``fetalplanes export``: returns its :class:`export.onnx_export.ExportReport`) or a
    fetalplanes checkpoint (``.pt``, which ``fetalplanes export`` turns into ONNX; returns None).

    The description (:func:`export.sononet.sononet_model_info`) carries the 14 native labels, their map onto
    the planes, per-image x255 normalisation, gray "mean", resize "area", 224 x 288, and the weights' source.
    """
    from edge.files import sha256_file
    from export.sononet import sononet_model_info

    variant = resolve_variant(variant)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".onnx", ".pt"):
        raise FetalPlanesError(f"--out {out}: give a file ending in .onnx (a model for the box) or .pt (a checkpoint)",
                               hint="e.g. --out sononet16.onnx")
    from edge.live.outputs import check_file_writable

    check_file_writable(out, f"--out {out}")  # before the import: a folder that takes no file is exit 2
    model = import_sononet(weights, variant)
    sha = sha256_file(weights)
    info = sononet_model_info(variant, Path(weights).name, sha)
    if suffix == ".pt":
        from export.checkpoint import save_checkpoint

        info.checkpoint_sha256 = ""
        save_checkpoint(out, model, info, epoch=0, imported_from=Path(weights).name, weights_sha256=sha)
        return None
    from export.onnx_export import export_model

    return export_model(model, info, out, source=str(weights), source_sha256=sha,
                        source_extra={"weights": Path(weights).name}, opset=opset, data=data, samples=samples,
                        exporter=exporter, atol=atol, rtol=rtol, check_opencv=check_opencv)
