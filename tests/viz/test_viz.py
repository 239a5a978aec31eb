"""Visualisations: each writes a valid PNG of the expected size, and shows the right thing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.models import build_model, make_meta, save_weights


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("alexnet", num_classes=3, width=0.25, fc_width=32)
    run = tmp_path_factory.mktemp("paper")
    save_weights(model, run, make_meta("alexnet", ["a", "b", "c"], model_kwargs={"width": 0.25, "fc_width": 32}))
    return run


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("alexnet-cifar", num_classes=3, width=0.125)
    run = tmp_path_factory.mktemp("cifar")
    save_weights(model, run, make_meta("alexnet-cifar", ["a", "b", "c"], model_kwargs={"width": 0.125}))
    return run


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 60×80 image: left half dark, right half bright (one vertical edge), a red square."""
    a = np.full((60, 80, 3), 30, np.uint8)
    a[:, 40:] = 220
    a[10:20, 10:20] = (255, 0, 0)
    p = tmp_path_factory.mktemp("img") / "edge.png"
    Image.fromarray(a).save(p)
    return p


# ----------------------------------------------------------------------------- filters

def test_paper_filters_are_split_by_tower(paper_run, tmp_path):
    from alexnet.models import load_weights
    from alexnet.viz.learned_filters import first_layer_kernels, filters_size, plot_filters

    model, _ = load_weights(paper_run)
    panels = first_layer_kernels(model)
    w = model.features.conv1.weight
    assert [name for name, _ in panels] == ["tower 1 (GPU 1)", "tower 2 (GPU 2)"]
    assert torch.equal(panels[0][1], w[: w.shape[0] // 2]) and torch.equal(panels[1][1], w[w.shape[0] // 2:])
    out = plot_filters(model, tmp_path / "f.png")
    assert png_size(out) == filters_size(panels)


def test_two_tower_module_gives_the_same_panels(tmp_path):
    from alexnet.viz.learned_filters import first_layer_kernels

    torch.manual_seed(0)
    towers = build_model("alexnet", num_classes=3, width=0.25, fc_width=32, towers=2)
    grouped = build_model("alexnet", num_classes=3, width=0.25, fc_width=32)
    towers.load_grouped(grouped.state_dict())
    a, b = first_layer_kernels(towers), first_layer_kernels(grouped)
    assert [n for n, _ in a] == [n for n, _ in b]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b))


def test_colourfulness_separates_grey_from_colour_kernels():
    from alexnet.viz.learned_filters import colourfulness

    g = torch.Generator().manual_seed(0)
    grey = torch.randn(8, 1, 5, 5, generator=g).expand(8, 3, 5, 5)
    colour = torch.randn(8, 3, 5, 5, generator=g)
    assert colourfulness(grey) == pytest.approx(0, abs=1e-6)
    assert colourfulness(colour) > 0.5
    assert math.isnan(colourfulness(torch.randn(4, 1, 3, 3)))  # not RGB kernels: no colour to measure


def test_cli_filters_single_panel(cifar_run, tmp_path, capsys):
    from alexnet.viz.learned_filters import COLS, filters_size

    out = tmp_path / "filters.png"
    assert main(["visualize", "filters", str(cifar_run), "-o", str(out)]) == 0
    assert f"({COLS * 50}×" in capsys.readouterr().out
    conv1 = torch.zeros(8, 3, 3, 3)  # alexnet-cifar at width 0.125 has 8 first-layer kernels
    assert png_size(out) == filters_size([("first convolution", conv1)])


# ----------------------------------------------------------------------------- curves

def _metrics(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,step,train_loss,val_loss,val_top1,val_top5,lr,time"]
    lines += [",".join("" if v is None else str(v) for v in r) for r in rows]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_curves_overlay_runs_with_empty_cells(tmp_path):
    from alexnet.viz.curves import HEIGHT, WIDTH, plot_curves, read_metrics

    _metrics(tmp_path / "a", [(1, 10, 2.3, 2.2, 20.0, 60.0, 0.01, 3.1), (2, 20, 1.9, None, None, None, 0.01, 6.0),
                              (3, 30, 1.5, 1.6, 45.5, 88.0, 0.001, 9.2)])
    _metrics(tmp_path / "b", [(1, 5, 2.0, 1.9, 30.0, 70.0, 0.1, 1.0)])
    cols = read_metrics(tmp_path / "a")
    assert cols["val_top1"][0] == 20.0 and np.isnan(cols["val_top1"][1])
    out = plot_curves([tmp_path / "a", tmp_path / "b" / "metrics.csv"], tmp_path / "c.png")
    assert png_size(out) == (WIDTH, HEIGHT)


def test_curves_epoch_ticks_are_whole_numbers(tmp_path, monkeypatch):
    from alexnet.viz.curves import plot_curves

    _metrics(tmp_path / "a", [(1, 10, 2.0, 1.9, 40, 80, 0.1, 1), (2, 20, 1.5, 1.6, 50, 85, 0.01, 1)])
    figs = _capture(monkeypatch, "alexnet.viz.curves")
    plot_curves([tmp_path / "a"], tmp_path / "c.png")
    for ax in figs[0].axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)


def test_curves_errors(tmp_path, capsys):
    from alexnet.viz.curves import read_metrics

    with pytest.raises(UserError, match="no such file"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="epoch"):
        read_metrics(tmp_path)
    assert main(["visualize", "curves", str(tmp_path / "nope"), "-o", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_curves(tmp_path, capsys):
    _metrics(tmp_path / "run", [(1, 10, 2.3, 2.2, 20.0, 60.0, 0.01, 3.1), (2, 20, 1.9, 1.8, 30.0, 70.0, 0.01, 6.0)])
    out = tmp_path / "curves.png"
    assert main(["visualize", "curves", str(tmp_path / "run"), "-o", str(out), "--labels", "mine"]) == 0
    assert png_size(out) == (1500, 500)


# ----------------------------------------------------------------------------- activations

def test_activations_one_row_per_conv_layer(cifar_run, photo, tmp_path, capsys):
    from alexnet.infer import Predictor
    from alexnet.viz.activations import activations_size, conv_activations

    p = Predictor(cifar_run, device="cpu")
    crop = p.preprocess(photo)
    acts = conv_activations(p.model, p.normalize(crop[None]))
    assert [n for n, _ in acts] == [f"features.conv{i}" for i in range(1, 6)]
    assert [tuple(a.shape) for _, a in acts] == [(8, 32, 32), (24, 16, 16), (48, 8, 8), (32, 8, 8), (32, 8, 8)]
    assert all((a >= 0).all() for _, a in acts)  # after ReLU
    out = tmp_path / "act.png"
    assert main(["visualize", "activations", str(cifar_run), str(photo), "-o", str(out), "--maps", "6"]) == 0
    assert png_size(out) == activations_size(5, 6)


def test_activations_sample_deep_nets():
    from alexnet.viz.activations import MAX_LAYERS, conv_layers

    layers = conv_layers(build_model("resnet18", num_classes=2))
    assert len(layers) == MAX_LAYERS and layers[0][0] == "conv1"


def test_activations_show_every_layer_of_both_towers_in_forward_order():
    from alexnet.viz.activations import conv_layers

    names = [n for n, _ in conv_layers(build_model("alexnet", num_classes=2, towers=2, width=0.125, fc_width=8))]
    assert names == [f"tower{t}.conv{k}" for k in range(1, 6) for t in (1, 2)]


# ----------------------------------------------------------------------------- kernels

def test_classic_kernels_do_what_they_say(photo):
    from alexnet.data import decode_image
    from alexnet.viz.classic_kernels import apply_kernels

    res = {name: out for name, _, out in apply_kernels(decode_image(str(photo)))}
    sx, sy = res["Sobel x"][0].float(), res["Sobel y"][0].float()
    # The vertical edge at x=40: Sobel x fires there, Sobel y (horizontal edges) does not.
    assert (sx[30:55, 39:41] == 255).all() and sx[30:55, 42:80].max() == 0 and sx[30:55, 22:38].max() == 0
    assert sy[30:55, 39:41].max() == 0
    blur = res["box blur"].float()
    assert blur.shape == (3, 60, 80) and torch.allclose(blur[:, 30:55, 50:70], torch.tensor(220.0))


def test_edge_panels_are_visible_with_a_stated_scale():
    """A textured image with one bright speck: scaled by its largest response, every edge panel was
    nearly black; scaled by the 99th percentile of |response| (stated on the panel) it is not."""
    from alexnet.viz.classic_kernels import KERNELS, kernel_panels

    rng = np.random.default_rng(0)
    a = (128 + rng.normal(0, 8, (64, 64, 3))).clip(0, 255).astype(np.uint8)
    a[30, 30] = 255  # one outlier edge that dominates the maximum
    panels = kernel_panels(torch.from_numpy(a).permute(2, 0, 1).contiguous())
    edges = [p for p in panels if abs(sum(map(sum, KERNELS[p.name]))) < 1e-6]
    assert len(edges) == 4  # two edge detectors, Sobel x and y
    for p in edges:
        px = p.image.float().flatten()
        assert px.quantile(0.99) >= 200 and px.mean() >= 40, (p.name, px.quantile(0.99), px.mean())
        assert p.white is not None and p.white > 0 and f"{p.white:.0f}" in p.label
    assert all(p.white is None and p.label == p.name for p in panels if p not in edges)


def test_cli_kernels_and_bad_image(photo, tmp_path, capsys):
    from alexnet.viz.classic_kernels import kernels_size

    out = tmp_path / "k.png"
    assert main(["visualize", "kernels", str(photo), "-o", str(out)]) == 0
    assert png_size(out) == kernels_size()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    assert main(["visualize", "kernels", str(bad), "-o", str(out)]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["visualize", "kernels", str(tmp_path), "-o", str(out)]) == 2  # a folder: not "unreadable"
    assert f"{tmp_path} is a folder: give one image file" in capsys.readouterr().err
    from PIL import Image

    for size in ((1, 1), (1, 50), (50, 1)):  # nothing to reflect: the edge is repeated
        thin = tmp_path / f"thin{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (200, 30, 30)).save(thin)
        assert main(["visualize", "kernels", str(thin), "-o", str(out)]) == 0


# -- figures sized from their content; every text inside the figure ----------------------------

def _capture(monkeypatch, module):
    """Keep the matplotlib Figure a plot function saves, to measure its text."""
    import importlib

    mod = importlib.import_module(module)
    figs = []
    real = mod.save_png

    def keep(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(mod, "save_png", keep)
    return figs


def _text_outside(fig) -> list[str]:
    """What the renderer draws outside the figure: texts (titles, legends, labels) whose bounding
    box leaves it, and the figure's tight bounding box of everything drawn (1 px tolerance)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    W, H = fig.bbox.width, fig.bbox.height
    bad = []
    tick_labels = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                   for t in axis.get_ticklabels(which="both")}
    for t in fig.findobj(Text):  # tick labels are checked through the tight box (off-view ones are not drawn)
        if id(t) in tick_labels or not t.get_visible() or not t.get_text().strip():
            continue
        bb = t.get_window_extent(renderer)
        if bb.x0 < -1 or bb.y0 < -1 or bb.x1 > W + 1 or bb.y1 > H + 1:
            bad.append(f"{t.get_text()!r} at {bb}")
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    if tight.x0 < -1 or tight.y0 < -1 or tight.x1 > W + 1 or tight.y1 > H + 1:
        bad.append(f"everything drawn: {tight} in {W}x{H}")
    return bad


def _cm(K: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, K, (n,), generator=g)
    p = torch.where(torch.rand(n, generator=g) < 0.7, t, torch.randint(0, K, (n,), generator=g))
    cm = torch.zeros(K, K, dtype=torch.long)
    cm.index_put_((t, p), torch.ones(n, dtype=torch.long), accumulate=True)
    return cm


@pytest.mark.parametrize("K, names", [(2, ["cat", "dog"]), (10, [f"class {i}" for i in range(10)]),
                                      (12, [f"a rather long class name {i}" for i in range(12)]),
                                      (1000, [f"n{i:08d} great white shark" for i in range(1000)])])
def test_confusion_titles_and_labels_fit(tmp_path, monkeypatch, K, names):
    from alexnet.viz.confusion import plot_confusion

    figs = _capture(monkeypatch, "alexnet.viz.confusion")
    out = plot_confusion(_cm(K, 40 * K if K < 1000 else 20000), names, tmp_path / "c.png")
    fig = figs[0]
    assert _text_outside(fig) == []
    assert png_size(out) == (int(fig.bbox.width), int(fig.bbox.height))
    if K == 2:  # small: no large empty margins
        assert png_size(out)[0] < 600 and png_size(out)[1] < 400


def test_confusion_counts_are_readable_and_the_mistake_axis_counts(tmp_path, monkeypatch):
    from matplotlib.text import Text

    from alexnet.viz.confusion import plot_confusion

    figs = _capture(monkeypatch, "alexnet.viz.confusion")
    plot_confusion(_cm(10, 400), [str(i) for i in range(10)], tmp_path / "c.png")
    counts = [t for t in figs[0].axes[0].findobj(Text) if t.get_text().isdigit() and t.get_position()[0] >= 0
              and t in figs[0].axes[0].texts]
    assert counts and min(t.get_fontsize() for t in counts) >= 9
    # 1000 classes where every confused pair happened once: the count axis shows whole counts
    cm = torch.eye(1000, dtype=torch.long) * 5
    for i in range(30):
        cm[i, i + 1] = 1
    plot_confusion(cm, [f"c{i}" for i in range(1000)], tmp_path / "d.png")
    bars = figs[1].axes[-1]
    ticks = [t for t in bars.get_xticks() if bars.get_xlim()[0] <= t <= bars.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks) and max(ticks) >= 1


def test_curves_short_legends_log_loss_and_visible_single_epoch(tmp_path, monkeypatch):
    from alexnet.viz.curves import plot_curves, short_labels

    assert short_labels(["alexnet-mnist-digits-20261123-101010", "alexnet-mnist-digits-20261123-111111"]) == (
        ["101010", "111111"], "alexnet-mnist-digits-20261123-…")
    assert short_labels(["lr0.01-run", "lr0.1-run"]) == (["lr0.01", "lr0.1"], "…-run")
    head = "epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5,lr\n"
    good = "".join(f"{e},{10 * e},{2 * 0.7 ** e},{50 + e},{2 * 0.7 ** e},{55 + e},{90 + e},0.01\n" for e in range(1, 9))
    bad = "".join(f"{e},{10 * e},{2 * 5 ** e},10,{2 * 5 ** e},10,50,0.1\n" for e in range(1, 9))
    for name, rows in (("alexnet-mnist-digits-20261123-101010", good), ("alexnet-mnist-digits-20261123-111111", bad),
                       ("alexnet-mnist-digits-20261123-121212", "1,10,1.5,60,1.2,65,95,0.01\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text(head + rows)
    figs = _capture(monkeypatch, "alexnet.viz.curves")
    plot_curves(sorted(tmp_path.glob("alexnet-*")), tmp_path / "c.png")
    fig = figs[0]
    assert _text_outside(fig) == []
    ax_loss, ax_acc, ax_lr = fig.axes
    assert ax_loss.get_yscale() == "log"  # the diverging run does not flatten the others
    legend_texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert sorted(legend_texts) == sorted(["train", "val", "val top-1", "val top-5", "train top-1",
                                           "101010", "111111", "121212"])
    styles = {t.get_text(): h.get_linestyle() for t, h in zip(ax_loss.get_legend().get_texts(),
                                                               ax_loss.get_legend().legend_handles)}
    assert styles == {"train": "-", "val": "--"}
    single = [ln for ln in ax_loss.lines if len(ln.get_xdata()) == 1]
    assert single and all(ln.get_markersize() >= 5 for ln in single)
    assert {ln.get_marker() for ln in single} == {"o", "s"}  # train and val told apart by their markers too
    markers = {t.get_text(): h.get_marker() for t, h in zip(ax_loss.get_legend().get_texts(),
                                                             ax_loss.get_legend().legend_handles)}
    assert markers == {"train": "o", "val": "s"}
    plot_curves([tmp_path / "alexnet-mnist-digits-20261123-121212"], tmp_path / "one.png")  # one epoch, one run
    one = figs[-1].axes[0]
    assert one.get_yscale() == "linear" and one.get_xlim() == (0.0, 2.0)  # 1.2 to 1.5: no 10⁰ labels; epochs 0-2
    (tmp_path / "three-classes").mkdir()  # top-5 of three classes is always 100 %: not drawn as a line
    (tmp_path / "three-classes" / "metrics.csv").write_text(head + "1,10,1.5,60,1.2,65,100,0.01\n2,20,1.2,70,1.0,75,100,0.01\n")
    plot_curves([tmp_path / "three-classes"], tmp_path / "d.png")
    legend = [t.get_text() for t in figs[-1].axes[1].get_legend().get_texts()]
    assert legend == ["val top-1", "train top-1"] and len(figs[-1].axes[1].lines) == 2

def test_the_gates_of_squeeze_and_excitation_are_not_rows():
    """SENet's se_module.fc1/fc2 act on 1×1 pooled maps: sampled rows would be flat squares."""
    import torch

    from alexnet.models import build_model
    from alexnet.viz.activations import conv_layers

    with torch.device("meta"):
        names = [n for n, _ in conv_layers(build_model("se_resnet50"), max_layers=100)]
    assert len(names) == 53 and not any("se_module" in n for n in names)  # ResNet-50's own 53 convolutions
