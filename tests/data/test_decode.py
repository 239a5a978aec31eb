"""decode_image: every format and mode to uint8 RGB, EXIF, reduced decode, and every bad file."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data import BadImageError, decode_image, decode_image_info, sniff_format
from alexnet.data.decode import reason_kind


def _pil_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("mode,ext", [("RGB", "jpg"), ("L", "jpg"), ("CMYK", "jpg"), ("RGB", "png"),
                                      ("L", "png"), ("1", "png"), ("P", "png"), ("RGB", "bmp"),
                                      ("RGB", "gif"), ("RGB", "tiff"), ("RGB", "webp"), ("L", "ppm")])
def test_every_format_and_mode_decodes_to_uint8_rgb(tmp_path, write_image, mode, ext):
    p = write_image(tmp_path / f"x.{ext}", mode, size=(20, 16), **({"lossless": True} if ext == "webp" else {}))
    img = decode_image(p)
    assert img.dtype == torch.uint8 and img.shape == (3, 16, 20)
    ref = _pil_rgb(p).transpose(2, 0, 1)
    tol = 3 if ext == "jpg" else 0  # libjpeg-turbo vs Pillow's libjpeg: IDCT rounding
    assert np.abs(img.numpy().astype(int) - ref.astype(int)).max() <= tol


def test_alpha_is_composited_over_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 200  # red, fully transparent on the left half, opaque on the right
    a[:, 2:, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    img = decode_image(tmp_path / "a.png")
    assert img[:, :, :2].eq(255).all()  # transparent → white
    assert img[:, :, 2:].tolist() == torch.tensor([200, 0, 0]).view(3, 1, 1).expand(3, 4, 2).tolist()
    Image.fromarray(a[..., [0, 3]], "LA").save(tmp_path / "la.png")
    assert decode_image(tmp_path / "la.png")[:, :, :2].eq(255).all()


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    img.info["transparency"] = 0
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "p.png", transparency=0)
    out = decode_image(tmp_path / "p.png")
    assert out[:, 0, 0].tolist() == [255, 255, 255] and out[:, 1, 1].tolist() == [10, 20, 30]


@pytest.mark.parametrize("mode,ext", [("I;16", "png"), ("I", "tiff")])
def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path, mode, ext):
    a = np.array([[0, 257, 32896, 65535]], dtype=np.uint16 if mode == "I;16" else np.int32)
    Image.fromarray(a).save(tmp_path / f"g.{ext}")
    out = decode_image(tmp_path / f"g.{ext}")
    assert out.shape == (3, 1, 4)
    assert out[0, 0].tolist() == [0, 1, 128, 255] and torch.equal(out[0], out[2])


def test_float_images_in_unit_range_are_scaled(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(tmp_path / "f.tiff")
    assert decode_image(tmp_path / "f.tiff")[1, 0].tolist() == [0, 128, 255]


def test_format_is_sniffed_not_taken_from_the_extension(tmp_path, write_image):
    p = write_image(tmp_path / "really_a_png.JPEG", fmt="PNG")
    img, info = decode_image_info(p)
    assert info.format == "PNG" and img.shape == (3, 16, 20)
    assert np.array_equal(img.numpy().transpose(1, 2, 0), _pil_rgb(p))
    assert sniff_format(open(p, "rb").read()) == "PNG"


def test_bytes_input(tmp_path, write_image):
    p = write_image(tmp_path / "x.png")
    data = open(p, "rb").read()
    assert torch.equal(decode_image(data), decode_image(p))
    with pytest.raises(BadImageError) as e:
        decode_image(b"", name="mem.jpg")
    assert e.value.path == "mem.jpg" and e.value.reason == "empty file"


# EXIF orientation → where the image's white top-left quadrant is shown, and whether it turns
QUADRANT = {1: ("top", "left", False), 3: ("bottom", "right", False), 6: ("top", "right", True),
            8: ("bottom", "left", True)}


@pytest.mark.parametrize("orientation", sorted(QUADRANT))
@pytest.mark.parametrize("target", [None, 4])  # None: libjpeg-turbo; 4: Pillow's reduced decode
def test_exif_orientation_is_applied(tmp_path, orientation, target):
    a = np.zeros((16, 24, 3), np.uint8)
    a[:8, :12] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    Image.fromarray(a).save(p, exif=exif.tobytes(), quality=95)
    img = decode_image(p, target_short_side=target).float().mean(0)
    h, w = img.shape
    vert, horiz, turned = QUADRANT[orientation]
    assert (h > w) == turned
    if target is None:
        assert (h, w) == ((24, 16) if turned else (16, 24))
    else:
        assert min(h, w) < 16  # decoded at reduced size
    rows = slice(0, h // 2) if vert == "top" else slice(h - h // 2, h)
    cols = slice(0, w // 2) if horiz == "left" else slice(w - w // 2, w)
    assert img[rows, cols].mean() > 200 and img.mean() < 100


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    y, x = np.mgrid[0:768, 0:1024]
    a = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    p = tmp_path / "big.jpg"
    Image.fromarray(a).save(p, quality=95)
    full = decode_image(p)
    assert full.shape == (3, 768, 1024)
    small, info = decode_image_info(p, target_short_side=128)
    assert (info.width, info.height) == (1024, 768)  # the source's size is still reported
    assert 128 <= min(small.shape[1:]) < 768 and small.shape[2] / small.shape[1] == pytest.approx(4 / 3, rel=0.02)
    same = decode_image(p, target_short_side=400)  # not ≥ 2× larger: full decode by libjpeg-turbo
    assert torch.equal(same, full)


def _zoo_bytes() -> dict[str, tuple[bytes, str]]:
    rgb = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    jpg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb).save(jpg, "JPEG")
    Image.fromarray(rgb).save(png, "PNG")
    j, p = jpg.getvalue(), png.getvalue()
    return {
        "truncated.jpg": (j[: len(j) // 2], "truncated JPEG"),
        "truncated_header.jpg": (j[:200], "truncated JPEG"),
        "truncated.png": (p[: len(p) // 2], "truncated PNG"),
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"this is not an image\n", "not an image"),
        "garbage.jpg": (b"\xff\xd8\xff" + b"hello" * 20, "corrupt JPEG"),
    }


@pytest.mark.parametrize("name", list(_zoo_bytes()))
def test_bad_files_raise_with_a_short_reason(tmp_path, name):
    data, reason = _zoo_bytes()[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(BadImageError) as e:
        decode_image(tmp_path / name)
    assert reason_kind(e.value.reason) == reason, e.value.reason
    assert e.value.path == str(tmp_path / name) and len(e.value.reason) < 100


def test_decompression_bomb(tmp_path):
    Image.new("1", (3000, 3000)).save(tmp_path / "bomb.png")
    with pytest.raises(BadImageError) as e:
        decode_image(tmp_path / "bomb.png", max_pixels=1_000_000)
    assert e.value.reason == "too many pixels (9000000 > 1000000): shrink it to at most 1000 pixels wide"
    assert decode_image(tmp_path / "bomb.png", max_pixels=None).shape == (3, 3000, 3000)


def test_a_jpeg_wanted_smaller_is_guarded_on_the_pixels_it_decodes(tmp_path):
    """A photo of 3000×3000 for a 256-pixel input decodes at 1/8 in the DCT domain (375×375): the
    bomb guard counts those, so a large camera photo is used; a PNG, decoded whole, is not."""
    Image.new("RGB", (3000, 3000), (200, 40, 90)).save(tmp_path / "big.jpg", quality=60)
    Image.new("RGB", (3000, 3000), (200, 40, 90)).save(tmp_path / "big.png")
    assert decode_image(tmp_path / "big.jpg", max_pixels=1_000_000, target_short_side=256).shape == (3, 375, 375)
    for name, short in (("big.jpg", None), ("big.jpg", 2000), ("big.png", 256)):  # whole, or only halved: too many
        with pytest.raises(BadImageError, match="too many pixels"):
            decode_image(tmp_path / name, max_pixels=1_000_000, target_short_side=short)
    for w, h in ((771, 512), (2053, 2048), (1027, 1024)):  # where Pillow's draft scale is not the simple one
        Image.new("RGB", (w, h), (9, 9, 9)).save(tmp_path / "edge.jpg")
        got = decode_image(tmp_path / "edge.jpg", target_short_side=256, max_pixels=None)
        pixels = got.shape[1] * got.shape[2]  # what is really decoded: the guard counts exactly that
        assert decode_image(tmp_path / "edge.jpg", target_short_side=256, max_pixels=pixels).shape == got.shape
        with pytest.raises(BadImageError, match="too many pixels"):
            decode_image(tmp_path / "edge.jpg", target_short_side=256, max_pixels=pixels - 1)


def test_unreadable(tmp_path):
    with pytest.raises(BadImageError) as e:
        decode_image(tmp_path / "missing.jpg")
    assert e.value.reason == "unreadable: No such file or directory"
    os.mkdir(tmp_path / "dir.jpg")
    with pytest.raises(BadImageError) as e:
        decode_image(tmp_path / "dir.jpg")
    assert e.value.reason == "unreadable: Is a directory"


def test_bad_image_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(BadImageError("/x.jpg", "empty file")))
    assert (e.path, e.reason, str(e)) == ("/x.jpg", "empty file", "/x.jpg: empty file")


def test_a_named_pipe_is_read_once_its_writer_comes(tmp_path):
    """`predict RUN <(curl …)` and a FIFO whose writer opens it a moment late are read; one that
    nothing writes to is a bad file after a short wait, not a read that blocks for ever."""
    import subprocess
    import time

    from PIL import Image

    img = tmp_path / "r.png"
    Image.new("RGB", (20, 10), (200, 10, 10)).save(img)
    late = tmp_path / "late.png"
    os.mkfifo(late)
    writer = subprocess.Popen(["sh", "-c", f"sleep 0.5; cat '{img}' > '{late}'"])
    assert decode_image(str(late)).shape == (3, 10, 20)
    writer.wait(timeout=10)
    lonely = tmp_path / "lonely.png"
    os.mkfifo(lonely)
    t = time.monotonic()
    with pytest.raises(BadImageError, match="a named pipe that nothing writes to"):
        decode_image(str(lonely))
    assert time.monotonic() - t < 10


def test_a_heic_or_avif_photo_says_to_convert_it(tmp_path):
    """A phone's HEIC (told by its ftyp box, whatever its name) or a file named .avif that Pillow does not
    open: the reason names the format and what to do; "not an image" stays for other bytes."""
    from alexnet.data.decode import BadImageError, decode_image

    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    (tmp_path / "IMG_0001.jpg").write_bytes(heic)
    (tmp_path / "scan.avif").write_bytes(b"junk" * 20)
    (tmp_path / "notes.jpg").write_bytes(b"junk" * 20)
    reasons = {}
    for name in ("IMG_0001.jpg", "scan.avif", "notes.jpg"):
        with pytest.raises(BadImageError) as e:
            decode_image(str(tmp_path / name))
        reasons[name] = e.value.reason
    assert reasons == {"IMG_0001.jpg": "not an image read here: a HEIC photo (convert it to JPEG or PNG)",
                       "scan.avif": "not an image read here: an AVIF photo (convert it to JPEG or PNG)",
                       "notes.jpg": "not an image"}
