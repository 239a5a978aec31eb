"""Finding published weights and runs on disk: ``weights.safetensors`` + ``weights.json`` from a
run directory, the ``--output-dir`` folder holding runs, either file or a stem; and a one-line
answer for the files people try instead (exports, checkpoints). Plain Python, without torch, so
that a command given a wrong path answers before torch loads; `alexnet.models.weights` reads and
writes the tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserError

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
