"""Published weights: ``weights.safetensors`` + ``weights.json`` (what the model is, its classes
and preprocessing). Written by training and import, read by evaluate, predict, export and serve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import UserError
from ..core.io import atomic_open, atomic_write_json
from ..core.weight_files import (ACCEPTS, RUN_MARKERS, load_meta, looks_like_torch_file,  # noqa: F401 (re-exported)
                                 resolve_run_dir, resolve_weights)
from .registry import ModelCfg, build_model, model_cfg

FORMAT_VERSION = 1


def make_meta(model_name: str, classes: list[str], cfg: ModelCfg | None = None,
              model_kwargs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``weights.json`` record: enough to rebuild the model and its preprocessing."""
    cfg = cfg or model_cfg(model_name)
    return {"format": FORMAT_VERSION, "model": model_name, "num_classes": len(classes),
            "classes": list(classes), "model_kwargs": dict(model_kwargs or {}),
            "cfg": {**cfg.to_dict(), "num_classes": len(classes)},  # these weights', not the registry's default
            **extra}


def save_weights(model: nn.Module, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<path>/weights.safetensors`` + ``weights.json`` (``path`` a folder or a .safetensors file).

    ``meta`` is what `make_meta` returns (``make_meta(model_name, classes)``): at least ``model``
    (a registered name) and ``classes`` (one name per output), which every command that reads the
    weights needs; without them nothing is written."""
    from safetensors.torch import save

    missing = [k for k in ("model", "classes") if k not in meta]
    if missing:
        raise UserError(f"save_weights: meta lacks {', '.join(repr(k) for k in missing)}; build it with "
                        f"make_meta(model_name, classes)")
    path = Path(path)
    st = path if path.suffix == ".safetensors" else path / "weights.safetensors"
    model = getattr(model, "module", model)  # unwrap DDP
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_open(st, "wb") as f:
        f.write(save(tensors, metadata={"model": meta["model"]}))
    atomic_write_json(st.with_suffix(".json"), meta)
    return st


def shape_differences(expected: dict[str, Any], found: dict[str, Any], limit: int = 3,
                      side: str = "checkpoint") -> str:
    """"conv1.weight: checkpoint [64, 3, 11, 11], model [16, 3, 11, 11]; …" for the first ``limit``
    tensors whose shapes differ, plus names only one side has; "" when they all match. ``side``
    names the file's side ("checkpoint", "weights")."""
    parts: list[str] = []
    for k, v in found.items():
        if k in expected and tuple(v.shape) != tuple(expected[k].shape):
            parts.append(f"{k}: {side} {list(v.shape)}, model {list(expected[k].shape)}")
    extra = [k for k in found if k not in expected]
    lacking = [k for k in expected if k not in found]
    n = len(parts)
    out = parts[:limit]
    if n > limit:
        out.append(f"and {n - limit} more")
    if extra:
        out.append(f"only in the {side}: {', '.join(extra[:limit])}{'…' if len(extra) > limit else ''}")
    if lacking:
        out.append(f"only in the model: {', '.join(lacking[:limit])}{'…' if len(lacking) > limit else ''}")
    return "; ".join(out)


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by ``weights.json`` and load ``weights.safetensors`` into it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    st, _ = resolve_weights(path)
    meta = load_meta(st)
    model = build_model(meta["model"], num_classes=len(meta["classes"]), **meta.get("model_kwargs", {}))
    try:
        state = load_file(str(st), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{st}: not a readable safetensors file ({e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        diff = shape_differences(model.state_dict(), state, side="weights") or str(e).splitlines()[0]
        raise UserError(f"{st}: weights do not fit model {meta['model']!r} (as weights.json names it): {diff}; "
                        f"weights.json and these tensors do not match: files of two runs mixed, or weights saved by another "
                        f"version of the model") from None
    return model.to(device).eval(), meta


def fingerprint(model: nn.Module, samples: int = 4096) -> str:
    """A short hash of the model's weights (up to ``samples`` evenly spaced values of each tensor, in
    fp32): equal for the same weights, different for any two trainings. Cheap for any size."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(getattr(model, "_orig_mod", model).state_dict().items()):
        flat = t.detach().reshape(-1)
        if flat.numel() > samples:  # integer positions: float32 linspace rounds past the end above 2^24
            flat = flat[torch.arange(samples, dtype=torch.int64) * (flat.numel() - 1) // (samples - 1)]
        h.update(name.encode() + flat.to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def meta_cfg(meta: dict[str, Any]) -> ModelCfg:
    """The preprocessing cfg stored with weights (falls back to the registry's)."""
    return ModelCfg.from_dict(meta["cfg"]) if "cfg" in meta else model_cfg(meta["model"])
