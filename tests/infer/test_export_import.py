"""Export (ONNX checked with onnxruntime, TorchScript, safetensors) and the torchvision import."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torchvision

from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.infer.export import example_inputs, export_model
from alexnet.infer.interop import imagenet_classes, import_torchvision
from alexnet.models import build_model, load_weights, make_meta, meta_cfg, save_weights


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    """The paper's two-tower network (LRN, grouped convs) at a tiny width."""
    torch.manual_seed(0)
    model = build_model("alexnet", num_classes=4, width=0.0625, fc_width=64)
    run = tmp_path_factory.mktemp("paper")
    save_weights(model, run, make_meta("alexnet", list("abcd"), model_kwargs={"width": 0.0625, "fc_width": 64}))
    return run


@pytest.mark.parametrize("which, exporter", [("tiny_run", "torchscript"), ("paper_run", "dynamo"),
                                             ("paper_run", "torchscript")])  # LRN traced: it was a traceback
def test_onnx_matches_pytorch_with_dynamic_batch(which, exporter, request, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs onnxscript")
    run = request.getfixturevalue(which)
    res = export_model(run, "onnx", tmp_path / "m.onnx", exporter=exporter)
    assert exporter in res.exporter.lower().replace("torchscript-based", "torchscript")
    assert res.max_abs_diff is not None and res.max_abs_diff <= res.tolerance
    model, meta = load_weights(run)
    cfg = meta_cfg(meta)
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    for b in (1, 5):  # other batch sizes than the export's
        x = example_inputs(cfg, b, seed=7)
        got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
        with torch.no_grad():
            assert torch.allclose(got, model(x), atol=1e-4, rtol=1e-4)
    props = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert json.loads(props["classes"]) == meta["classes"] and props["model"] == meta["model"]
    assert json.loads(props["input_size"]) == list(cfg.input_size)
    side = res.path.with_name(res.path.name + ".json")  # m.onnx.json, as for the other formats
    beside = json.loads(side.read_text())
    assert beside["classes"] == meta["classes"] and beside["export"] == props and res.extra_files == (side,)


def test_cli_export_onnx_prints_difference(tiny_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(tiny_run), "--format", "onnx", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max abs difference" in text and "ok" in text


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_check_failure_leaves_no_file(fmt, tiny_run, tmp_path, monkeypatch, capsys):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    import alexnet.infer.export as ex

    monkeypatch.setattr(ex, "tolerance_for", lambda ref: -1.0)  # nothing can pass
    out = tmp_path / f"bad.{fmt}"
    assert main(["export", str(tiny_run), "--format", fmt, "-o", str(out)]) == 1
    assert "differs" in capsys.readouterr().err
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.endswith(f".{fmt}")]


def test_torchscript_of_the_papers_network_with_its_lrn(paper_run, tmp_path):
    """torch.jit.trace cannot record LRN's autograd.Function: the trace takes the same forward in
    plain ops (it was "Could not export Python function call 'LRNFunction'", a traceback)."""
    res = export_model(paper_run, "torchscript", tmp_path / "p.pt")
    model, meta = load_weights(paper_run)
    x = example_inputs(meta_cfg(meta), 2)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(res.path))(x), model(x), atol=1e-5)


def test_torchscript_and_safetensors(tiny_run, tmp_path):
    res = export_model(tiny_run, "torchscript", tmp_path / "m.pt")
    assert res.max_abs_diff <= res.tolerance
    ts = torch.jit.load(str(res.path))
    model, meta = load_weights(tiny_run)
    x = example_inputs(meta_cfg(meta), 3)
    with torch.no_grad():
        assert torch.allclose(ts(x), model(x), atol=1e-5)
    assert json.loads((tmp_path / "m.pt.json").read_text())["classes"] == meta["classes"]
    st = export_model(tiny_run, "safetensors", tmp_path / "copy.safetensors")
    again, meta2 = load_weights(st.path)
    assert meta2 == meta
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_safetensors_export_to_another_suffix_says_where_it_went(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run), "--format", "safetensors", "-o", str(tmp_path / "x.st")]) == 0
    out, err = capsys.readouterr()
    assert f"note: -o {tmp_path / 'x.st'}: weights are written as {tmp_path / 'x.safetensors'}" in err  # a note
    assert f"wrote {tmp_path / 'x.safetensors'}" in out  # the report
    assert (tmp_path / "x.safetensors").is_file() and not (tmp_path / "x.st").exists()
    out_file = tmp_path / "x.safetensors"
    assert main(["export", str(tiny_run), "--format", "safetensors", "-o", str(out_file)]) == 0
    assert f"replaced {out_file} (safetensors" in capsys.readouterr().out  # what -o held is gone: said so


@pytest.mark.parametrize("which", ["tiny_run", "paper_run"])
def test_pt2_is_torch_export_with_a_free_batch_and_the_metadata_inside(which, request, tmp_path, capsys):
    """``--format pt2``: ``torch.export.load(path).module()`` computes what PyTorch does at batch sizes
    other than the export's (the paper's LRN and grouped convolutions included), and the archive
    carries the classes and preprocessing, as does the JSON beside it."""
    run = request.getfixturevalue(which)
    out = tmp_path / "m.pt2"
    assert main(["export", str(run), "--format", "pt2", "-o", str(out)]) == 0
    assert "(pt2, " in capsys.readouterr().out
    extra = {"alexnet.json": ""}
    program = torch.export.load(str(out), extra_files=extra).module()
    model, meta = load_weights(run)
    for b in (1, 5):
        x = example_inputs(meta_cfg(meta), b, seed=7)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x), atol=1e-5, rtol=1e-5)
    inside = json.loads(extra["alexnet.json"])
    assert inside["classes"] == meta["classes"] and inside["export"]["model"] == meta["model"]
    assert json.loads((tmp_path / "m.pt2.json").read_text()) == inside
    with pytest.raises(UserError, match="a torch.export archive"):  # not weights to load
        load_weights(out)


def test_unknown_format_is_user_error(tiny_run, tmp_path):
    with pytest.raises(UserError):
        export_model(tiny_run, "tflite", tmp_path / "x")


# ----------------------------------------------------------------------------- import

@pytest.fixture(scope="module")
def tv_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    tv = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp("tv") / "alexnet-owt-7be5be79.pth"
    torch.save(tv.state_dict(), path)
    return tv, path


def test_import_torchvision_gives_identical_outputs_then_predicts(tv_checkpoint, tmp_path, image_files, capsys):
    tv, path = tv_checkpoint
    out = tmp_path / "owt"
    assert main(["import", "torchvision", str(path), "-o", str(out)]) == 0
    assert (out / "weights.safetensors").is_file() and (out / "weights.json").is_file()
    model, meta = load_weights(out)
    assert meta["model"] == "alexnet-owt" and meta["classes"] == imagenet_classes()
    assert meta["classes"][0] == "tench" and meta["classes"][999] == "toilet tissue"
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), tv(x))
    capsys.readouterr()
    assert main(["predict", str(out), str(image_files[0][0]), "--format", "json", "-k", "3"]) == 0
    preds = json.loads(capsys.readouterr().out)["results"][0]["predictions"]
    assert len(preds) == 3 and all(p["class"] in imagenet_classes() for p in preds)


def test_checkpoint_unwrapping(tmp_path):
    """DataParallel/DDP checkpoints: ``module.`` prefixes, the state_dict under "model"."""
    from alexnet.infer.interop import _state_dict

    t = torch.zeros(2)
    assert _state_dict({"model": {"module.features.0.weight": t}, "epoch": 3}, tmp_path) == {"features.0.weight": t}
    with pytest.raises(UserError, match="not a tensor"):
        _state_dict({"features.0.weight": [1, 2]}, tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil()}, path)  # unpickling would run os.system
    with pytest.raises(UserError, match="pickled code"):
        import_torchvision(path, tmp_path / "out")
    assert main(["import", "torchvision", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "refused" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_not_an_alexnet_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="not a torchvision AlexNet"):
        import_torchvision(path, tmp_path / "out")
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11), "classifier.6.weight": torch.zeros(10, 4096)}, path)
    with pytest.raises(UserError, match="does not fit"):
        import_torchvision(path, tmp_path / "out")


def test_exports_of_two_formats_to_one_stem_keep_their_own_json(tiny_run, paper_run, tmp_path, capsys):
    """m.onnx of one run and m.pt2 of another: each JSON beside its own file describes its own model."""
    pytest.importorskip("onnxruntime")
    assert main(["export", str(tiny_run), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["export", str(paper_run), "--format", "pt2", "-o", str(tmp_path / "m.pt2")]) == 0
    assert json.loads((tmp_path / "m.onnx.json").read_text())["model"] == "alexnet-cifar"
    assert json.loads((tmp_path / "m.pt2.json").read_text())["model"] == "alexnet"
    assert main(["export", str(tiny_run), "--format", "pt2", "-o", str(tmp_path / "x.onnx")]) == 0
    assert "note: -o " in capsys.readouterr().err  # a pt2 archive named .onnx: said, written as asked


@pytest.mark.parametrize("opset", [6, 99])
def test_an_opset_the_installed_onnx_cannot_write_is_one_line(tiny_run, tmp_path, capsys, opset):
    pytest.importorskip("onnx")
    assert main(["export", str(tiny_run), "--format", "onnx", "-o", str(tmp_path / "m.onnx"),
                 "--opset", str(opset)]) == 2
    assert f"--opset {opset}: the installed onnx writes opsets 7 to" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_an_onnx_file_of_another_opset_than_asked_is_not_written(tiny_run, tmp_path, monkeypatch):
    """The dynamo exporter falls back to its own opset where it cannot convert: that is an error, not
    a file labelled with the opset asked for."""
    import alexnet.infer.export as ex

    real = ex._onnx_export
    monkeypatch.setattr(ex, "_onnx_export", lambda m, x, tmp, opset, exporter: real(m, x, tmp, 18, exporter))
    with pytest.raises(UserError, match="wrote opset 18, not the 17 asked for"):
        export_model(tiny_run, "onnx", tmp_path / "m.onnx", opset=17)
    assert not (tmp_path / "m.onnx").exists()


def test_an_old_opset_the_dynamo_exporter_cannot_reach_is_one_line_without_its_logs(tiny_run, tmp_path, capfd):
    """onnxscript logs a traceback, and torch a warning, where it cannot convert to opset 9: the
    person sees the one line that says what to do (exit 2: the flag's to change)."""
    pytest.importorskip("onnxscript")
    code = main(["export", str(tiny_run), "--format", "onnx", "--exporter", "dynamo", "-o", str(tmp_path / "m.onnx"),
                 "--opset", "9", "--no-verify"])
    err = capfd.readouterr().err.strip()
    if code == 0:  # an onnxscript that can convert: then the file is opset 9
        import onnx

        assert [o.version for o in onnx.load(str(tmp_path / "m.onnx")).opset_import if o.domain in ("", "ai.onnx")] == [9]
    else:
        assert code == 2 and err.count("\n") == 0 and "not the 9 asked for; not written" in err, err
