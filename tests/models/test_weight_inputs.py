"""Files people give where weights are expected: each gets one line that says what it is and what
to give instead (never a message about some other file, never a dump of layer names)."""

import pytest
import torch

from alexnet.core.errors import UserError
from alexnet.models.pretrained import _torchvision_weight, read_pretrained
from alexnet.models.weights import looks_like_torch_file, resolve_weights


def test_a_text_file_is_not_weights(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(UserError) as e:
        resolve_weights(notes)
    msg = str(e.value)
    assert "notes.txt" in msg and "notes.json" not in msg and "run directory" in msg


def test_random_bytes_named_pt_are_not_called_a_checkpoint(tmp_path):
    junk = tmp_path / "model.pt"
    junk.write_bytes(bytes(range(7, 200)))
    assert not looks_like_torch_file(junk)
    with pytest.raises(UserError, match="not a PyTorch file"):
        resolve_weights(junk)
    real = tmp_path / "real.pt"
    torch.save({"w": torch.zeros(2)}, real)
    assert looks_like_torch_file(real)
    with pytest.raises(UserError, match="is a PyTorch checkpoint"):
        resolve_weights(real)


def test_weights_from_a_runs_training_checkpoint_names_the_run(tmp_path):
    run = tmp_path / "run1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    torch.save({"model": {"conv1.weight": torch.zeros(1)}, "epoch": 1}, run / "checkpoints" / "last.pt")
    with pytest.raises(UserError) as e:
        read_pretrained(str(run / "checkpoints" / "last.pt"), "alexnet-owt")
    msg = str(e.value)
    assert f"--weights {run}" in msg and "--resume" in msg and "conv1" not in msg


def test_weight_names_listed_once():
    with pytest.raises(UserError) as e:
        _torchvision_weight("NOPE", "alexnet-owt")
    assert str(e.value).count("DEFAULT") == 1


def test_save_weights_refuses_a_meta_no_command_could_read(tmp_path):
    import pytest
    import torch.nn as nn

    from alexnet.core.errors import UserError
    from alexnet.models import save_weights

    with pytest.raises(UserError, match=r"meta lacks 'classes'; build it with make_meta"):
        save_weights(nn.Linear(2, 2), tmp_path, {"model": "alexnet", "num_classes": 2})
    assert list(tmp_path.iterdir()) == []


def test_weights_whose_json_names_another_shape_say_which_tensors_differ(tmp_path):
    """weights.json that names another network than the tensors hold (files of two runs mixed):
    one line naming the tensors that differ, with both shapes, not torch's message cut at its colon."""
    import json

    import pytest

    from alexnet.core.errors import UserError
    from alexnet.models import build_model, load_weights
    from alexnet.models.weights import make_meta, save_weights

    save_weights(build_model("alexnet-cifar", num_classes=3, width=0.125, fc_width=32), tmp_path,
                 make_meta("alexnet-cifar", ["a", "b", "c"], model_kwargs={"width": 0.125, "fc_width": 32}))
    meta = json.loads((tmp_path / "weights.json").read_text())
    meta["model_kwargs"]["fc_width"] = 64  # another run's
    (tmp_path / "weights.json").write_text(json.dumps(meta))
    with pytest.raises(UserError) as e:
        load_weights(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "classifier.fc6.weight: weights [4, 512], model [8, 512]" in msg, msg
