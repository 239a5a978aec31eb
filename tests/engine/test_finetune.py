"""Fine-tuning (docs/finetune.md): --weights from a torchvision-layout state_dict, a run of ours and a
torchvision weights name; --freeze with batch norm; the chance-level warning; default recipes;
folders handed over for evaluation; the --output-dir folder in place of a run directory."""

from __future__ import annotations

import argparse
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.data import build_dataset, build_transforms
from alexnet.engine import make_config
from alexnet.engine.recipes import default_recipe
from alexnet.engine.train import Trainer, fit
from alexnet.infer.evaluation import evaluate_weights
from alexnet.models import build_model, load_weights, model_cfg
from alexnet.models.pretrained import freeze, load_pretrained

CIFAR_KW = {"width": 0.125, "fc_width": 32, "norm": "batch"}


def _folder(root: Path, counts: dict[str, int], size=(32, 32), same: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    fixed = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    for c, n in counts.items():
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = fixed if same else rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("photos"), {"ant": 6, "bee": 6})


def _cfg(tmp_path, data, **kw):
    base = dict(model="alexnet-cifar", data=f"folder:{data}", model_kwargs=dict(CIFAR_KW), epochs=1,
                batch_size=4, amp="off", output_dir=str(tmp_path / "runs"), name="ft", val_split=0.25,
                optimizer="sgd", lr=0.05, weight_decay=0.1,
                lookahead=False)  # the recipe's lookahead would set 3 steps' weights back to where they began
    return make_config("cifar10", **{**base, **kw})


def _trainer(cfg):
    from alexnet.core.device import resolve_device
    from alexnet.engine.distributed import World

    return Trainer(cfg.validate(), World(), resolve_device("cpu"))


def test_finetune_from_torchvision_layout_pth(tmp_path, photos):
    """A state_dict saved with torch.save (torchvision's layout, 10 classes) → 2-class fine-tune with
    --freeze features: frozen layers bit-equal, new head, optimiser holds only what trains."""
    src = build_model("alexnet-cifar", num_classes=10, **CIFAR_KW)
    for m in src.modules():  # non-trivial batch-norm statistics, to see that they stay
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    pth = tmp_path / "pretrained.pth"
    torch.save(src.state_dict(), pth)
    cfg = _cfg(tmp_path, photos, weights=str(pth), freeze="features", max_steps=3)
    t = _trainer(cfg)
    assert t.pretrained["reinitialised"] == ["classifier.fc8"]
    trainable = {id(p) for p in t.model.parameters() if p.requires_grad}
    in_opt = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert in_opt == trainable == {id(p) for p in t.model.classifier.parameters()}
    t.run()
    after = t.model.state_dict()
    for k, v in src.state_dict().items():
        if k.startswith("features."):
            assert torch.equal(after[k], v), k  # weights and batch-norm running statistics
    assert not torch.equal(after["classifier.fc6.weight"], src.state_dict()["classifier.fc6.weight"])
    assert after["classifier.fc8.weight"].shape[0] == 2
    assert not any(p in t.optimizer.state for p in t.model.features.parameters())
    _, meta = load_weights(t.run_dir)
    assert meta["classes"] == ["ant", "bee"]
    assert meta["init_weights"]["kind"] == "file" and meta["init_weights"]["reinitialised"] == ["classifier.fc8"]
    assert json.loads((t.run_dir / "config.json").read_text())["weights"] == str(pth)


def test_freeze_fc7_keeps_batchnorm_in_eval_and_trains_only_fc8(tmp_path, photos, capsys):
    cfg = _cfg(tmp_path, photos, freeze="fc7", max_steps=2, name="probe", lr_backbone_scale=0.1)
    t = _trainer(cfg)
    from alexnet.engine.report import log_setup

    log_setup(t)  # the start line says nothing before fc8 trains, not that it trains at 0.1×
    assert "every layer before it is frozen (--lr-backbone-scale 0.1 has nothing to scale)" in capsys.readouterr().out
    bn = t.model.features.bn1
    before = bn.running_mean.clone()
    assert [n for n, p in t.model.named_parameters() if p.requires_grad] == ["classifier.fc8.weight",
                                                                            "classifier.fc8.bias"]
    t.run()
    assert torch.equal(bn.running_mean, before)
    # without --freeze the statistics move: the check above can fail
    t2 = _trainer(_cfg(tmp_path, photos, max_steps=1, name="nofreeze"))
    before2 = t2.model.features.bn1.running_mean.clone()
    t2.run()
    assert not torch.equal(t2.model.features.bn1.running_mean, before2)


def test_freezing_a_convolution_freezes_its_batch_norm_too():
    """--freeze conv3 keeps the conv3 block's output as loaded: bn3 (which normalises conv3's maps)
    is frozen with it; conv4 and bn4 train."""
    m = build_model("alexnet-cifar", num_classes=3, width=0.125, norm="batch")
    f = freeze(m, "conv3")
    assert not m.features.bn3.weight.requires_grad and m.features.bn3 in f.modules
    assert m.features.conv4.weight.requires_grad and m.features.bn4.weight.requires_grad
    plain = build_model("alexnet-cifar", num_classes=3, width=0.125)  # no batch norm: up to conv3 only
    freeze(plain, "conv3")
    assert plain.features.conv4.weight.requires_grad


def test_freeze_names_paper_layers_on_owt():
    m = build_model("alexnet-owt", num_classes=3)
    f = freeze(m, "fc6")
    assert f.layer == "classifier.1" and not m.classifier[1].weight.requires_grad
    assert m.classifier[4].weight.requires_grad
    with pytest.raises(UserError, match="no such layer"):
        freeze(build_model("alexnet-owt", num_classes=3), "fc9")


def test_freeze_on_the_two_tower_network_follows_the_forward_not_the_registration():
    """Both towers' conv3 are one layer: --freeze conv3 freezes conv1–conv3 of both towers and
    nothing after (registration order, all of tower 1 first, froze tower 1 only)."""
    m = build_model("alexnet", num_classes=3, towers=2, width=0.125, fc_width=32)
    freeze(m, "conv3")
    trains = {n.rsplit(".", 1)[0] for n, p in m.named_parameters() if p.requires_grad}
    assert trains == {f"tower{i}.conv{k}" for i in (1, 2) for k in (4, 5)} | {"fc6.0", "fc6.1", "fc7.0", "fc7.1", "fc8"}


@pytest.mark.parametrize("model,layer,says", [
    ("resnet18", "conv2", "more than one layer is named so (layer1.0.conv2"),  # one per block
    ("resnet18", "conv5", "no such layer (try conv1, bn1"),  # was layer1.1.conv2: it names its own convs
    ("cifar4", "conv4", "no such layer"),  # three convolutions, named conv1…conv3
    ("vgg16", "fc7", "not laid out as AlexNet (13 convolutions, 3 linear layers)"),
    ("googlenet", "fc7", "no such layer (try conv1, maxpool1"),  # it names conv1…conv3 itself
    ("resnet18", "layer9", "no such layer (try conv1, bn1"),
])
def test_freeze_refuses_a_name_that_means_no_one_layer(model, layer, says):
    with pytest.raises(UserError) as e:
        freeze(build_model(model, num_classes=3), layer)
    assert says in str(e.value)
    assert "(try" not in str(e.value) or "conv1…conv5" not in str(e.value)  # not offered where they mean nothing
    assert freeze(build_model("resnet18", num_classes=3), "layer1.0.conv2").layer == "layer1.0.conv2"


def test_freezing_one_tower_of_two_is_refused():
    """tower1's layers run interleaved with tower2's: "tower1 and everything before it" froze half
    of tower2; refused with what to give instead."""
    with pytest.raises(UserError, match="interleaved"):
        freeze(build_model("alexnet", num_classes=3, towers=2, width=0.125, fc_width=32), "tower1")


def test_torchvision_state_dict_loads_into_owt_with_new_head():
    import torchvision

    tv = torchvision.models.alexnet(weights=None)
    m = build_model("alexnet-owt", num_classes=4)
    path_sd = tv.state_dict()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        torch.save(path_sd, Path(d) / "alexnet-owt-7be5be79.pth")
        info = load_pretrained(m, str(Path(d) / "alexnet-owt-7be5be79.pth"), "alexnet-owt")
    assert info.reinitialised == ["classifier.6"] and info.loaded == 14
    assert torch.equal(m.features[0].weight, tv.features[0].weight)
    assert m.classifier[6].weight.shape == (4, 4096)


def test_weights_name_reads_the_hub_cache_and_offline_says_which_file(tmp_path, monkeypatch, capsys, photos):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    rc = main(["train", "--weights", "IMAGENET1K_V1", "--model", "alexnet-owt", "--data", f"folder:{photos}",
               "--output-dir", str(tmp_path / "runs"), "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    want = tmp_path / "torch" / "hub" / "checkpoints"
    assert err.startswith("error: ") and "alexnet-owt-7be5be79.pth" in err and str(want) in err
    # the file in the hub cache: read from there, no network needed
    want.mkdir(parents=True, exist_ok=True)
    m = build_model("alexnet-owt", num_classes=2)
    torch.save(build_model("alexnet-owt").state_dict(), want / "alexnet-owt-7be5be79.pth")
    info = load_pretrained(m, "AlexNet_Weights.IMAGENET1K_V1", "alexnet-owt", progress=False)
    assert info.kind == "torchvision" and info.reinitialised == ["classifier.6"]
    with pytest.raises(UserError, match="are for --model alexnet-owt"):
        load_pretrained(build_model("resnet18"), "AlexNet_Weights.IMAGENET1K_V1", "resnet18")


def test_pth_with_pickled_code_is_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, bad)
    with pytest.raises(UserError, match="refused"):
        load_pretrained(build_model("alexnet-cifar", **CIFAR_KW), str(bad))


def test_finetune_from_a_run_of_ours_and_output_dir_folder(tmp_path, photos, capsys):
    """--weights RUN picks the run's model; --resume and evaluate accept the --output-dir folder."""
    first = tmp_path / "ten"
    _folder(first, {c: 2 for c in "abcd"}, seed=1)
    out = tmp_path / "out"
    rc = main(["train", "--model", "alexnet-cifar", *sum((["--model-arg", f"{k}={v}"] for k, v in CIFAR_KW.items()),
               []), "--data", f"folder:{first}", "--output-dir", str(out), "--epochs", "1", "-b", "4",
               "--amp", "off", "--val-split", "0.5"])
    assert rc == 0
    run_a = next(out.iterdir())
    capsys.readouterr()
    rc = main(["train", "--weights", str(out), "--data", f"folder:{photos}", "--output-dir", str(tmp_path / "ft"),
               "--name", "b", "--max-steps", "2", "-b", "4", "--amp", "off"])
    o = capsys.readouterr()
    assert rc == 0, o.err
    assert f"using run {run_a}" in o.err
    assert "recipe finetune" in o.out and "re-initialised (new classes): classifier.fc8" in o.out
    b = tmp_path / "ft" / "b"
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["model"] == "alexnet-cifar" and cfg["model_kwargs"]["norm"] == "batch"
    assert json.loads((b / "weights.json").read_text())["init_weights"]["kind"] == "run"
    # --resume with the --output-dir folder: its newest run, named
    rc = main(["train", "--resume", str(tmp_path / "ft"), "--epochs", "1"])
    o = capsys.readouterr()
    assert rc == 0 and f"using run {b}" in o.err
    res = evaluate_weights(str(tmp_path / "ft"), device="cpu", amp="off")
    assert res["run"] == str(b)


def test_chance_level_warning_on_unlearnable_data(tmp_path, capsys):
    data = _folder(tmp_path / "same", {"many": 8, "few": 4}, same=True)  # every image identical
    res = fit(_cfg(tmp_path, data, epochs=2, val_split=0.5, aug="none"))
    out = capsys.readouterr().out
    assert res.best_top1 <= 100 * 4 / 6 + 1e-6  # val: 4 'many', 2 'few'; one answer for all
    assert "does not beat always guessing the largest class, 'many' (66.67%)" in out
    assert "--weights" in out and "top-5" not in out  # two classes: no top-5 column


def test_no_chance_warning_above_the_largest_class(tmp_path, capsys):
    data = _folder(tmp_path / "same", {"many": 8, "few": 4}, same=True)
    t = _trainer(_cfg(tmp_path, data, val_split=0.5, aug="none", name="w"))
    t.report.chance_warning(100 * 4 / 6 + 1)  # beats 66.67 %
    assert "does not beat" not in capsys.readouterr().out
    t.report.chance_warning(100 * 4 / 6)
    assert "does not beat" in capsys.readouterr().out


def test_evaluate_plain_folder_scores_every_image(tmp_path, photos, capsys):
    import shutil

    t = fit(_cfg(tmp_path, photos, max_steps=1, name="ev"))
    capsys.readouterr()
    other = tmp_path / "other-photos"  # a folder of photos that is not the run's own data
    shutil.copytree(photos, other)
    res = evaluate_weights(str(t.run_dir), f"folder:{other}", device="cpu", amp="off")
    assert res["split"] == "all" and res["centre"].n == 12
    assert "slice" not in capsys.readouterr().err
    for data in (None, f"folder:{photos}", str(photos)):  # the run's own data, named again or not: its val slice
        res = evaluate_weights(str(t.run_dir), data, device="cpu", amp="off")
        assert res["split"] == "val" and res["centre"].n == 4
        assert "note: scoring the 25% validation slice held out with seed 0: 4 of 12 images" in capsys.readouterr().err
    rc = main(["evaluate", str(t.run_dir), "--data", f"folder:{photos}", "--split", "all", "--device", "cpu"])
    o = capsys.readouterr().out
    assert rc == 0 and "(all, 12 images)" in o and "top-5" not in o


def test_split_layout_without_train_is_a_clear_error(tmp_path, capsys):
    root = tmp_path / "only_test"
    _folder(root / "test", {"a": 2, "b": 2})
    with pytest.raises(UserError, match="without its training split"):
        build_dataset(f"folder:{root}", "train")
    assert len(build_dataset(f"folder:{root}", "val")) == 4  # evaluating it still works
    assert main(["data", "check", str(root)]) == 2
    assert "without its training split" in capsys.readouterr().err


def test_one_image_per_class_says_why_validation_is_empty(tmp_path):
    root = _folder(tmp_path / "ones", {"a": 1, "b": 1})
    with pytest.raises(UserError, match="every class has a single image"):
        build_dataset(f"folder:{root}", "val", val_split=0.2)


def test_default_recipe_suits_the_model():
    assert default_recipe(None, None)[0] == "digits"
    assert default_recipe("alexnet-mnist", None)[0] == "digits"
    assert default_recipe("alexnet-cifar", None)[0] == "cifar10"
    assert default_recipe("alexnet-owt", None)[0] == "photos"
    assert default_recipe("resnet18", None)[0] == "photos"
    # no model named: a dataset named by its kind brings its own recipe; a folder, or a model, does not
    assert default_recipe(None, None, "cifar10:/data/cifar10") == ("cifar10", "for cifar10 data")
    assert default_recipe(None, None, "imagenet:/datasets/ilsvrc2012")[0] == "paper"
    assert default_recipe(None, None, "mnist:/data/mnist")[0] == "digits"
    assert default_recipe(None, None, "/data/photos")[0] == "digits"  # not looked at: the default model's
    assert default_recipe(None, None, "folder:/data/photos", (3, 375, 500))[0] == "photos"
    assert default_recipe(None, None, "folder:/data/small", (3, 32, 32))[0] == "cifar10"
    assert default_recipe(None, None, "folder:/data/small", (1, 28, 28))[0] == "digits"
    assert default_recipe("alexnet-cifar", None, "folder:/data/photos", (3, 375, 500))[0] == "cifar10"
    assert default_recipe(None, "IMAGENET1K_V1", "folder:/data/photos", (3, 375, 500))[0] == "finetune"
    assert default_recipe("alexnet-owt", None, "cifar10:/data/cifar10")[0] == "photos"
    assert default_recipe(None, "IMAGENET1K_V1", "cifar10:/data/cifar10")[0] == "finetune"
    assert default_recipe("alexnet-owt", "IMAGENET1K_V1")[0] == "finetune"


def test_no_recipe_with_owt_on_photos_takes_sgd(photos, capsys):
    from alexnet.cli import build_parser
    from alexnet.commands.train import config_from_args

    args = build_parser().parse_args(["train", "--model", "alexnet-owt", "--data", str(photos)])
    cfg = config_from_args(args)
    assert (cfg.recipe, cfg.optimizer, cfg.lr, cfg.momentum) == ("photos", "sgd", 0.01, 0.9)
    assert "recipe photos (for alexnet-owt on photos" in capsys.readouterr().out
    args = build_parser().parse_args(["train", "--weights", "AlexNet_Weights.IMAGENET1K_V1", "--data", str(photos)])
    cfg = config_from_args(args)
    assert (cfg.recipe, cfg.model, cfg.lr_backbone_scale) == ("finetune", "alexnet-owt", 0.1)


def test_mnist_net_on_colour_photos_warns(tmp_path, photos, capsys):
    _trainer(make_config("digits", data=f"folder:{photos}", output_dir=str(tmp_path), batch_size=4,
                         model_kwargs={"width": 0.25, "fc_width": 16}))
    assert "warning: alexnet-mnist is a 1-channel 28×28 network" in capsys.readouterr().out


def test_mnist_net_on_grey_images_does_not_call_them_colour(tmp_path, capsys):
    # a folder's loader hands grey files over as RGB; the files' own mode says they are grey
    for cls in ("a", "b"):
        (tmp_path / "grey" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (20, 20), 40 * i).save(tmp_path / "grey" / cls / f"{i}.png")
    _trainer(make_config("digits", data=f"folder:{tmp_path / 'grey'}", output_dir=str(tmp_path), batch_size=4,
                         model_kwargs={"width": 0.25, "fc_width": 16}))
    assert "1-channel" not in capsys.readouterr().out


def test_ten_crop_mirrors_only_models_trained_with_flips():
    img = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    assert build_transforms(model_cfg("alexnet-mnist"), train=False, ten_crop=True)(img).shape[0] == 5
    rgb = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    cfg = model_cfg("alexnet-cifar")
    ten = build_transforms(cfg, train=False, ten_crop=True)(rgb)
    five = build_transforms(cfg, train=False, ten_crop=True, mirror=False)(rgb)
    assert ten.shape[0] == 10 and torch.equal(ten[:5], five) and torch.equal(ten[5], ten[0].flip(-1))


def test_evaluate_and_predictor_ten_crop_follow_the_run(tmp_path, photos):
    from alexnet.infer import Predictor

    t = fit(_cfg(tmp_path, photos, max_steps=1, name="noflip", aug="none"))
    assert json.loads((t.run_dir / "weights.json").read_text())["train_flip"] is False
    assert Predictor(t.run_dir, device="cpu", ten_crop=True).transform(torch.zeros(3, 32, 32, dtype=torch.uint8)
                                                                        ).shape[0] == 5
    res = evaluate_weights(str(t.run_dir), ten_crop=True, device="cpu", amp="off")
    assert res["mirror"] is False and res["ten_crop"].n == 4


def test_run_weights_with_other_classes_get_a_new_head(tmp_path):
    """Same number of classes, other names: the last layer's rows mean other classes — re-initialised."""
    from alexnet.models import make_meta, save_weights

    src = build_model("alexnet-cifar", num_classes=2, **CIFAR_KW)
    save_weights(src, tmp_path / "a", make_meta("alexnet-cifar", ["cat", "dog"], model_kwargs=CIFAR_KW))
    same = build_model("alexnet-cifar", num_classes=2, **CIFAR_KW)
    assert load_pretrained(same, str(tmp_path / "a"), classes=["cat", "dog"]).reinitialised == []
    assert torch.equal(same.classifier.fc8.weight, src.classifier.fc8.weight)
    other = build_model("alexnet-cifar", num_classes=2, **CIFAR_KW)
    info = load_pretrained(other, str(tmp_path / "a"), classes=["ant", "bee"])
    assert info.reinitialised == ["classifier.fc8"] and info.classes == ["cat", "dog"]
    assert not torch.equal(other.classifier.fc8.weight, src.classifier.fc8.weight)
    assert torch.equal(other.classifier.fc7.weight, src.classifier.fc7.weight)


def test_weights_of_another_network_are_refused_not_reinitialised_layer_by_layer(tmp_path):
    """Only the last layer may differ (a new number of classes): weights of another width or model are
    an error naming the tensors, not a network quietly left at its random start."""
    from alexnet.models import make_meta, save_weights

    src = build_model("alexnet-cifar", num_classes=2, **CIFAR_KW)
    save_weights(src, tmp_path / "narrow", make_meta("alexnet-cifar", ["cat", "dog"], model_kwargs=CIFAR_KW))
    wider = build_model("alexnet-cifar", num_classes=2, **{**CIFAR_KW, "width": 2 * CIFAR_KW["width"]})
    with pytest.raises(UserError, match=r"tensors before its last layer differ in shape \(features\.conv1\.weight: "
                                        r"weights \[\d+, 3, 3, 3\], model \[\d+, 3, 3, 3\].* — weights made for "
                                        r"alexnet-cifar; give the model"):
        load_pretrained(wider, str(tmp_path / "narrow"), "alexnet-cifar")
    more = build_model("alexnet-cifar", num_classes=5, **CIFAR_KW)  # the head alone differs: a new head
    assert load_pretrained(more, str(tmp_path / "narrow"), "alexnet-cifar").reinitialised == ["classifier.fc8"]


def test_few_images_for_an_imagenet_sized_network_from_scratch_get_a_note_at_the_start(capsys):
    from alexnet.engine.distributed import World
    from alexnet.engine.setup import note_few_images
    from alexnet.models import model_cfg

    note_few_images(make_config("photos"), World(), model_cfg("alexnet-owt"), 300)
    out = capsys.readouterr().out
    assert out.startswith("note: 300 training images are few to train alexnet-owt from scratch")
    assert out.rstrip().endswith(": --weights IMAGENET1K_V1 (recipe finetune)")
    note_few_images(make_config("photos", model="alexnet"), World(), model_cfg("alexnet"), 300)
    assert "--weights IMAGENET1K_V1 --model alexnet-owt (recipe finetune)" in capsys.readouterr().out  # none of its own
    for cfg, model, n in ((make_config("photos"), "alexnet-owt", 10_000),  # enough
                          (make_config("finetune", weights="IMAGENET1K_V1"), "alexnet-owt", 300),  # not from scratch
                          (make_config("cifar10"), "alexnet-cifar", 300)):  # not ImageNet-sized
        note_few_images(cfg, World(), model_cfg(model), n)
        assert capsys.readouterr().out == ""
    note_few_images(make_config("photos"), World(1, 2, 1), model_cfg("alexnet-owt"), 300)  # said by rank 0 alone
    assert capsys.readouterr().out == ""
