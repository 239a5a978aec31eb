"""``hubconf.py``: torch.hub builds every registered model from a copy of the repository, without
the package installed (a fresh interpreter, ``PYTHONPATH`` cleared, started outside the checkout),
both as ``source="local"`` and through hub's own cache of a GitHub repository (offline: the cache
is filled by hand, as hub's download would)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet.models import list_models

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys, torch
clone, hub_dir, pth = sys.argv[1:4]
torch.hub.set_dir(hub_dir)
out = {}
net = torch.hub.load(clone, "alexnet", source="local")
out["alexnet_params"] = sum(p.numel() for p in net.parameters())
import alexnet
out["imported_from"] = alexnet.__file__
gh = dict(trust_repo=True, skip_validation=True, verbose=False)  # from hub's cache: no network
out["list"] = torch.hub.list("OWNER/alexnet:main", **gh)
out["help"] = torch.hub.help("OWNER/alexnet:main", "alexnet_owt", trust_repo=True, skip_validation=True)
small = torch.hub.load("OWNER/alexnet:main", "alexnet_mnist", num_classes=7, width=0.25, **gh)
out["small_outputs"] = small(torch.zeros(1, 1, 28, 28)).shape[1]
torch.save(small.state_dict(), pth)
again = torch.hub.load(clone, "alexnet_mnist", source="local", num_classes=7, width=0.25, weights=pth)
out["weights_loaded"] = all(torch.equal(a, b) for a, b in zip(small.state_dict().values(),
                                                               again.state_dict().values()))
for kw in ({"pretrained": True}, {"weights": "DEFAULT"}):
    try:
        torch.hub.load(clone, "alexnet_owt", source="local", **kw)
        out.setdefault("offline", []).append(["loaded", ""])
    except Exception as e:
        out.setdefault("offline", []).append([type(e).__name__, str(e)])
try:
    torch.hub.load(clone, "alexnet", source="local", pretrained=True)
except Exception as e:
    out["no_weights"] = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


def tracked_copy(dest: Path) -> Path:
    """The files a clone of this checkout holds (what git tracks, as in the working tree)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no clone to make")
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_torch_hub_builds_every_model_from_a_clone(tmp_path):
    clone = tracked_copy(tmp_path / "clone")
    assert (clone / "hubconf.py").is_file(), "hubconf.py is tracked by git"
    hub = tmp_path / "hub"
    shutil.copytree(clone, hub / "OWNER_alexnet_main")  # where hub keeps a downloaded GitHub repository
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TORCH_HOME", "NO_PROXY", "no_proxy")}
    proxy = "http://127.0.0.1:9"  # nothing listens there: a download fails at once, as offline
    env.update(PYTHONPATH="", HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy,
               OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(clone), str(hub), str(tmp_path / "small.pth")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["alexnet_params"] == 60_965_224  # the paper's network at 1,000 classes (§3)
    assert Path(out["imported_from"]).is_relative_to(clone), "the clone's own src/, not an installed alexnet"
    assert sorted(out["list"]) == sorted(m.replace("-", "_") for m in list_models())
    assert {"alexnet", "alexnet_owt", "alexnet_cifar_fast", "resnet18"} <= set(out["list"])
    assert "alexnet-owt" in out["help"] and "weights:" in out["help"]
    assert out["small_outputs"] == 7 and out["weights_loaded"]
    for kind, msg in out["offline"]:  # torchvision's weights offline: the project's one line
        assert kind == "UserError", msg
        assert "weights='AlexNet_Weights.IMAGENET1K_V1': cannot download" in msg and "\n" not in msg
        assert "--weights" not in msg and "weights='/path/alexnet-owt-7be5be79.pth'" in msg  # Python's words
    assert out["no_weights"][0] == "UserError" and "has no torchvision weights" in out["no_weights"][1]
    assert "models with them: alexnet_owt, vgg16" in out["no_weights"][1]  # the entry points' names


def test_a_run_of_ours_brings_its_classes_and_model_arguments(tmp_path):
    """``weights=RUN`` gives the run's network, its trained head included, as ``train --weights RUN``
    does: not a fresh 10-class head on a network of the default width."""
    import importlib.util

    import torch

    from alexnet.models import build_model, make_meta, save_weights

    spec = importlib.util.spec_from_file_location("hubconf_under_test", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    trained = build_model("alexnet-cifar", num_classes=3, width=0.125)
    save_weights(trained, tmp_path / "run", make_meta("alexnet-cifar", ["a", "b", "c"], model_kwargs={"width": 0.125}))
    net = hub.alexnet_cifar(weights=str(tmp_path / "run"))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), trained.state_dict().values()))
    assert hub.alexnet_cifar(weights=str(tmp_path / "run"), num_classes=5).state_dict().keys() == net.state_dict().keys()


def test_a_hub_argument_of_the_wrong_kind_is_one_line_in_pythons_words():
    import importlib.util

    from alexnet.core.errors import UserError

    spec = importlib.util.spec_from_file_location("hubconf_under_test", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    with pytest.raises(UserError, match=r"^alexnet_cifar: pretrained is True or False, not 'yes'$"):
        hub.alexnet_cifar(pretrained="yes")  # was taken as True
    with pytest.raises(UserError, match=r"^alexnet_cifar: weights is a torchvision weights name .*, not 123$"):
        hub.alexnet_cifar(weights=123)  # was "--weights int.123: …"
    with pytest.raises(UserError, match=r"^weights='DEFAULT': model alexnet_cifar has no torchvision weights"):
        hub.alexnet_cifar(pretrained=1)  # 1 is True
    assert hub._in_hub_words("--weights alexnet-owt: no such file", "alexnet-owt") == (
        "weights='alexnet-owt': no such file")  # the caller's own path, though spelt like a model, stays as typed
    assert hub._in_hub_words("--weights w.pth are for --model alexnet-owt, not vgg16", "w.pth") == (
        "weights='w.pth' are for alexnet_owt, not vgg16")
