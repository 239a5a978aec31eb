"""`Predictor`: trained weights in, class probabilities and feature vectors out.

    from alexnet import Predictor
    p = Predictor("runs/cifar")                        # a run directory or weights.safetensors
    p.predict(["cat.jpg", "dog.png"], k=3)             # [[("cat", 3, 0.91), ("dog", 5, 0.05), …], …]
    p.predict_files(paths)                             # per-file results, errors instead of raising
    p.features(images)                                 # [N, 4096] fc7 vectors (the paper's Figure 4)

Preprocessing is the data layer's evaluation transform built from the cfg stored with the
weights (`build_transforms(cfg, train=False)`: resize the short side to ``cfg.resize``, centre
crop ``cfg.input_size``; or the paper's ten crops, §4.1), then `normalizer_for(cfg)` on the
device — the very path `alexnet evaluate` takes, so predictions and reported accuracy agree.
With ``ten_crop=True`` the softmax outputs of the ten crops are averaged (§4.1: "averaging the
predictions made by the network's softmax layer on the ten patches").
"""

from __future__ import annotations

import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import torch
import torch.nn as nn

from ..core.errors import UserError
from ..data.base import IMG_EXTENSIONS
from .inputs import expand_inputs  # noqa: F401  (re-exported from its old home)

ImageLike = Union[str, os.PathLike, bytes, bytearray, memoryview, torch.Tensor, "PIL.Image.Image"]
Top = list[tuple[str, int, float]]  # [(class name, class index, probability)], most probable first

IMAGE_EXTENSIONS = IMG_EXTENSIONS  # what a dataset folder reads


def _is_pil(x: Any) -> bool:
    """Whether ``x`` is an image opened with Pillow."""
    from PIL import Image

    return isinstance(x, Image.Image)


@dataclass
class FileResult:
    """The prediction for one input file: ``top`` when it worked, else ``error`` (a short reason)."""

    path: str
    top: Top | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "error": self.error,
                "predictions": [{"class": c, "index": i, "prob": round(p, 6)} for c, i, p in (self.top or [])]}


@dataclass
class _Prepared:
    """One input after decode + transform: ``[C, H, W]`` or ``[10, C, H, W]`` uint8, or an error."""

    image: torch.Tensor | None = None
    error: str | None = None



def _whole_k(k) -> int:
    """``k`` as the number of classes to give: a whole number ≥ 1 (an int, or numpy's), else ValueError."""
    try:
        whole = operator.index(k)  # not 2.5, "3" or None
    except TypeError:
        whole = 0
    if isinstance(k, bool) or whole < 1:
        raise ValueError(f"k is the number of classes to give, a whole number at least 1, not {k!r}")
    return whole

class Predictor:
    """Classify images and extract features with trained weights.

    ``weights``: a run directory (or the ``--output-dir`` folder of runs: its newest), a ``weights.safetensors`` (with its ``weights.json``), or a
    ``(model, meta)`` pair as `load_weights` returns. ``device``: None/"auto" picks CUDA when
    available. ``batch_size``: images per forward pass (ten-crop sends ten times as many crops).
    ``amp``: autocast as `alexnet evaluate` does it ("auto": bf16 where the hardware computes it
    natively, else fp32; "off": always fp32).
    ``workers``: threads that decode and transform images (decoders release the GIL).
    ``max_pixels``: larger images are refused as decompression bombs (default: the data
    layer's, Pillow's ~89.5 Mpx; a web server will want less).

    Safe to call from several threads (a web server's pool): decoding runs in parallel, the
    forward passes take turns under a lock, everything runs under ``torch.inference_mode``.
    """

    def __init__(self, weights: str | os.PathLike | tuple[nn.Module, dict[str, Any]], device: str | None = None,
                 ten_crop: bool = False, batch_size: int = 32, workers: int | None = None, amp: str = "auto",
                 max_pixels: int | None = None):
        from ..core.device import resolve_device, resolve_precision
        from ..data import DEFAULT_MAX_PIXELS, build_transforms, normalizer_for
        from ..models import load_weights, meta_cfg

        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, not {batch_size}")
        self.device = resolve_device(device)
        if isinstance(weights, tuple):
            model, meta = weights
            model = model.to(self.device).eval()
        else:
            model, meta = load_weights(weights, device=self.device)
        self.model: nn.Module = model
        self.meta: dict[str, Any] = meta
        self.classes: list[str] = list(meta["classes"])
        self.cfg = meta_cfg(meta)
        self.ten_crop = bool(ten_crop)
        self.batch_size = int(batch_size)
        self.max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
        self.workers = max(1, min(4, os.cpu_count() or 1) if workers is None else int(workers))
        # Ten-crop mirrors its crops only when training flipped images (weights.json "train_flip";
        # never for 1-channel digits): otherwise the five unmirrored crops are averaged.
        self.mirror = bool(meta.get("train_flip", self.cfg.input_size[0] != 1))
        self.transform = build_transforms(self.cfg, train=False, ten_crop=self.ten_crop, mirror=self.mirror)
        # The normalisation the model was trained with (the paper recipe uses raw-pixel mean
        # subtraction), recorded in weights.json by training; as `alexnet evaluate` reads it.
        self.normalize = normalizer_for(self.cfg, mode=meta.get("normalize", "meanstd")).to(self.device)
        self.precision = resolve_precision(amp, self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ---------------------------------------------------------------- description
    @property
    def name(self) -> str:
        return self.meta["model"]

    @property
    def fingerprint(self) -> str:
        """A short hash of the weights (`models.weights.fingerprint`): a feature index records it."""
        if getattr(self, "_fingerprint", None) is None:
            from ..models.weights import fingerprint

            self._fingerprint = fingerprint(self.model)
        return self._fingerprint

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def info(self) -> dict[str, Any]:
        """``{model, num_classes, input_size, classes}`` (what a web page shows about the model)."""
        return {"model": self.name, "num_classes": self.num_classes,
                "input_size": list(self.cfg.input_size), "classes": list(self.classes)}

    def __repr__(self) -> str:
        return (f"Predictor(model={self.name!r}, classes={self.num_classes}, device={str(self.device)!r}, "
                f"ten_crop={self.ten_crop})")

    # ---------------------------------------------------------------- preprocessing
    def load_image(self, src: ImageLike) -> torch.Tensor:
        """Decode a path or bytes to uint8 ``[C, H, W]`` (a tensor is passed through, floats in
        [0, 1] scaled to uint8; a tensor out of its dtype's range is a ValueError). Raises
        `BadImageError` for a missing, empty or corrupt file."""
        from ..data import decode_image

        if isinstance(src, torch.Tensor):
            if src.ndim != 3 or 0 in src.shape:
                raise ValueError(f"an image tensor is [C, H, W] with every size at least 1, not {tuple(src.shape)}")
            if src.dtype == torch.uint8:  # as the decoder gives it: nothing to check
                return src
            low, high = float(src.min()), float(src.max())
            if src.dtype.is_floating_point:
                if not bool(torch.isfinite(src).all()):  # NaN passes every comparison, and would become 0
                    raise ValueError("a float image tensor holds NaN or infinite values")
                if low < 0 or high > 1:  # 0–255 floats would be read as 255× too bright, and clamped white
                    raise ValueError(f"a float image tensor holds values in [0, 1], not [{low:g}, {high:g}]"
                                     f"{' (0–255 values: pass them as uint8)' if high <= 255 and low >= 0 else ''}")
                src = (src.float() * 255).round().clamp(0, 255)
            elif low < 0 or high > 255:  # would wrap round in uint8
                raise ValueError(f"an integer image tensor holds values in [0, 255], not [{low:g}, {high:g}]")
            return src.to(torch.uint8)
        # The short side the transform resizes to: large JPEGs are decoded at reduced size
        # (never below it), as the datasets do.
        short = getattr(self.transform, "decode_short_side", None)
        if isinstance(src, (bytes, bytearray, memoryview)):
            return decode_image(bytes(src), target_short_side=short, max_pixels=self.max_pixels)
        if _is_pil(src):  # opened by the caller: turned upright and converted as a file of its mode would be
            from PIL import ImageOps

            from ..data.decode import pil_to_tensor

            return pil_to_tensor(ImageOps.exif_transpose(src) or src)
        return decode_image(os.fspath(src), target_short_side=short, max_pixels=self.max_pixels)

    def preprocess(self, src: ImageLike) -> torch.Tensor:
        """One image → what the network is fed before normalisation: uint8 ``[C, H, W]`` (or
        ``[10, C, H, W]`` with ten-crop), by the evaluation transform of the weights' cfg."""
        return self.transform(self.load_image(src))

    def _prepare(self, src: ImageLike) -> _Prepared:
        from ..data import BadImageError

        try:
            return _Prepared(self.preprocess(src))
        except BadImageError as e:
            return _Prepared(error=e.reason)

    def _prepare_many(self, srcs: Sequence[ImageLike]) -> list[_Prepared]:
        if len(srcs) <= 1 or self.workers <= 1:
            return [self._prepare(s) for s in srcs]
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="alexnet-decode")
        return list(self._pool.map(self._prepare, srcs))

    # ---------------------------------------------------------------- forward passes
    def _run(self, batch: torch.Tensor, features: bool) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` or ``[B, 10, C, H, W]`` → probabilities ``[B, K]`` (softmax, ten
        crops averaged) or features ``[B, D]`` (crops averaged), float32 on the CPU."""
        crops = batch.shape[1] if batch.ndim == 5 else 1
        x = batch.flatten(0, 1) if batch.ndim == 5 else batch
        with self._lock, torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            x = self.normalize(x)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with self.precision.autocast(self.device):
                out = self.model.forward_features(x) if features else self.model(x)
            out = out.float() if features else out.float().softmax(dim=1)
            if crops > 1:
                out = out.view(-1, crops, out.shape[-1]).mean(dim=1)
            return out.cpu()

    def _batches(self, prepared: list[_Prepared]) -> Iterator[tuple[list[int], torch.Tensor]]:
        ok = [i for i, p in enumerate(prepared) if p.image is not None]
        for s in range(0, len(ok), self.batch_size):
            idx = ok[s:s + self.batch_size]
            yield idx, torch.stack([prepared[i].image for i in idx])

    def _compute(self, srcs: Sequence[ImageLike], features: bool, on_progress: Callable[[int], None] | None = None
                 ) -> tuple[list[torch.Tensor | None], list[str | None]]:
        outs: list[torch.Tensor | None] = [None] * len(srcs)
        errors: list[str | None] = [None] * len(srcs)
        # Decode a few batches at a time, so a folder of 100k photos is never all in memory.
        step = self.batch_size * 4
        for s in range(0, len(srcs), step):
            prepared = self._prepare_many(srcs[s:s + step])
            for j, p in enumerate(prepared):
                errors[s + j] = p.error
            for idx, batch in self._batches(prepared):
                res = self._run(batch, features)
                for i, r in zip(idx, res):
                    outs[s + i] = r
            if on_progress is not None:
                on_progress(len(prepared))
        return outs, errors

    @staticmethod
    def _as_list(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
        if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)) or _is_pil(images):
            return [images]
        if isinstance(images, torch.Tensor):
            return [images] if images.ndim == 3 else list(images)
        return list(images)

    def _raise_first(self, srcs: Sequence[ImageLike], errors: Sequence[str | None]) -> None:
        from ..data import BadImageError

        for s, e in zip(srcs, errors):
            if e is not None:
                name = os.fspath(s) if isinstance(s, (str, os.PathLike)) else "<bytes>"  # a tensor or Pillow
                # image never fails here: it is checked, or converted, as it is read
                raise BadImageError(name, e)

    def probs(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Softmax probabilities ``[N, K]`` (float32, CPU). Raises `BadImageError` on a bad image."""
        srcs = self._as_list(images)
        outs, errors = self._compute(srcs, features=False)
        self._raise_first(srcs, errors)
        return torch.stack(outs) if outs else torch.empty(0, self.num_classes)  # type: ignore[arg-type]

    def topk(self, probs: torch.Tensor, k: int = 5) -> list[Top]:
        """``probs [N, K]`` → per row the ``k`` most probable ``(class name, index, prob)`` (``k`` past
        the number of classes: every class)."""
        k = min(_whole_k(k), self.num_classes)
        p, i = probs.topk(k, dim=1)
        return [[(self.classes[c], c, float(v)) for v, c in zip(pr.tolist(), ir.tolist())] for pr, ir in zip(p, i)]

    def predict(self, images: ImageLike | Sequence[ImageLike], k: int = 5) -> list[Top]:
        """Per image (path, bytes, a Pillow image, or uint8 ``[C, H, W]`` tensor) the top-``k``
        ``[(class name, class index, probability)]``. Raises `BadImageError` on a bad image
        (use `predict_files` to get per-file errors instead)."""
        _whole_k(k)  # before the images are decoded
        return self.topk(self.probs(images), k)

    def predict_bytes(self, data: bytes, k: int = 5) -> Top:
        """One encoded image (an upload) → its top-``k``. Raises `BadImageError` if it is not a
        decodable image."""
        return self.predict([bytes(data)], k)[0]

    def predict_files(self, paths: Iterable[str | os.PathLike], k: int = 5,
                      on_progress: Callable[[int], None] | None = None) -> list[FileResult]:
        """Per path a `FileResult`: the top-``k``, or the reason it failed (missing, unreadable,
        corrupt) — one bad file never stops the others. ``on_progress(n)`` is called as each
        group of ``n`` files is done."""
        _whole_k(k)  # a bad k is said before any file is read, even where none reads
        srcs = [os.fspath(p) for p in paths]
        outs, errors = self._compute(srcs, features=False, on_progress=on_progress)
        results = []
        for path, out, err in zip(srcs, outs, errors):
            if err is not None or out is None:
                results.append(FileResult(path, error=err or "failed"))
            else:
                results.append(FileResult(path, top=self.topk(out[None], k)[0]))
        return results

    def features(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """The last hidden layer (fc7 for AlexNets) per image, ``[N, D]`` float32 on the CPU.
        Raises `BadImageError` on a bad image."""
        srcs = self._as_list(images)
        outs, errors = self._compute(srcs, features=True)
        self._raise_first(srcs, errors)
        if not outs:
            return torch.empty(0, 0)
        return torch.stack(outs)  # type: ignore[arg-type]

    @torch.inference_mode()
    def batch_probs(self, batch: torch.Tensor) -> torch.Tensor:
        """Already-transformed uint8 ``[B, C, H, W]`` (or ``[B, 10, C, H, W]``) → ``[B, K]`` probabilities."""
        return self._run(batch, features=False)

    @torch.inference_mode()
    def batch_features(self, batch: torch.Tensor) -> torch.Tensor:
        """Already-transformed uint8 ``[B, C, H, W]`` (or ``[B, 10, C, H, W]``) → ``[B, D]`` features."""
        return self._run(batch, features=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def __del__(self) -> None:  # noqa: D105
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
