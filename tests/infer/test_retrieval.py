"""Feature retrieval: exact search against brute force, index build/resume/query, the commands."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.infer.retrieval import build_index, knn, query_index
from alexnet.viz.neighbours import strip_size


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_matches_brute_force_across_chunks(metric):
    g = torch.Generator().manual_seed(0)
    db = torch.randn(1000, 64, generator=g).half()
    q = torch.randn(7, 64, generator=g)
    d, i = knn(q, db, k=5, metric=metric, chunk=97)  # chunks of odd size: the merge is exercised
    x = db.float()
    if metric == "euclidean":
        ref = torch.cdist(q, x)
    else:
        ref = 1 - torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(x, dim=1).T
    rd, ri = ref.topk(5, dim=1, largest=False)
    assert torch.equal(i, ri)
    assert torch.allclose(d, rd, atol=1e-3)
    assert (d[:, 1:] >= d[:, :-1]).all()


def test_knn_k_larger_than_database():
    d, i = knn(torch.zeros(1, 3), torch.eye(3), k=10)
    assert d.shape == (1, 3) and sorted(i[0].tolist()) == [0, 1, 2]


@pytest.fixture(scope="module")
def folder(image_root, tmp_path_factory):
    data = tmp_path_factory.mktemp("retrieval") / "data"
    shutil.copytree(image_root, data)
    (data / "green" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return data


@pytest.fixture(scope="module")
def index(tiny_run, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "index"
    return build_index(tiny_run, f"folder:{folder}", out, split="train", val_split=0, batch_size=4,
                       workers=0, shard_size=5, progress=False)


def test_build_writes_streamed_shards(index, folder):
    assert len(index) == 18 and index.complete
    assert len(index.meta["shards"]) == 4  # 5 + 5 + 5 + 3
    assert list(index.meta["bad"]) == [str(folder / "green" / "zz_broken.png")]
    assert index.vectors().dtype == torch.float16 and index.vectors().shape == (18, index.dim)
    assert index.classes == ["blue", "green", "red"]  # the dataset's classes (sorted folders)
    for p, label in zip(index.paths, index.labels.tolist()):
        assert f"/{index.classes[label]}/" in p


def test_features_match_predictor(index, predictor):
    want = predictor.features(index.paths[:3])
    assert torch.allclose(index.vectors()[:3].float(), want, rtol=1e-2, atol=1e-2)


def test_query_returns_itself_first_and_matches_brute_force(index, predictor, tmp_path):
    target = index.paths[7]
    res = query_index(index, target, k=4, predictor=predictor, strip=tmp_path / "strip.png")
    q = predictor.features([target])
    # itself, at the distance float16 storage leaves, a small fraction of the vector's length (an
    # absolute bound, 0.01, failed on one CPU at 0.019)
    assert res.neighbours[0].path == target and res.neighbours[0].distance < 1e-3 * float(q.norm())
    ref = torch.cdist(q, index.vectors().float())[0]
    assert [n.index for n in res.neighbours] == ref.topk(4, largest=False).indices.tolist()
    with Image.open(res.strip) as im:
        assert im.size == strip_size(4)
    cos = query_index(index, target, k=3, metric="cosine", predictor=predictor)
    assert cos.neighbours[0].path == target and cos.strip is None


def test_resume_after_interruption(tiny_run, folder, index, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(index.path, out)
    meta = json.loads((out / "index.json").read_text())
    # As if the build had stopped after the second shard was committed.
    for sh in meta["shards"][2:]:
        (out / sh["file"]).unlink()
        (out / sh["items"]).unlink()
    meta.update(shards=meta["shards"][:2], count=10, complete=False,
                position=json.loads((out / "shard-00001.json").read_text())["ids"][-1] + 1)
    (out / "index.json").write_text(json.dumps(meta))
    from alexnet.core.errors import UserError
    from alexnet.infer.retrieval import FeatureIndex, query_index

    with pytest.raises(UserError, match=r"an unfinished index \(10 of 19 images; its build stopped early\): run the "
                                        r"same `alexnet index build … -o "):
        query_index(out, index.paths[0])  # its answers would leave out the images not yet indexed
    assert FeatureIndex(out).unfinished() and index.unfinished() is None
    logs = []
    again = build_index(tiny_run, f"folder:{folder}", out, split="train", val_split=0, batch_size=4,
                        workers=0, shard_size=5, progress=False, log=logs.append)
    assert logs and "resuming" in logs[0]
    assert again.paths == index.paths and again.meta["shards"] == index.meta["shards"]
    # float16 rows; other batch compositions may round the last bit differently
    assert torch.allclose(again.vectors().float(), index.vectors().float(), atol=1e-2, rtol=1e-2)
    with pytest.raises(UserError, match="already there"):
        build_index(tiny_run, f"folder:{folder}", out, split="train", val_split=0, progress=False)


def test_cli_build_and_query(tiny_run, folder, tmp_path, capsys):
    out = tmp_path / "cli-index"
    assert main(["index", "build", str(tiny_run), f"folder:{folder}", "-o", str(out), "--split", "train",
                 "--val-split", "0", "-b", "8", "-j", "0"]) == 1  # built, and a bad file found
    text = capsys.readouterr().out
    assert "indexed 18 images" in text and "1 unreadable" in text
    img = str(folder / "red" / "red2.jpg")
    strip = tmp_path / "n.png"
    assert main(["index", "query", str(out), img, "-k", "3", "-o", str(strip)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "distance", "class", "path"]
    assert lines[1].split()[2] == "red" and lines[1].split()[3] == img
    from PIL import Image

    with Image.open(strip) as im:  # the query and its 3 neighbours side by side
        assert im.format == "PNG" and im.size[0] > 3 * im.size[1] and im.getextrema() != ((0, 0),) * len(im.getbands())
    assert main(["index", "query", str(out), img, "-k", "2", "--json", "--no-strip", "--metric", "cosine"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["neighbours"][0]["path"] == img and d["strip"] is None
    assert main(["index", "query", str(out), img, "-k", "1000", "--no-strip"]) == 0
    assert "note: -k 1000: the index holds 18 images, all of them listed" in capsys.readouterr().err
    assert main(["index", "query", str(out), str(tmp_path / "missing.jpg")]) == 2
    assert main(["index", "query", str(tmp_path), img]) == 2


def test_a_file_gone_since_the_index_was_built_is_no_picture_not_another(tiny_run, folder, tmp_path):
    """A folder's file moved away shifts every later item of the folder rebuilt: the strip and the
    page show nothing for it, never the next file's picture under its name."""
    from pathlib import Path

    from alexnet.infer.retrieval import _neighbour_images
    from alexnet.infer.search import Neighbour
    from alexnet.serve.thumbnails import Thumbnails

    data = tmp_path / "data"
    shutil.copytree(folder, data)
    index = build_index(tiny_run, f"folder:{data}", tmp_path / "idx", split="train", val_split=0, batch_size=4,
                        workers=0, shard_size=5, progress=False)
    gone = next(i for i, p in enumerate(index.paths) if p.endswith("red2.jpg"))
    after = gone + 1  # the entry after it, still there
    Path(index.paths[gone]).rename(tmp_path / "moved.jpg")
    hits = [Neighbour(1, gone, 0.0, index.paths[gone], 0, None), Neighbour(2, after, 0.0, index.paths[after], 0, None)]
    images = _neighbour_images(index, hits)
    assert images[0] is None and images[1] is not None
    thumbs = Thumbnails(index, 10**6)
    assert thumbs.get(gone) is None and thumbs.get(after) is not None


def test_a_strip_shows_at_most_its_share_of_many_neighbours(tiny_run, folder, tmp_path, capsys, monkeypatch):
    import alexnet.infer.retrieval as retrieval
    from alexnet.viz.neighbours import strip_size

    out = tmp_path / "ix"
    main(["index", "build", str(tiny_run), f"folder:{folder}", "-o", str(out), "--split", "train", "--val-split", "0"])
    monkeypatch.setattr(retrieval, "STRIP_MAX", 4)
    strip = tmp_path / "n.png"
    assert main(["index", "query", str(out), str(folder / "red" / "red2.jpg"), "-k", "10", "-o", str(strip)]) == 0
    text = capsys.readouterr().out
    assert len([ln for ln in text.splitlines() if ln.strip()[:1].isdigit()]) == 10  # every neighbour listed
    assert f"wrote {strip} (the nearest 4 of the 10)" in text
    from PIL import Image

    with Image.open(strip) as im:
        assert im.size[0] == strip_size(4)[0]


def test_retrieval_keeps_the_names_of_its_two_halves():
    """The search (ranking) and the index on disk are two modules; `retrieval` and `alexnet.infer`
    still give every public name, as the same objects, and the search knows nothing of files."""
    import ast
    from pathlib import Path

    from alexnet import infer
    from alexnet.infer import feature_index, retrieval, search

    assert retrieval.FeatureIndex is feature_index.FeatureIndex is infer.FeatureIndex
    assert retrieval.build_index is feature_index.build_index is infer.build_index
    assert retrieval.IndexWriter is feature_index.IndexWriter and retrieval.open_writer is feature_index.open_writer
    assert retrieval.knn is search.knn is infer.knn and retrieval.query_index is infer.query_index
    assert retrieval.Neighbour is search.Neighbour and retrieval.METRICS == search.METRICS == ("euclidean", "cosine")
    imported = {n.module for n in ast.walk(ast.parse(Path(search.__file__).read_text()))
                if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"feature_index", "retrieval", "predictor"}, imported


@pytest.mark.parametrize("kw", [{"shard_size": 0}, {"shard_size": -3}, {"batch_size": 0}])
def test_build_index_refuses_sizes_that_would_never_fill_a_shard(tiny_run, folder, tmp_path, kw):
    from alexnet.core.errors import UserError
    from alexnet.infer.retrieval import build_index

    with pytest.raises(UserError, match="must be a whole number of at least 1"):
        build_index(tiny_run, f"folder:{folder}", tmp_path / "ix", progress=False, **kw)


def test_an_index_refuses_other_weights_of_the_same_model(tiny_run, index, folder, tmp_path, capsys):
    """The same architecture with other weights (another run, a fine-tune) gives features in another
    space: querying or serving the index with them is refused in one line; the index's own weights,
    or a copy of them, are fine."""
    from alexnet.core.errors import UserError
    from alexnet.infer import Predictor
    from alexnet.models import load_weights, save_weights
    from alexnet.serve.app import create_app

    model, meta = load_weights(tiny_run)
    copy, other = tmp_path / "copy", tmp_path / "other"
    save_weights(model, copy, meta)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # one layer changed a little: other weights
    save_weights(model, other, meta)
    img = str(folder / "red" / "red2.jpg")
    assert main(["index", "query", str(index.path), img, "--no-strip", "--weights", str(copy)]) == 0
    capsys.readouterr()
    assert main(["index", "query", str(index.path), img, "--no-strip", "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert "the index was built with other alexnet-cifar weights" in err and err.count("\n") == 1
    assert "(leave --weights out)" in err
    with pytest.raises(UserError, match="built with other alexnet-cifar weights") as e:  # serve --index, likewise
        create_app(Predictor(other, device="cpu"), index)
    assert f"(serve {index.meta['weights']})" in str(e.value) and "--weights" not in str(e.value)  # serve has none
