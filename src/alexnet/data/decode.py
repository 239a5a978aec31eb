"""Decoding image files to uint8 CHW RGB tensors, fast, and never crashing on a bad file.

- The format is sniffed from the first bytes, never from the extension (ImageNet's training set
  holds a PNG and CMYK JPEGs named ``.JPEG``).
- JPEG goes through ``torchvision.io.decode_jpeg`` (libjpeg-turbo), EXIF orientation applied.
  Two cases go through Pillow instead: CMYK/YCCK JPEGs (Pillow handles Adobe's inverted CMYK),
  and JPEGs at least twice as large as needed, which Pillow's ``draft()`` decodes at 1/2, 1/4 or
  1/8 scale in the DCT domain (``decode_jpeg`` has no reduced-size decode): decode + resize of a
  12 Mpx photo to 256 px took 51 ms instead of 86 ms here (one CPU core). The typical 500×375
  ImageNet photo is not twice 256 px and goes through libjpeg-turbo whole.
- Everything else goes through Pillow, every mode converted to RGB: palette and alpha images are
  composited over white (what a viewer shows), 16-bit and 32-bit grayscale scaled to 8 bits.
- Any failure raises `BadImageError(path, reason)` with a short reason ("empty file",
  "truncated JPEG", "not an image", "too many pixels (N > limit)", "unreadable: <errno>", …).
  The reason's words before any ``(`` or ``:`` name its kind, for per-kind counts.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's own default bomb limit (~89.5 Mpx, e.g. 9459×9459); we enforce it ourselves with a
# clear reason instead of Pillow's warning, so silence the warning (our check runs right after).
DEFAULT_MAX_PIXELS = 89_478_485
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# torchvision 0.29 deprecates its decoders in favour of TorchCodec (warning on every call); they
# are still the fastest JPEG path we have. Where they are gone, JPEGs go through Pillow.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)
try:
    from torchvision.io import ImageReadMode, decode_jpeg as _tv_decode_jpeg
except ImportError:  # pragma: no cover — a torchvision without image decoders
    _tv_decode_jpeg = None

# A draft (DCT-scaled) decode is used when the image's short side is at least this many times
# the wanted short side: then a 1/2 (or smaller) scale still leaves at least the wanted size.
DRAFT_FACTOR = 2

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_EXT_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG", ".gif": "GIF",
               ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".ppm": "PPM",
               ".pgm": "PPM", ".pbm": "PPM"}


class BadImageError(Exception):
    """A file that cannot be decoded as an image; ``reason`` is short and human-readable."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (BadImageError, (self.path, self.reason))


def reason_kind(reason: str) -> str:
    """The kind of a reason, for counts: "too many pixels (9 > 4)" → "too many pixels"."""
    return reason.split(" (", 1)[0].split(":", 1)[0].strip()


def sniff_format(data: bytes) -> str | None:
    """The image format from the first bytes ("JPEG", "PNG", …), or None if not recognised."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PPM"
    return None


_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
                b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def _not_read(data: bytes, path: str) -> str:
    """Why bytes Pillow does not open are not read: a phone's HEIC/HEIF or an AVIF photo (by its
    ``ftyp`` box, or by its name when the bytes say nothing) is a format not read here, which the
    person can convert; anything else is "not an image"."""
    fmt = _HEIF_BRANDS.get(data[8:12]) if data[4:8] == b"ftyp" else None
    fmt = fmt or {".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF"}.get(os.path.splitext(str(path))[1].lower())
    article = "an" if fmt and fmt[0] in "AEIOU" else "a"
    return f"not an image read here: {article} {fmt} photo (convert it to JPEG or PNG)" if fmt else "not an image"


def extension_format(path: str) -> str | None:
    """The format a file's extension claims, or None for an unknown extension."""
    return _EXT_FORMAT.get(os.path.splitext(str(path))[1].lower())


@dataclass(frozen=True)
class ImageInfo:
    """What `decode_image` saw: the source format, mode and size (before any reduced decode)."""

    format: str
    mode: str
    width: int
    height: int


def _read(path: str) -> bytes:
    """The file's bytes. A named pipe is read once something writes to it (``predict RUN <(curl
    …)``), waiting `PIPE_WAIT_S` for a writer; one that nothing writes to (a FIFO named ``x.png``
    in a dataset) is a bad file, not a read that blocks for ever. Devices and sockets are refused."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISFIFO(mode):
            return _read_pipe(path)
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):  # /dev/zero would never end
            raise BadImageError(path, "unreadable: a device or socket, not a file")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadImageError(path, f"unreadable: {e.strerror or type(e).__name__}") from None


PIPE_WAIT_S = 2.0  # how long a named pipe may wait for its writer


def _read_pipe(path: str) -> bytes:
    """A named pipe's bytes: opened without blocking, then polled until a writer appears (a read
    then fails with EAGAIN instead of returning end of file) or `PIPE_WAIT_S` passes."""
    import time

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    try:
        deadline, chunks = time.monotonic() + PIPE_WAIT_S, []
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:  # a writer is there, nothing written yet: wait for it, blocking
                break
            if chunk:
                chunks.append(chunk)
                break
            if time.monotonic() > deadline:  # end of file and still no writer
                raise BadImageError(path, "unreadable: a named pipe that nothing writes to")
            time.sleep(0.02)
        os.set_blocking(fd, True)
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def is_regular_file(path: str) -> bool:
    """Whether ``path`` is a regular file (or a link to one): what a look at headers may open
    without blocking."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB (8 bits per channel)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(img)
        if mode == "F":
            a = a.astype(np.float64)
            a = np.nan_to_num(a) * (255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0)
        elif mode.startswith("I;16") or (a.size and a.max() > 255):
            # 16-bit data: 0..65535 → 0..255 (values beyond 16 bits are clipped)
            a = a.astype(np.float64) / 257.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    return img.convert("RGB")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An image already opened with Pillow → uint8 ``[3, H, W]``, its mode converted as a file's
    would be (alpha over white, 16-bit scaled down, grey repeated)."""
    return torch.from_numpy(np.asarray(_to_rgb(img)).copy()).permute(2, 0, 1).contiguous()


def _bomb_check(path: str, decoded: tuple[int, int], whole: tuple[int, int], max_pixels: int | None) -> None:
    """The decompression-bomb guard, on the pixels that will be decoded (``decoded``: a JPEG wanted
    smaller is decoded at 1/2, 1/4 or 1/8 in the DCT domain, the size Pillow's ``draft`` set), so a
    144 Mpx photo for a 256-pixel input passes; a PNG is decoded whole. The advice is for the whole
    picture (``whole``), which then passes however it is decoded."""
    pixels = decoded[0] * decoded[1]
    if max_pixels is not None and pixels > max_pixels:
        w, h = whole
        raise BadImageError(path, f"too many pixels ({pixels} > {max_pixels}): shrink it to at most "
                                  f"{max(1, int(w * (max_pixels / (w * h)) ** 0.5))} pixels wide")


def _decode(data: bytes, path: str, max_pixels: int | None, target_short_side: int | None
            ) -> tuple[torch.Tensor, ImageInfo]:
    if not data:
        raise BadImageError(path, "empty file")
    fmt = sniff_format(data)
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        nums = [int(s) for s in str(e).replace("(", " ").split() if s.isdigit()]
        raise BadImageError(path, f"too many pixels ({nums[0]} > {max_pixels})" if nums
                            else "too many pixels") from None
    except UnidentifiedImageError:
        raise BadImageError(path, f"corrupt {fmt}: bad header" if fmt else _not_read(data, path)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if "truncated" in str(e).lower() or isinstance(e, EOFError):
            raise BadImageError(path, f"truncated {fmt or 'image'}") from None
        raise BadImageError(path, f"corrupt {fmt or 'image'}: {_short(e)}") from None
    fmt = img.format or fmt or "image"
    w, h = img.size
    info = ImageInfo(fmt, img.mode, w, h)

    if fmt == "JPEG" and _tv_decode_jpeg is not None and img.mode not in ("CMYK", "YCCK") and not (
            target_short_side and min(w, h) >= DRAFT_FACTOR * target_short_side):
        _bomb_check(path, (w, h), (w, h), max_pixels)
        return _decode_jpeg_turbo(data, path), info
    try:
        if fmt == "JPEG" and target_short_side:
            s = target_short_side / min(w, h)
            if s < 1:  # DCT-domain reduced decode; the result is at least the requested size
                img.draft("RGB", (max(1, round(w * s)), max(1, round(h * s))))
        _bomb_check(path, img.size, (w, h), max_pixels)  # after draft: the size it set is what is decoded
        img.load()
        try:
            img = ImageOps.exif_transpose(img) or img
        except Exception:  # noqa: BLE001 — broken EXIF metadata: the pixels are still good
            pass
        return pil_to_tensor(img), info
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        msg = str(e).lower()
        if "truncated" in msg or isinstance(e, EOFError) or "broken data stream" in msg:
            raise BadImageError(path, f"truncated {fmt}") from None
        raise BadImageError(path, f"corrupt {fmt}: {_short(e)}") from None


def _decode_jpeg_turbo(data: bytes, path: str) -> torch.Tensor:
    try:
        return _tv_decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                           mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except RuntimeError as e:
        msg = str(e).rsplit(",", 1)[-1].strip()  # drop torchvision's "decode_jpeg, file.cpp:171,"
        if "truncated" in msg.lower() or "premature end" in msg.lower():
            raise BadImageError(path, "truncated JPEG") from None
        raise BadImageError(path, f"corrupt JPEG: {msg[:80]}") from None


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:80]


def decode_image(src: str | os.PathLike | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 target_short_side: int | None = None, name: str | None = None) -> torch.Tensor:
    """Decode an image file (path or bytes) to a uint8 ``[3, H, W]`` RGB tensor.

    ``target_short_side``: the short side the caller will resize to; a JPEG whose short side is
    at least twice that is decoded at reduced size (never below it). ``max_pixels``: images with
    more pixels are refused as decompression bombs (None: no limit). ``name``: the path used in
    errors when ``src`` is bytes. Raises `BadImageError`.
    """
    return decode_image_info(src, max_pixels=max_pixels, target_short_side=target_short_side, name=name)[0]


def decode_image_info(src: str | os.PathLike | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      target_short_side: int | None = None, name: str | None = None
                      ) -> tuple[torch.Tensor, ImageInfo]:
    """`decode_image`, also returning the source's `ImageInfo` (format, mode, original size)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        path, data = name or "<bytes>", bytes(src)
    else:
        path = os.fspath(src)
        data = _read(path)
    return _decode(data, path, max_pixels, target_short_side)
