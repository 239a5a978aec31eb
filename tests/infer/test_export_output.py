"""`alexnet export -o` mistakes are answered before the weights are even loaded."""

import pytest

from alexnet.core.errors import UserError
from alexnet.infer.export import export_model


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
def test_an_existing_folder_is_refused_first(tmp_path, fmt):
    with pytest.raises(UserError, match="is a folder; give a file name"):
        export_model(tmp_path / "no-such-run", fmt, tmp_path)  # the weights would fail later


def test_a_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        export_model(tmp_path / "no-such-run", "onnx", tmp_path / "f" / "m.onnx")
