"""`Predictor` and `alexnet predict`: files, folders, globs, bad files, formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest
import torch

from alexnet.cli import main
CLASSES = ["red", "green", "blue"]  # as in conftest.py


def test_predicts_the_training_images_back(predictor, image_files):
    """The tiny model learned colour → class through the eval transform; predict must preprocess
    the same way to get them right."""
    top = predictor.predict([p for p, _ in image_files], k=3)
    assert len(top) == len(image_files)
    for t in top:
        assert [c for c, _, _ in t] and sorted(i for _, i, _ in t) == [0, 1, 2]
        probs = [p for _, _, p in t]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
        assert all(CLASSES[i] == c for c, i, _ in t)
    right = sum(t[0][1] == label for t, (_, label) in zip(top, image_files))
    assert right == len(image_files)


def test_inputs_paths_bytes_tensors_agree(predictor, image_files):
    from alexnet.data import decode_image

    path = image_files[0][0]
    by_path = predictor.probs([path])
    by_bytes = predictor.probs([path.read_bytes()])
    by_tensor = predictor.probs([decode_image(str(path))])
    assert torch.allclose(by_path, by_bytes) and torch.allclose(by_path, by_tensor)
    assert predictor.predict_bytes(path.read_bytes(), k=2) == predictor.predict([path], k=2)[0]
    assert predictor.predict(str(path), k=1)[0][0][0] == CLASSES[image_files[0][1]]
    img = decode_image(str(path))
    assert torch.allclose(predictor.probs([img.float() / 255]), by_path, atol=1e-6)  # floats in [0, 1]
    assert torch.allclose(predictor.probs([img.to(torch.int64)]), by_path)  # integers in [0, 255]
    with pytest.raises(ValueError, match=r"float image tensor holds values in \[0, 1\], not .*pass them as uint8"):
        predictor.probs([img.float()])  # 0–255 as floats: read as [0, 1] it would be a white image
    wide = img.to(torch.int32)
    wide[0, 0, 0] = 300  # would wrap round to 44 in uint8
    with pytest.raises(ValueError, match=r"integer image tensor holds values in \[0, 255\], not \[\d+, 300\]"):
        predictor.probs([wide])
    nan = img.float() / 255
    nan[0, 0, 0] = float("nan")  # passes every range comparison: it would be read as 0
    with pytest.raises(ValueError, match="NaN or infinite"):
        predictor.probs([nan])
    for empty in (torch.zeros(3, 0, 5), torch.zeros(3, 4, 0, dtype=torch.uint8)):
        with pytest.raises(ValueError, match=r"every size at least 1, not \(3, "):
            predictor.probs([empty])


def test_batching_does_not_change_results(tiny_run, predictor, image_files):
    from alexnet.infer import Predictor

    paths = [p for p, _ in image_files]
    one = Predictor(tiny_run, device="cpu", batch_size=1, workers=1).probs(paths)
    assert torch.allclose(predictor.probs(paths), one, atol=1e-5)


def test_k_is_clamped_and_info(predictor):
    assert predictor.info() == {"model": "alexnet-cifar", "num_classes": 3, "input_size": [3, 32, 32],
                                "classes": CLASSES}
    t = predictor.predict([torch.zeros(3, 20, 30, dtype=torch.uint8)], k=10)[0]
    assert len(t) == 3
    import numpy as np

    assert len(predictor.predict([torch.zeros(3, 20, 30, dtype=torch.uint8)], k=np.int64(2))[0]) == 2
    for bad in (0, -1, 2.5, None, True):  # were the top 1, the top 1, the top 2, a TypeError, the top 1
        with pytest.raises(ValueError, match="k is the number of classes to give, a whole number at least 1"):
            predictor.predict([torch.zeros(3, 20, 30, dtype=torch.uint8)], k=bad)
        with pytest.raises(ValueError, match="whole number at least 1"):  # also where no file reads
            predictor.predict_files(["no/such/file.png"], k=bad)


def test_a_pillow_image_is_read_as_its_file_would_be(predictor, image_files, tmp_path):
    from PIL import Image

    path = image_files[0][0]
    with Image.open(path) as im:
        assert torch.equal(predictor.probs(im), predictor.probs([path]))  # one image, or a list of them
        rgba = im.convert("RGBA")
    rgba.putalpha(0)  # transparent: composited over white, as a PNG file of it is
    rgba.save(tmp_path / "clear.png")
    assert torch.equal(predictor.probs([rgba]), predictor.probs([tmp_path / "clear.png"]))
    wide = Image.new("RGB", (40, 20), (200, 30, 30))
    wide.paste((30, 30, 200), (0, 0, 20, 20))  # blue left, red right; EXIF 6: turned upright, blue on top
    exif = Image.Exif()
    exif[0x0112] = 6
    wide.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "turned.jpg") as im:
        assert predictor.load_image(im).shape == predictor.load_image(tmp_path / "turned.jpg").shape == (3, 40, 20)


def test_features_are_fc7(predictor, image_files):
    paths = [p for p, _ in image_files[:5]]
    f = predictor.features(paths)
    fc7 = predictor.model.classifier.fc7.out_features
    assert f.shape == (5, fc7) and f.dtype == torch.float32
    assert (f >= 0).all()  # after ReLU


def test_ten_crop_averages_ten_softmaxes(tiny_run, image_files, tmp_path):
    from alexnet.infer import Predictor

    p10 = Predictor(tiny_run, device="cpu", ten_crop=True)
    path = image_files[3][0]
    crops = p10.preprocess(path)
    assert crops.shape == (10, 3, 32, 32) and crops.dtype == torch.uint8
    with torch.no_grad():
        manual = p10.model(p10.normalize(crops)).softmax(1).mean(0)
    assert torch.allclose(p10.probs([path])[0], manual, atol=1e-6)
    # an input where the crops disagree: averaging softmaxes and averaging logits give different answers
    torch.manual_seed(3)
    with torch.no_grad():
        for prm in p10.model.parameters():
            prm.copy_(torch.randn_like(prm) * 0.3)
    from PIL import Image

    noise = tmp_path / "noise.png"
    Image.fromarray(torch.randint(0, 256, (40, 48, 3), dtype=torch.uint8).numpy()).save(noise)
    crops = p10.preprocess(str(noise))
    with torch.no_grad():
        logits = p10.model(p10.normalize(crops)).float()
    softmax_mean, logit_mean = logits.softmax(1).mean(0), logits.mean(0).softmax(0)
    assert (softmax_mean - logit_mean).abs().max() > 0.02  # the two rules really differ here
    assert torch.allclose(p10.probs([str(noise)])[0], softmax_mean, atol=1e-5)


def test_bad_images_raise_or_are_reported(predictor, image_files, corrupt_file, tmp_path):
    from alexnet.data import BadImageError

    with pytest.raises(BadImageError):
        predictor.predict_bytes(b"")
    with pytest.raises(BadImageError):
        predictor.predict([corrupt_file])
    missing = tmp_path / "missing.jpg"
    res = predictor.predict_files([image_files[0][0], corrupt_file, missing, image_files[1][0]], k=2)
    assert [r.ok for r in res] == [True, False, False, True]
    assert "JPEG" in res[1].error and "no such file" in res[2].error.lower()
    assert len(res[0].top) == 2


def test_thread_safe(predictor, image_files):
    paths = [p for p, _ in image_files]
    want = predictor.probs(paths)
    got, errors = {}, []

    def work(i):
        try:
            got[i] = predictor.probs(paths)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and all(torch.allclose(g, want, atol=1e-5) for g in got.values())


def test_grey_model_accepts_colour_images(tmp_path, image_files):
    from alexnet.infer import Predictor
    from alexnet.models import build_model, make_meta, save_weights

    model = build_model("alexnet-mnist", num_classes=3, width=0.25)
    save_weights(model, tmp_path, make_meta("alexnet-mnist", CLASSES, model_kwargs={"width": 0.25}))
    p = Predictor(tmp_path, device="cpu")
    assert p.preprocess(image_files[0][0]).shape == (1, 28, 28)
    assert len(p.predict([image_files[0][0]], k=2)[0]) == 2


# ----------------------------------------------------------------------------- the command

def test_cli_table_folder(tiny_run, image_root, capsys):
    assert main(["predict", str(tiny_run), str(image_root), "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["file", "#", "class", "prob"]
    assert len(out) == 1 + 2 * len(CLASSES) * 6
    first = out[1].split()
    assert first[0].endswith("blue0.jpg") and first[1] == "1" and first[2] == "blue"
    # aligned: the class column starts at the same offset on every row
    starts = {line.index(line.split()[-2]) for line in out[1:] if line.split()[1] in ("1", "2")}
    assert len(starts) == 1


def test_cli_glob_json(tiny_run, image_root, capsys):
    assert main(["predict", str(tiny_run), str(image_root / "red" / "*.png"), "--format", "json", "-k", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "alexnet-cifar" and len(d["results"]) == 3
    for r in d["results"]:
        assert r["error"] is None and r["file"].endswith(".png")
        assert r["predictions"][0]["class"] == "red" and 0 < r["predictions"][0]["prob"] <= 1


def test_cli_bad_files_exit_1_csv(tiny_run, image_files, corrupt_file, tmp_path, capsys):
    good = str(image_files[0][0])
    args = ["predict", str(tiny_run), good, str(corrupt_file), str(tmp_path / "nope.jpg"),
            str(tmp_path / "none*.png"), "--format", "csv", "-k", "3"]
    assert main(args) == 1
    cap = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(cap.out)))
    assert [r["file"] for r in rows] == [good] * 3 + [str(corrupt_file), str(tmp_path / "nope.jpg"),
                                                      str(tmp_path / "none*.png")]
    assert [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    assert rows[3]["error"].startswith("corrupt JPEG") or rows[3]["error"].startswith("truncated")
    assert rows[4]["error"] == "no such file" and rows[5]["error"] == "no files match"
    assert "3 of 4 inputs failed" in cap.err


def test_cli_table_shows_error_rows(tiny_run, image_files, corrupt_file, capsys):
    assert main(["predict", str(tiny_run), str(corrupt_file), str(image_files[0][0])]) == 1
    out = capsys.readouterr().out
    assert "error: " in out and "broken.jpg" in out


def test_cli_bad_weights_and_flags_exit_2(tmp_path, image_files, capsys):
    img = str(image_files[0][0])
    assert main(["predict", str(tmp_path), img]) == 2
    assert "weights.safetensors" in capsys.readouterr().err
    (tmp_path / "weights.safetensors").write_bytes(b"garbage")
    (tmp_path / "weights.json").write_text('{"model": "alexnet-cifar", "classes": ["a", "b"]}')
    assert main(["predict", str(tmp_path), img]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path), img, "--format", "xml"])
    assert e.value.code == 2


def test_cli_k_must_be_positive(tiny_run, image_files, capsys):
    assert main(["predict", str(tiny_run), str(image_files[0][0]), "-k", "0"]) == 2
    assert "-k" in capsys.readouterr().err


def test_json_and_another_format_are_refused_and_json_alone_is_json(tiny_run, image_files, capsys):
    img = str(image_files[0][0])
    assert main(["predict", str(tiny_run), img, "--json", "--format", "csv"]) == 2  # it printed csv
    assert "--json and --format csv" in capsys.readouterr().err
    assert main(["predict", str(tiny_run), img, "--format", "csv", "--json"]) == 2  # in either order
    capsys.readouterr()
    assert main(["predict", str(tiny_run), img, "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["predict", str(tiny_run), img, "--csv", "--json"]) == 2
    assert "--json and --csv ask for two formats" in capsys.readouterr().err
    assert main(["predict", str(tiny_run), img, "--csv", "--format", "csv", "-k", "1"]) == 0  # the same, twice
    assert capsys.readouterr().out.splitlines()[0] == "file,rank,class,index,prob,error"


def test_normalisation_mode_comes_from_weights_json(tiny_run, tmp_path, image_files):
    """Weights trained with the paper's raw-pixel mean subtraction are predicted with it too."""
    import shutil

    from alexnet.data import normalizer_for
    from alexnet.infer import Predictor

    run = tmp_path / "pixelmean"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "weights.json").read_text())
    (run / "weights.json").write_text(json.dumps({**meta, "normalize": "pixelmean"}))
    p = Predictor(run, device="cpu")
    crop = p.preprocess(image_files[0][0])
    with torch.no_grad():
        want = p.model.forward_features(normalizer_for(p.cfg, mode="pixelmean")(crop[None]))
    assert torch.allclose(p.features([image_files[0][0]]), want, atol=1e-5)
    assert not torch.allclose(Predictor(tiny_run, device="cpu").features([image_files[0][0]]), want, atol=1e-2)


def test_lazy_top_level_export():
    import alexnet
    from alexnet.infer import Predictor

    assert alexnet.Predictor is Predictor


def test_pixel_limit_refuses_decompression_bombs(tiny_run, image_files):
    from alexnet.data import BadImageError
    from alexnet.infer import Predictor

    p = Predictor(tiny_run, device="cpu", max_pixels=30 * 30)
    with pytest.raises(BadImageError, match="too many pixels"):
        p.predict_bytes(image_files[0][0].read_bytes())
    assert "too many pixels" in p.predict_files([image_files[0][0]])[0].error


def test_a_folder_leaves_out_hidden_files_and_takes_every_jpeg_extension(tmp_path, write_image):
    from alexnet.infer.predictor import expand_inputs

    d = tmp_path / "photos"
    write_image(d / "a.jpg")
    write_image(d / "b.jfif", fmt="JPEG")
    (d / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS's twin: not an image
    write_image(d / ".cache" / "c.jpg")
    assert expand_inputs([str(d)]) == [(str(d / "a.jpg"), None), (str(d / "b.jfif"), None)]
    assert expand_inputs([str(d / "._a.jpg")]) == [(str(d / "._a.jpg"), None)]  # named on its own: taken


def test_cli_ten_crop_says_what_its_crops_are(tiny_run, image_files, capsys):
    assert main(["predict", str(tiny_run), str(image_files[0][0]), "--ten-crop", "--format", "json"]) == 0
    cap = capsys.readouterr()
    assert "only the centre crop and its mirror (the five crops coincide)" in cap.err  # 32×32 net, 32×32 view
    assert json.loads(cap.out)["views"] == "ten-crop"


def test_a_file_named_twice_is_predicted_once(tmp_path, write_image):
    from alexnet.infer.predictor import expand_inputs

    a = write_image(tmp_path / "p" / "a.jpg")
    write_image(tmp_path / "p" / "b.jpg")
    got = expand_inputs([a, str(tmp_path / "p"), str(tmp_path / "p" / "*.jpg"), str(tmp_path / "p" / "." / "a.jpg")])
    assert got == [(a, None), (str(tmp_path / "p" / "b.jpg"), None)]


def test_folders_and_globs_read_what_training_reads_and_never_go_round_a_loop(tmp_path, write_image):
    """A folder gives the files training takes from it: a linked folder's images (outside the tree)
    and a broken link (reported when read); a link back up the tree is not followed, by a folder
    or by ``**``, so each image is listed once under its plain path."""
    import os

    from alexnet.data.folders import image_files
    from alexnet.infer.inputs import expand_inputs

    d, outside = tmp_path / "ds", tmp_path / "elsewhere"
    for name in ("cat/z.jpg", "cat/deep/b.png", "dog/c.jpg"):  # z: after "loop/…" in sorted order
        write_image(d / name, fmt="PNG" if name.endswith("png") else "JPEG")
    write_image(outside / "e.jpg", fmt="JPEG")
    os.symlink(outside, d / "dog" / "linked")
    os.symlink(d / "cat", d / "cat" / "loop")  # to itself
    os.symlink(d, d / "dog" / "uploop")  # to the top
    os.symlink(tmp_path / "gone.jpg", d / "dog" / "broken.jpg")
    want = [str(d / n) for n in ("cat/z.jpg", "cat/deep/b.png", "dog/broken.jpg", "dog/c.jpg", "dog/linked/e.jpg")]
    assert [p for p, _ in expand_inputs([str(d)])] == want == list(image_files(str(d)))  # training's order
    got = expand_inputs([str(d / "**" / "*.jpg"), str(d / "**" / "*.png")])
    assert sorted(p for p, _ in got) == sorted(w for w in want)
    assert all("loop" not in p for p, _ in got)
    assert expand_inputs(["https://example.com/cat.jpg"])[0][1].startswith("a URL: predict reads files")
    assert expand_inputs([str(d / "cat" / "*.gif")]) == [(str(d / "cat" / "*.gif"), "no files match")]


def test_relative_globs_name_files_as_glob_does_and_cross_links_end(tmp_path, monkeypatch, write_image):
    """Patterns from the current folder give what ``glob.glob(recursive=True)`` gives, path for path
    (``x.jpg``, ``./x/a.png``, ``*/`` folders only); three folders that each link to the other two
    are read once each, under their own paths, where following the links never ended."""
    import glob
    import os

    from alexnet.data.folders import image_files
    from alexnet.infer.inputs import expand_inputs, glob_paths

    plain = tmp_path / "plain"
    for name in ("x.jpg", "y.JPG", "photo[1].jpg", "sub/s.jpg", "sub/deep/d.png", "x/a.png"):
        write_image(plain / name, fmt="PNG" if name.endswith("png") else "JPEG")
    (plain / "readme.txt").write_text("not an image")
    (plain / ".hidden.jpg").write_bytes(b"x")
    monkeypatch.chdir(plain)
    for pattern in ("**", "*.jpg", "*/", "./x/*.png", "**/*.jpg", "x/../*.jpg", "*", "sub//*.jpg"):
        assert glob_paths(pattern) == sorted(glob.glob(pattern, recursive=True)), pattern
    assert [p for p, _ in expand_inputs(["**/*.jpg"])] == ["photo[1].jpg", "sub/s.jpg", "x.jpg"]
    assert all(err is None for _, err in expand_inputs(["*.jpg", "./x/*.png"]))
    tri = tmp_path / "tri"
    for i, name in enumerate("abc"):
        write_image(tri / name / f"{i}.jpg", fmt="JPEG")
    for name in "abc":
        for other in "abc".replace(name, ""):
            os.symlink(tri / other, tri / name / f"to-{other}")
    want = [str(tri / n) for n in ("a/0.jpg", "b/1.jpg", "c/2.jpg")]
    assert [p for p, _ in expand_inputs([str(tri)])] == want == list(image_files(str(tri)))
    assert glob_paths(str(tri / "**" / "*.jpg")) == want
