"""Published weights: ``weights.safetensors`` + ``weights.json`` (what the model is, its classes
and preprocessing). Written by training and import, read by evaluate, predict, export and serve.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import UserError
from ..core.io import atomic_open, atomic_write_json
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


ACCEPTS = "a run directory or a weights.safetensors file (with its weights.json)"


def _refuse_other_formats(p: Path) -> None:
    """A one-line answer for files people naturally try that are not weights: exports, checkpoints."""
    suffix = p.suffix.lower()
    if suffix in (".onnx", ".pt2", ".ts", ".torchscript") or p.name.endswith(".torchscript.pt"):
        kind = {".onnx": "an ONNX export (for onnxruntime)", ".pt2": "a torch.export archive (torch.export.load)"
                }.get(suffix, "a TorchScript export (torch.jit.load)")
        raise UserError(f"{p} is {kind}; this command takes {ACCEPTS}: give the run directory it was "
                        f"exported from")
    if suffix in (".pt", ".pth", ".ckpt"):
        run = p.parent.parent if p.parent.name == "checkpoints" else None
        if run is not None and (run / "weights.safetensors").is_file():
            raise UserError(f"{p} is a training checkpoint (last.pt is for --resume); this command takes "
                            f"{ACCEPTS}: give the run directory {run}")
        if p.is_file() and not looks_like_torch_file(p):
            raise UserError(f"{p}: not a PyTorch file (neither a zip archive nor a pickle); this command "
                            f"takes {ACCEPTS}")
        raise UserError(f"{p} is a PyTorch checkpoint; this command takes {ACCEPTS}. torchvision's "
                        f"AlexNet weights convert with: alexnet import torchvision {p} -o DIR")


def looks_like_torch_file(p: Path) -> bool:
    """True when ``p`` starts as ``torch.save`` writes: a zip archive, or (older files) a pickle."""
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


RUN_MARKERS = ("config.json", "weights.safetensors", "checkpoints/last.pt")
_announced: set[str] = set()


def _is_run(d: Path) -> bool:
    return any((d / m).is_file() for m in RUN_MARKERS)


def _written(d: Path) -> float:
    return max(((d / m).stat().st_mtime for m in RUN_MARKERS if (d / m).is_file()), default=0.0)


def resolve_run_dir(path: str | Path, need: str = "weights.safetensors", quiet: bool = False) -> Path:
    """A run directory from ``path``: the run itself, or — for the folder given to ``--output-dir``,
    which holds runs — its newest run that has ``need`` (named on stderr once). Anything else is
    returned unchanged, for the caller to report."""
    p = Path(path).expanduser()
    if not p.is_dir() or _is_run(p):
        return p
    try:
        runs = [d for d in p.iterdir() if d.is_dir() and _is_run(d)]
    except OSError:
        return p
    usable = [d for d in runs if (d / need).is_file()]
    if not usable:
        if runs:
            raise UserError(f"{p}: none of its {len(runs)} runs has {need} yet")
        return p
    newest = max(usable, key=lambda d: (_written(d), d.name))
    if not quiet and str(newest) not in _announced:
        import sys

        _announced.add(str(newest))
        others = f" (newest of {len(usable)} runs)" if len(usable) > 1 else ""
        print(f"using run {newest}{others}", file=sys.stderr)
    return newest


def resolve_weights(path: str | Path) -> tuple[Path, Path]:
    """Find ``(weights.safetensors, weights.json)`` from a run directory (or the ``--output-dir``
    folder holding runs: its newest), either file, or a stem."""
    p = resolve_run_dir(path)
    _refuse_other_formats(p)
    if p.is_dir():
        st = p / "weights.safetensors"
    elif p.suffix == ".json":
        st = p.with_suffix(".safetensors")
    elif p.suffix == ".safetensors" or not p.exists():
        st = p
    else:
        raise UserError(f"{p}: not weights ({p.suffix or 'a file without extension'}); "
                        f"this command takes {ACCEPTS}")
    if not st.is_file():
        if p.is_dir() and (p / "config.json").is_file():  # a run: one still in its first epoch, or stopped there
            ck = p / "checkpoints"
            go_on = (f"`alexnet train --resume {p}` goes on with it if it stopped"
                     if (ck / "last.pt").is_file() or (ck / "last.prev.pt").is_file() else
                     f"it has no checkpoint either: `alexnet train --config {p} --output-dir {p.parent} --name "
                     f"{p.name}` starts it again")
            raise UserError(f"{p} has no weights.safetensors yet: its run has not finished an epoch (the weights are "
                            f"written at the end of its best one; {go_on})")
        where = f"{p} has no weights.safetensors" if p.is_dir() else f"{st}: no such file"
        raise UserError(f"{where} (give a run directory or a weights.safetensors file)")
    meta = st.with_suffix(".json")
    if not meta.is_file():
        raise UserError(f"{meta}: missing — it describes the weights in {st.name} (model, classes)")
    return st, meta


def load_meta(path: str | Path) -> dict[str, Any]:
    _, meta_path = resolve_weights(path)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{meta_path}: not valid JSON ({e})") from None
    for key in ("model", "classes"):
        if key not in meta:
            raise UserError(f"{meta_path}: no {key!r} field; not a weights.json of this project")
    return meta


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
