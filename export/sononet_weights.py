"""Import the published SonoNet weights (``SonoNet16.npz`` of github.com/baumgach/SonoNet-weights).

The release is a numpy ``.npz`` of float32 arrays ``arr_0`` ... ``arr_{n-1}`` in Lasagne's layer order: per
convolution (13 feature layers, the adaptation layer, the classifier) the weight ``(out, in, kh, kw)``, then
the batch norm's ``beta``, ``gamma``, ``mean`` and ``inv_std`` (Lasagne stores ``1 / sqrt(var + eps)``,
eps = 1e-4, so ``running_var = 1 / inv_std**2 - 1e-4``). SonoNet-16 has 15 x 5 = 75 arrays.

Bad input is a :class:`edge.errors.FetalPlanesError` (exit 2) naming what was expected and what was
found: a missing file, a file that is not an ``.npz`` (a pickled PyTorch ``.pth``, text, ...), a zip that
holds other members (a PyTorch zip checkpoint), a truncated or corrupt archive, the wrong number of
arrays or an array of the wrong shape (naming the variant the shapes do fit, if any).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edge.errors import FetalPlanesError
from export.sononet import BN_EPS, SONONET_LABELS, VARIANTS, feature_channels, resolve_variant

#: sha256 and size of SonoNet16.npz as released (commit 6c4df399 of baumgach/SonoNet-weights)
RELEASE_FILES = {
    "sononet16": ("SonoNet16.npz", 3_745_538, "bbbf9dde2b3af686c247a3074d890ceb685cd63fc1fc2af7e704edc07810c53f"),
}
PARTS = ("weight", "beta", "gamma", "mean", "inv_std")


def expected_shapes(variant: str, num_classes: int = len(SONONET_LABELS), in_channels: int = 1) -> list[tuple[str, tuple]]:
    """(description, shape) of every array of the release of ``variant``, in file order."""
    variant = resolve_variant(variant)
    groups = feature_channels(VARIANTS[variant])
    convs: list[tuple[int, int, int]] = []  # (out, in, k)
    c_in = in_channels
    for group in groups:
        for c_out in group:
            convs.append((c_out, c_in, 3))
            c_in = c_out
    hidden = c_in // 2
    convs += [(hidden, c_in, 1), (num_classes, hidden, 1)]
    out = []
    for i, (o, c, k) in enumerate(convs, 1):
        where = f"conv {i}" if i <= len(convs) - 2 else ("adaptation conv" if i == len(convs) - 1 else "classifier conv")
        out.append((f"{where} weight", (o, c, k, k)))
        out += [(f"{where} batch-norm {p}", (o,)) for p in PARTS[1:]]
    return out


def _fit_variant(shapes: list[tuple]) -> str | None:
    """The variant whose release these shapes are, if any."""
    for name in VARIANTS:
        if [s for _, s in expected_shapes(name)] == shapes:
            return name
    return None


def read_release(path: str | Path, variant: str = "sononet16") -> list[np.ndarray]:
    """The release's arrays, checked against ``variant``'s layout (count and every shape)."""
    variant = resolve_variant(variant)
    path = Path(path)
    release = RELEASE_FILES.get(variant, (f"SonoNet{VARIANTS[variant]}.npz", None, None))
    expected = expected_shapes(variant)
    what = f"the SonoNet release file {release[0]} ({len(expected)} float32 arrays arr_0..arr_{len(expected) - 1})"
    hint = (f"give {release[0]} as published at github.com/baumgach/SonoNet-weights"
            + (f" ({release[1]:,} bytes, sha256 {release[2][:16]}...)" if release[1] else ""))
    if not path.is_file():
        raise FetalPlanesError(f"{path}: weights file not found (expected {what})", hint=hint)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        kind = "a pickle (e.g. a PyTorch .pth saved by torch.save)" if head[:1] == b"\x80" else (
            "empty" if not head else f"not a zip archive (starts with {head!r})")
        raise FetalPlanesError(f"{path}: {kind}, {size:,} bytes; expected {what}", hint=hint)
    try:
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FetalPlanesError(
            f"{path}: truncated or corrupt zip archive ({size:,} bytes" + (f" of {release[1]:,}" if release[1] else "")
            + f"; {exc}); expected {what}", hint=hint) from None
    if bad is not None:
        raise FetalPlanesError(f"{path}: corrupt archive member {bad} ({size:,} bytes); expected {what}", hint=hint)
    arrays_found = sorted(m for m in members if m.startswith("arr_") and m.endswith(".npy"))
    others = [m for m in members if m not in arrays_found]
    if others:
        shown = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
        torch_like = any(m.endswith("data.pkl") for m in others)
        raise FetalPlanesError(
            f"{path}: a zip holding {shown}" + (" (a PyTorch checkpoint saved by torch.save, not a numpy .npz)"
                                                if torch_like else "") + f"; expected {what}",
            hint=hint + (" (PyTorch weights of SonoNet go to `train --pretrained FILE.pth`)" if torch_like else ""),
        )
    if len(arrays_found) != len(expected):
        raise FetalPlanesError(f"{path}: {len(arrays_found)} arrays; expected {what}", hint=hint)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = [np.asarray(npz[f"arr_{i}"]) for i in range(len(expected))]
    except KeyError as exc:
        raise FetalPlanesError(f"{path}: array {exc} missing (arrays must be named arr_0.."
                               f"arr_{len(expected) - 1}); expected {what}", hint=hint) from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise FetalPlanesError(f"{path}: unreadable arrays ({str(exc)[:200]}); expected {what}", hint=hint) from None
    shapes = [tuple(a.shape) for a in arrays]
    wrong = [(i, d, s, shapes[i]) for i, (d, s) in enumerate(expected) if shapes[i] != s]
    if wrong:
        i, desc, want, got = wrong[0]
        other = _fit_variant(shapes)
        raise FetalPlanesError(
            f"{path}: arr_{i} ({desc}) has shape {got}, expected {want} for {variant}"
            + (f" ({len(wrong)} arrays differ)" if len(wrong) > 1 else "")
            + (f"; these are the {other} weights" if other else ""),
            hint=f"import it as {other}" if other else hint,
        )
    for i, a in enumerate(arrays):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
            raise FetalPlanesError(f"{path}: arr_{i} ({expected[i][0]}) is not finite floating point ({a.dtype})",
                                   hint=hint)
        if expected[i][0].endswith("inv_std") and not np.all(a > 0):
            raise FetalPlanesError(f"{path}: arr_{i} ({expected[i][0]}) has values <= 0 (an inverse std must be > 0)",
                                   hint=hint)
    return arrays


def release_state_dict(model, arrays: list[np.ndarray]) -> dict:
    """``model``'s state_dict filled from the release's arrays (BN inv_std -> running_var)."""
    import torch

    pairs = model.conv_bn_pairs()
    if len(arrays) != 5 * len(pairs):
        raise FetalPlanesError(f"{len(arrays)} arrays for a model of {len(pairs)} conv+BN layers",
                               hint="a bug: the model and the release layout differ", exit_code=1)
    names = {id(m): n for n, m in model.named_modules()}
    state = dict(model.state_dict())
    for k, (conv, bn) in enumerate(pairs):
        w, beta, gamma, mean, inv_std = arrays[5 * k: 5 * k + 5]
        c, b = names[id(conv)], names[id(bn)]
        var = 1.0 / np.square(inv_std.astype(np.float64)) - BN_EPS
        state[f"{c}.weight"] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        state[f"{b}.weight"] = torch.from_numpy(gamma.astype(np.float32))
        state[f"{b}.bias"] = torch.from_numpy(beta.astype(np.float32))
        state[f"{b}.running_mean"] = torch.from_numpy(mean.astype(np.float32))
        state[f"{b}.running_var"] = torch.from_numpy(np.maximum(var, 0.0).astype(np.float32))
    return state


def load_release_into(model, path: str | Path, variant: str = "sononet16") -> None:
    """Load the release file into a SonoNet of ``variant`` with SonoNet's 14 outputs (in place)."""
    arrays = read_release(path, variant)
    if model.num_classes != len(SONONET_LABELS):
        raise FetalPlanesError(f"the release has {len(SONONET_LABELS)} outputs, the model {model.num_classes}",
                               hint="a bug: load the release first, then replace the classifier", exit_code=1)
    model.load_state_dict(release_state_dict(model, arrays), strict=True)


def import_sononet(path: str | Path, variant: str = "sononet16"):
    """The published SonoNet as a PyTorch model in eval mode (14 outputs, :data:`SONONET_LABELS`)."""
    from export.sononet import new_sononet

    model = new_sononet(resolve_variant(variant), len(SONONET_LABELS))
    load_release_into(model, path, variant)
    return model.eval()


def release_arrays(model) -> list[np.ndarray]:
    """The inverse of :func:`release_state_dict`: a SonoNet's weights in the release's layout and order
    (``np.savez(path, *arrays)`` writes a file :func:`read_release` accepts). Used by the tests."""
    arrays: list[np.ndarray] = []
    for conv, bn in model.conv_bn_pairs():
        var = bn.running_var.detach().double().numpy()
        arrays += [conv.weight.detach().numpy().astype(np.float32), bn.bias.detach().numpy().astype(np.float32),
                   bn.weight.detach().numpy().astype(np.float32), bn.running_mean.detach().numpy().astype(np.float32),
                   (1.0 / np.sqrt(var + BN_EPS)).astype(np.float32)]
    return arrays

