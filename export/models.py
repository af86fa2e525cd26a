"""Build any torchvision classification model by name, for gray images and the task's classes.

``build_model(arch, num_classes, pretrained)``:

1. builds torchvision's model with its ImageNet geometry (3 channels, 1000 classes),
2. loads weights: ``"imagenet"`` (torchvision's weights API: the local torch hub cache, or a
   download where online), a local ``.pth`` file, or ``"none"`` (random init),
3. makes the first convolution single-channel by averaging its three input filters (as the paper),
4. replaces every 1000-class head (the main one and auxiliary ones, e.g. Inception-v3's
   ``AuxLogits``) by a fresh one for ``num_classes``.

SonoNet-16/32/64 (``export.sononet``, single-channel by design, no ImageNet weights; ``--pretrained`` is
``none`` or the published ``SonoNet16.npz``) are built by :func:`build_sononet`.

torch and torchvision are imported inside the functions (this module is imported lazily by the
``train``/``export`` commands only).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError

IMAGENET_CLASSES = 1000
#: Input sizes other than the default 224 px.
ARCH_INPUT_SIZE = {"inception_v3": 299}
DEFAULT_INPUT_SIZE = 224
#: Convenience spellings -> torchvision names.
ALIASES = {
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3": "mobilenet_v3_large",
    "mobilenetv3_small": "mobilenet_v3_small",
    "mobilenetv3_large": "mobilenet_v3_large",
    "inception": "inception_v3",
    "inceptionv3": "inception_v3",
    "densenet": "densenet169",
    "resnext": "resnext50_32x4d",
    "resnext50": "resnext50_32x4d",
    "resnext101": "resnext101_32x8d",
    "sononet": "sononet16",
}
#: Weight of auxiliary classifiers' losses (torchvision references/classification uses 0.4 for Inception-v3).
AUX_LOSS_WEIGHT = 0.4


def available_architectures() -> list[str]:
    """Names of torchvision's classification models, and SonoNet-16/32/64."""
    import torchvision

    from export.sononet import VARIANTS

    return sorted(torchvision.models.list_models(module=torchvision.models)) + list(VARIANTS)


def resolve_arch(arch: str) -> str:
    """A torchvision classification model name, or a FetalPlanesError suggesting close names."""
    names = available_architectures()
    key = arch.strip().lower().replace("-", "_")
    key = ALIASES.get(key.replace("_", ""), ALIASES.get(key, key))
    if key in names:
        return key
    squashed = {n.replace("_", ""): n for n in names}
    if key.replace("_", "") in squashed:
        return squashed[key.replace("_", "")]
    close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise FetalPlanesError(
        f"--arch: unknown architecture '{arch}'",
        hint=hint + "any torchvision classification model works, e.g. mobilenet_v3_small, mobilenet_v2, resnet18, "
        "densenet169, inception_v3, and sononet16/sononet32/sononet64 (`python -c \"import torchvision; print(torchvision.models.list_models())\"` lists them)",
    )


def default_input_size(arch: str) -> int:
    """The paper's input size for ``arch``: 299 px for Inception-v3, else 224 px."""
    return ARCH_INPUT_SIZE.get(resolve_arch(arch), DEFAULT_INPUT_SIZE)


def check_pretrained(arch: str, pretrained: str | Path) -> None:
    """Refuse early a weights source the architecture cannot take (SonoNet has no ImageNet weights)."""
    from export.sononet import VARIANTS, is_sononet

    name = resolve_arch(arch)
    if is_sononet(name) and str(pretrained).lower() == "imagenet":
        raise FetalPlanesError(
            f"--pretrained imagenet: {name} has no ImageNet weights",
            hint=f"use --pretrained none (train from scratch) or --pretrained PATH/SonoNet{VARIANTS[name]}.npz "
            "(the published weights, trained on fetal ultrasound; github.com/baumgach/SonoNet-weights)",
        )
    if is_sononet(name) and str(pretrained).lower().endswith(".npz"):
        from export.sononet_weights import read_release

        read_release(pretrained, name)  # a wrong file fails now, not after the data are read


def _build_kwargs(arch: str) -> dict[str, Any]:
    # Inception-v3 / GoogLeNet: keep the auxiliary classifiers (trained with weight AUX_LOSS_WEIGHT)
    # and never apply torchvision's ImageNet input transform: our inputs are gray, normalised by us.
    if arch == "inception_v3":
        return {"aux_logits": True, "transform_input": False, "init_weights": True}
    if arch == "googlenet":
        return {"aux_logits": True, "transform_input": False, "init_weights": True}
    return {}


def _parent_and_name(model, dotted: str):
    parent = model
    *path, name = dotted.split(".")
    for part in path:
        parent = getattr(parent, part)
    return parent, name


def first_conv_name(model, in_channels: int = 3) -> str:
    """The dotted name of the first Conv2d that reads the ``in_channels``-channel image."""
    import torch.nn as nn

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == in_channels:
            return name
    raise FetalPlanesError(
        f"{type(model).__name__}: no {in_channels}-channel input convolution found",
        hint="choose a convolutional torchvision classification model",
    )


def make_single_channel(model) -> str:
    """Replace the first convolution by a 1-channel one whose filters average the three RGB filters."""
    import torch
    import torch.nn as nn

    name = first_conv_name(model)
    parent, attr = _parent_and_name(model, name)
    old: nn.Conv2d = getattr(parent, attr)
    new = nn.Conv2d(
        1, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
        groups=1, bias=old.bias is not None, padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(old.weight.mean(dim=1, keepdim=True))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, attr, new)
    return name


def replace_heads(model, num_classes: int) -> list[str]:
    """Replace every ImageNet classifier (Linear or 1x1 Conv with 1000 outputs) by a new one; their names."""
    import torch.nn as nn

    replaced = []
    for name, module in list(model.named_modules()):
        new = None
        if isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES:
            new = nn.Linear(module.in_features, num_classes, bias=module.bias is not None)
        elif isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES and module.kernel_size == (1, 1):
            new = nn.Conv2d(module.in_channels, num_classes, 1, bias=module.bias is not None)
        if new is not None:
            parent, attr = _parent_and_name(model, name)
            setattr(parent, attr, new)
            replaced.append(name)
    if not replaced:
        raise FetalPlanesError(
            f"{type(model).__name__}: no 1000-class ImageNet head found to replace",
            hint="choose a torchvision classification model",
        )
    return replaced


def head_names(model, num_classes: int) -> list[str]:
    """Names of the classifier heads (modules producing ``num_classes`` outputs; a model's own
    ``head_module_names`` where it declares them, e.g. SonoNet's 1x1 conv + BN classifier)."""
    import torch.nn as nn

    declared = getattr(model, "head_module_names", None)
    if declared:
        return list(declared)
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            out.append(name)
        elif isinstance(module, nn.Conv2d) and module.out_channels == num_classes and module.kernel_size == (1, 1):
            out.append(name)
    return out


def freeze_backbone(model, num_classes: int) -> list[str]:
    """Train the classifier heads only ("last layers only"); returns the trainable modules' names.

    BatchNorm layers of the frozen backbone keep their statistics fixed too (they are put in eval mode by
    :func:`set_frozen_bn_eval`, called by the training loop after every ``model.train()``).
    """
    heads = head_names(model, num_classes)
    for name, p in model.named_parameters():
        p.requires_grad = any(name == h or name.startswith(h + ".") for h in heads)
    model._fetalplanes_frozen = True  # noqa: SLF001 - marker read by set_frozen_bn_eval
    return heads


def set_frozen_bn_eval(model) -> None:
    """In a frozen-backbone model, keep BatchNorm layers whose parameters are frozen in eval mode."""
    import torch.nn as nn

    if not getattr(model, "_fetalplanes_frozen", False):
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _strip_prefix(state: dict) -> dict:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _hub_cache_file(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_state_dict(arch: str, timeout_s: float = 30.0) -> dict:
    """torchvision's default ImageNet weights for ``arch``: from the torch hub cache, else downloaded."""
    import socket

    import torch
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise FetalPlanesError(
            f"--pretrained imagenet: torchvision has no ImageNet weights for '{arch}'",
            hint="use --pretrained none (train from scratch) or --pretrained PATH to a local weights file",
        ) from None
    cached = _hub_cache_file(weights.url)
    if cached.is_file():
        return torch.load(str(cached), map_location="cpu", weights_only=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, socket errors, HTTP errors, hash mismatch
        raise FetalPlanesError(
            f"--pretrained imagenet: cannot get {arch}'s ImageNet weights: not in the local cache ({cached}) "
            f"and the download from {weights.url} failed ({type(exc).__name__}: {str(exc)[:200]})",
            hint=f"offline, use --pretrained none (train from scratch) or --pretrained PATH to a local .pth file; "
            f"or copy the file {os.path.basename(weights.url)} into {cached.parent} (the torch hub cache, $TORCH_HOME)",
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def read_weights_file(path: str | Path) -> dict:
    """A state_dict from a local file: a plain state_dict, or a dict holding one under 'state_dict'/'model'."""
    from export.checkpoint import load_torch_file

    path = Path(path)
    obj = load_torch_file(
        path,
        missing=(f"--pretrained: weights file {path} not found",
                 "give 'imagenet', 'none', or the path of an existing .pth/.pt weights file"),
        unreadable=(f"--pretrained: {path} is not a readable PyTorch weights file",
                    "give a file saved with torch.save(model.state_dict(), PATH), or a fetalplanes checkpoint"),
    )
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise FetalPlanesError(
            f"--pretrained: {path} holds no state_dict",
            hint="give a file saved with torch.save(model.state_dict(), PATH)",
        )
    return _strip_prefix(dict(obj))


def _load_strict(model, state: dict, source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()][1:4]
        raise FetalPlanesError(
            f"{source}: its weights do not fit this architecture ({'; '.join(lines)[:400]})",
            hint="give weights saved from the same --arch (ImageNet geometry, or a fetalplanes checkpoint of the "
            "same task), or --pretrained none",
        ) from None


def build_sononet(arch: str, num_classes: int, pretrained: str | Path = "none", channels: int = 1):
    """A SonoNet (``export.sononet``) for ``num_classes`` outputs.

    ``pretrained``: ``"none"`` (random init), a SonoNet release file (``SonoNet16.npz``, Lasagne order, read by
    :mod:`export.sononet_weights`), or a PyTorch weights file of the same variant (a fetalplanes checkpoint or
    a state_dict). Weights with SonoNet's 14 outputs get a new classifier (1x1 conv + BN) when
    ``num_classes`` differs. ``"imagenet"`` is refused: SonoNet has no ImageNet weights.
    """
    from export.sononet import SONONET_LABELS, new_sononet, resolve_variant

    variant = resolve_variant(arch)
    if channels != 1:
        raise FetalPlanesError(f"{variant} reads 1-channel (gray) images, not {channels}", hint="use channels 1")
    source = str(pretrained)
    check_pretrained(variant, source)
    if source.lower() == "none":
        return new_sononet(variant, num_classes)
    model = new_sononet(variant, len(SONONET_LABELS))
    if source.lower().endswith(".npz"):
        from export.sononet_weights import load_release_into

        load_release_into(model, source, variant)
    else:
        state = read_weights_file(source)
        head = state.get("classifier.0.weight")
        if head is not None and head.shape[0] != model.num_classes:
            model.replace_classifier(int(head.shape[0]))
        _load_strict(model, state, source)
    if model.num_classes != num_classes:
        model.replace_classifier(num_classes)
    return model


def build_model(arch: str, num_classes: int, pretrained: str | Path = "none", channels: int = 1):
    """A torchvision classifier for ``channels``-channel images and ``num_classes`` outputs.

    ``pretrained``: ``"none"``, ``"imagenet"`` or a path to a local weights file (ImageNet geometry,
    or a fetalplanes checkpoint of the same architecture and classes).
    """
    import torchvision

    from export.sononet import is_sononet

    name = resolve_arch(arch)
    if is_sononet(name):
        return build_sononet(name, num_classes, pretrained, channels)
    model = torchvision.models.get_model(name, weights=None, num_classes=IMAGENET_CLASSES, **_build_kwargs(name))
    source = str(pretrained)
    fitted = False
    if source.lower() == "imagenet":
        _load_strict(model, imagenet_state_dict(name), f"torchvision ImageNet weights of {name}")
    elif source.lower() != "none":
        state = read_weights_file(source)
        first = first_conv_name(model)
        w = state.get(f"{first}.weight")
        if w is not None and w.ndim == 4 and w.shape[1] == 3:
            _load_strict(model, state, source)
        else:  # already in our geometry (e.g. a fetalplanes checkpoint): convert first, then load
            if channels == 1:
                make_single_channel(model)
            replace_heads(model, num_classes)
            _load_strict(model, state, source)
            fitted = True
    if not fitted:
        if channels == 1:
            make_single_channel(model)
        elif channels != 3:
            raise FetalPlanesError(f"channels {channels} is not 1 or 3", hint="use 1 (gray) or 3")
        replace_heads(model, num_classes)
    return model


def split_outputs(outputs):
    """(main logits, [auxiliary logits]) from a model's training-mode output (Inception/GoogLeNet tuples)."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return outputs, []
    main, *aux = tuple(outputs)
    return main, [a for a in aux if a is not None]


def load_checkpoint(path: str | Path):
    """``(model, info, ckpt)``: the model in eval mode on the CPU, its ModelInfo, and the raw dict."""
    from export.checkpoint import read_checkpoint

    ckpt, info = read_checkpoint(path)
    try:
        model = build_model(info.arch, info.num_classes, pretrained="none", channels=info.channels)
    except FetalPlanesError as exc:
        raise FetalPlanesError(f"{path}: cannot rebuild its model: {exc.message}", hint=exc.hint) from None
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()][1:4]
        raise FetalPlanesError(
            f"{path}: incompatible checkpoint: its weights do not fit {info.arch} with {info.num_classes} classes "
            f"({'; '.join(lines)[:400]})",
            hint="the checkpoint was written by another version or edited; retrain with `fetalplanes train`",
        ) from None
    model.eval()
    return model, info, ckpt
