"""Export trained weights for other runtimes: ONNX, ``torch.export`` (``.pt2``), TorchScript, or
plain safetensors.

The exported network takes a **normalised float** batch ``[N, C, H, W]`` (N free) and returns
**logits** ``[N, classes]`` — exactly ``model(x)``; apply softmax for probabilities. The
preprocessing it expects (resize short side, centre crop, mean, std) and the class names are
written into the ONNX file's metadata (``metadata_props``), into the ``.pt2`` archive (its extra
file ``alexnet.json``) and into a JSON file next to the export, so a consumer needs nothing else.

Every export is checked right after it is written: the exported model and PyTorch are run on the
same random inputs (two batch sizes, which also proves the batch dimension is dynamic) and the
maximum absolute difference of the logits is reported; beyond the tolerance the file is not kept.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import UserError

from .formats import EXPORTERS, FORMATS, ONNX_OPSET  # noqa: F401  (plain constants, read by the CLI's help)


class ExportCheckError(RuntimeError):
    """The exported model does not compute what the PyTorch model computes."""


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float | None  # None: nothing to compare (safetensors is a copy of the tensors)
    tolerance: float | None
    exporter: str = ""
    extra_files: tuple[Path, ...] = ()


def tolerance_for(ref: torch.Tensor) -> float:
    """Allowed max abs difference: 1e-3 relative to the logits' scale (float32 kernels reorder sums)."""
    return 1e-3 * max(1.0, float(ref.abs().max()))


def example_inputs(meta_cfg: Any, batch: int, seed: int = 0) -> torch.Tensor:
    """A reproducible normalised-scale input batch of the model's input size."""
    g = torch.Generator().manual_seed(seed + batch)
    c, h, w = meta_cfg.input_size
    return torch.randn(batch, c, h, w, generator=g)


def _metadata(meta: dict[str, Any], cfg: Any) -> dict[str, str]:
    return {"model": meta["model"], "classes": json.dumps(list(meta["classes"])),
            "num_classes": str(len(meta["classes"])), "input_size": json.dumps(list(cfg.input_size)),
            "resize": str(cfg.resize), "mean": json.dumps(list(cfg.mean)), "std": json.dumps(list(cfg.std)),
            "input": "float32 [N, C, H, W]: the image as RGB (alpha over white, EXIF rotation applied; a 1-channel "
                     "model: ITU-R 601-2 luma), its short side resized to `resize` (bilinear, antialiased, on uint8), "
                     "centre-cropped to H×W, /255, then (x-mean)/std",
            "output": "float32 [N, classes] logits (softmax for probabilities)", "producer": "alexnet"}


@contextlib.contextmanager
def _scratch(suffix: str):
    """A file name in a private folder of the system's temp space, removed with its folder: the
    exporters write there, and only a file that passed its checks is copied beside ``-o`` (by
    `_publish`), so a full disk there is one line and a killed export leaves nothing beside it."""
    with tempfile.TemporaryDirectory(prefix="alexnet-export-") as d:
        try:
            yield Path(d) / f"model{suffix}"
        except OSError as e:  # the temp space itself full or unwritable
            from ..core.io import WriteError

            raise WriteError(e.filename or d, e) from None


def _publish(data: bytes | Path, out: Path) -> None:
    """Write ``data`` (bytes, or a file's) to ``out`` atomically: a disk that fills is one line
    (`core.io.WriteError`) and ``out`` keeps what it held. The temp files of earlier exports to
    ``out`` that were killed are removed first."""
    from ..core.io import atomic_open, temp_files

    for old in [*temp_files(out), *out.parent.glob(f".{glob.escape(out.name)}.????????{out.suffix}")]:
        with contextlib.suppress(OSError):
            old.unlink()
    with atomic_open(out) as f:
        if isinstance(data, Path):
            with open(data, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
        else:
            f.write(data)


def _have_onnxscript() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet_logging():
    """The exporters' own log records (torch's "Setting ONNX exporter to use operator set version 18",
    onnxscript's traceback when it cannot convert to an older opset) are not ours to print: what
    went wrong is said in one line from the file written."""
    import logging

    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)


def _onnx_export(model: nn.Module, x: torch.Tensor, path: Path, opset: int, exporter: str = "auto") -> str:
    """Write ``model`` as ONNX with a dynamic batch axis; return which exporter did it.

    torch ≥ 2.9 defaults to the torch.export-based ("dynamo") exporter, which needs the
    ``onnxscript`` package; ``auto`` uses it where onnxscript is installed, else the
    TorchScript-based exporter (deprecated by PyTorch, but it produces an equivalent graph for
    these plain CNNs, and is several times faster).
    """
    if exporter not in EXPORTERS:
        raise UserError(f"unknown ONNX exporter {exporter!r} (use {', '.join(EXPORTERS)})")
    if exporter == "dynamo" and not _have_onnxscript():
        raise UserError("the dynamo ONNX exporter needs onnxscript: pip install onnxscript")
    names = {"input_names": ["input"], "output_names": ["logits"]}
    if exporter == "dynamo" or (exporter == "auto" and _have_onnxscript()):
        batch = torch.export.Dim("batch", min=1, max=4096)
        with warnings.catch_warnings(), _quiet_logging():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):  # its progress lines are not ours to print
                torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset, external_data=False,
                                  dynamic_shapes=({0: batch},), verbose=False, **names)
        return f"torch.onnx (dynamo), opset {opset}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **names)
    return f"torch.onnx (TorchScript-based), opset {opset}"


def verify_onnx(path: str | Path, model: nn.Module, cfg: Any, batches: tuple[int, ...] = (2, 3)) -> tuple[float, float]:
    """Run the ONNX file in onnxruntime and ``model`` in PyTorch on the same inputs; return
    ``(max abs difference, tolerance)`` over all ``batches`` sizes."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    worst, tol = 0.0, float("inf")
    model = model.float().eval().cpu()
    for b in batches:
        x = example_inputs(cfg, b)
        with torch.inference_mode():
            ref = model(x)
        got = torch.from_numpy(np.asarray(sess.run(None, {name: x.numpy()})[0]))
        if got.shape != ref.shape:
            raise ExportCheckError(f"ONNX output shape {tuple(got.shape)} != PyTorch {tuple(ref.shape)} (batch {b})")
        worst = max(worst, float((got - ref).abs().max()))
        tol = min(tol, tolerance_for(ref))
    return worst, tol


def export_onnx(model: nn.Module, meta: dict[str, Any], out: str | Path, cfg: Any,
                opset: int = ONNX_OPSET, verify: bool = True, exporter: str = "auto") -> ExportResult:
    """Export to ONNX (dynamic batch), embed the metadata (also into ``<out>.json`` next to it), check
    against PyTorch with onnxruntime."""
    from ..core.io import atomic_write_json

    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx and onnxruntime packages: "
                        "pip install 'alexnet[export]'") from None
    if verify:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise UserError("checking the ONNX file needs onnxruntime: pip install 'alexnet[export]'") from None
    out = Path(out)
    model = model.float().eval().cpu()
    with _scratch(".onnx") as tmp:
        exporter = _onnx_export(model, example_inputs(cfg, 2), tmp, opset, exporter)
        proto = onnx.load(str(tmp))
        wrote = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if wrote != opset:  # the dynamo exporter writes its own opset where it cannot convert to the one asked
            raise UserError(f"the {exporter} exporter wrote opset {wrote}, not the {opset} asked for; "
                                   f"not written (try --opset {wrote}, or --exporter torchscript)")
        del proto.metadata_props[:]
        for k, v in _metadata(meta, cfg).items():
            proto.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        diff = tol = None
        if verify:
            diff, tol = verify_onnx(tmp, model, cfg)
            if not diff <= tol:
                raise ExportCheckError(f"ONNX output differs from PyTorch by {diff:.3g} (tolerance {tol:.3g}); "
                                       f"not written")
        _publish(tmp, out)
    side = sidecar(out)  # the same metadata for a consumer that does not read ONNX's
    atomic_write_json(side, {**meta, "export": _metadata(meta, cfg)})
    return ExportResult(out, "onnx", diff, tol, exporter, (side,))


def _check(model: nn.Module, exported: Any, cfg: Any, what: str, batches: tuple[int, ...]) -> tuple[float, float]:
    """The largest absolute difference of ``exported``'s logits from ``model``'s over a batch of each
    size in ``batches``, and the tolerance; beyond it `ExportCheckError` (and no file is kept)."""
    diff, tol = 0.0, float("inf")
    for b in batches:
        x = example_inputs(cfg, b)
        with torch.no_grad():
            ref, got = model(x), exported(x)
        diff, tol = max(diff, float((got - ref).abs().max())), min(tol, tolerance_for(ref))
    if not diff <= tol:
        raise ExportCheckError(f"{what} output differs by {diff:.3g} (tolerance {tol:.3g}); not written")
    return diff, tol


def export_torchscript(model: nn.Module, meta: dict[str, Any], out: str | Path, cfg: Any,
                       verify: bool = True) -> ExportResult:
    """Trace to TorchScript (``torch.jit.load``-able; deprecated by PyTorch but still the way to
    run in C++/LibTorch); the metadata goes into ``<out>.json`` next to it."""
    from ..core.io import atomic_write_json

    out = Path(out)
    model = model.float().eval().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(model, example_inputs(cfg, 2), check_trace=False)
        buf = io.BytesIO()  # in memory: torch's C++ writer aborts the process on a full disk
        torch.jit.save(traced, buf)
        diff, tol = _check(model, torch.jit.load(io.BytesIO(buf.getvalue()), map_location="cpu"), cfg,
                           "TorchScript", (2, 3)) if verify else (None, None)
    _publish(buf.getvalue(), out)
    side = sidecar(out)
    atomic_write_json(side, {**{k: v for k, v in meta.items()}, "export": _metadata(meta, cfg)})
    return ExportResult(out, "torchscript", diff, tol, "torch.jit.trace", (side,))


PT2_META = "alexnet.json"  # the extra file of a .pt2 archive that holds the metadata


def export_program(model: nn.Module, meta: dict[str, Any], out: str | Path, cfg: Any,
                   verify: bool = True) -> ExportResult:
    """``torch.export`` with a dynamic batch dimension, saved by ``torch.export.save`` (PyTorch's
    successor of TorchScript: ``torch.export.load(path).module()(x)`` in Python, AOTInductor or
    ExecuTorch elsewhere); the metadata goes into the archive and into ``<out>.json`` next to it."""
    from ..core.io import atomic_write_json

    out = Path(out)
    model = model.float().eval().cpu()
    info = {**meta, "export": _metadata(meta, cfg)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode(False), torch.no_grad():
            program = torch.export.export(model, (example_inputs(cfg, 2),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        buf = io.BytesIO()  # in memory: torch's C++ writer aborts the process on a full disk
        torch.export.save(program, buf, extra_files={PT2_META: json.dumps(info)})
        diff, tol = _check(model, torch.export.load(io.BytesIO(buf.getvalue())).module(), cfg, "torch.export",
                           (1, 3)) if verify else (None, None)  # neither is the export's batch of 2: the batch is free
    _publish(buf.getvalue(), out)
    side = sidecar(out)
    atomic_write_json(side, info)
    return ExportResult(out, "pt2", diff, tol, "torch.export", (side,))


def export_safetensors(model: nn.Module, meta: dict[str, Any], out: str | Path) -> ExportResult:
    """A copy of the weights as ``<out>.safetensors`` + ``<out>.json`` (or into a folder)."""
    from ..models import save_weights

    out = Path(out)
    if out.suffix not in ("", ".safetensors"):
        out = out.with_suffix(".safetensors")
    st = save_weights(model, out, meta)
    return ExportResult(st, "safetensors", None, None, "safetensors", (st.with_suffix(".json"),))


def sidecar(out: Path) -> Path:
    """The JSON file beside an export: its whole name + ``.json`` (``m.onnx.json``), so that exports
    of several formats or runs to one stem (``m.onnx``, ``m.pt2``) each keep their own."""
    return out.with_name(out.name + ".json")


SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}


def check_opset(opset: int) -> None:
    """An opset the installed onnx knows, from 7 (the oldest torch.onnx writes) on; one line else."""
    try:
        import onnx

        newest = onnx.defs.onnx_opset_version()
    except ImportError:
        return  # export_onnx says what to install
    if not 7 <= opset <= newest:
        raise UserError(f"--opset {opset}: the installed onnx writes opsets 7 to {newest}")


def check_output_path(out: Path, fmt: str) -> None:
    """Refuse an output path that cannot be written before any work is done (one line each): a
    folder where a file is needed, a parent that is a file, a folder that is not writable or not a
    place for files (/proc, a read-only file system: `core.io.why_not_a_folder`)."""
    from ..core.io import check_output_file

    suffix = SUFFIXES.get(fmt)
    if suffix and out.is_dir():
        raise UserError(f"-o {out}: is a folder; give a file name, e.g. -o {out / ('model' + suffix)}")
    parent = out if out.is_dir() else out.parent
    for up in (parent, *parent.parents):
        if up.exists():
            if not up.is_dir():
                raise UserError(f"-o {out}: {up} is a file, not a folder")
            if not os.access(up, os.W_OK | os.X_OK):
                raise UserError(f"-o {out}: {up} is not writable")
            break
    check_output_file(out, "-o")


def export_model(weights: str | Path, fmt: str, out: str | Path, opset: int = ONNX_OPSET,
                 verify: bool = True, exporter: str = "auto") -> ExportResult:
    """Load a run directory / ``weights.safetensors`` and export it as ``fmt`` (see `FORMATS`)."""
    from ..models import load_weights, meta_cfg

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    out = Path(out).expanduser()  # "~/m.onnx" quoted by a script: the home folder's, not ./~/
    check_output_path(out, fmt)
    if fmt == "onnx":
        check_opset(opset)
    model, meta = load_weights(weights, device="cpu")
    cfg = meta_cfg(meta)
    if fmt == "onnx":
        return export_onnx(model, meta, out, cfg, opset=opset, verify=verify, exporter=exporter)
    if fmt == "pt2":
        return export_program(model, meta, out, cfg, verify=verify)
    if fmt == "torchscript":
        return export_torchscript(model, meta, out, cfg, verify=verify)
    return export_safetensors(model, meta, out)
