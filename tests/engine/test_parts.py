"""The parts a run is made of, one at a time: the data path chosen in data/pipeline.py, the run
directory's resume errors, and the end-of-run report's bad-file count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alexnet.core.errors import UserError
from alexnet.data import BadSampleLog, TrainingDataConfig, open_training_data
from alexnet.data.pipeline import format_bytes
from alexnet.data.resident import ResidentLoader
from alexnet.engine.distributed import World
from alexnet.engine.report import RunReport
from alexnet.engine.rundir import RunDir
from alexnet.models import model_cfg

MNIST = model_cfg("alexnet-mnist")


def test_the_streaming_loader_is_the_default_path():
    data = open_training_data(TrainingDataConfig(data="digits", val_split=0.2, train_subset=100), MNIST, "cpu")
    assert len(data.train_ds) == 100 and data.val_ds is not None
    data.build_loaders(batch_size=32, bad_log=BadSampleLog())
    assert not isinstance(data.train_loader, ResidentLoader) and len(data.train_loader) == 3
    assert data.train_images is None and data.note == ""
    images, labels, bad = next(iter(data.train_loader))
    assert images.dtype == torch.uint8 and images.shape == (32, *MNIST.input_size) and bad == []


def test_resident_decodes_once_and_says_so():
    cfg = TrainingDataConfig(data="digits", val_split=0.2, train_subset=100, resident=True, aug="auto")
    data = open_training_data(cfg, MNIST, "cpu")
    data.build_loaders(batch_size=32, bad_log=BadSampleLog())
    assert isinstance(data.train_loader, ResidentLoader) and isinstance(data.val_loader, ResidentLoader)
    assert data.train_images.shape == (100, *MNIST.input_size)
    assert data.note.startswith(f"decoded 100 train + {len(data.val_ds)} val images into memory (")
    assert data.note.endswith("augmentation flip-translate (±2 px) on whole batches")
    assert data.sample_images(5000) is data.train_images


def test_no_validation_split_leaves_val_none():
    data = open_training_data(TrainingDataConfig(data="digits", val_split=0, train_subset=50), MNIST, "cpu")
    assert data.val_ds is None
    data.build_loaders(batch_size=16, bad_log=BadSampleLog())
    assert data.val_loader is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_gpu_data_path_without_a_gpu_is_one_line():
    with pytest.raises(UserError, match="--data-device cuda needs a CUDA GPU"):
        open_training_data(TrainingDataConfig(data="digits", val_split=0.2, data_device="cuda"), MNIST, "cpu")


def test_format_bytes():
    assert ([format_bytes(n) for n in (512, 1010, 1500, 1.5e8, 2.5e9)]
            == ["512 bytes", "1.01 kB", "1.5 kB", "150 MB", "2.5 GB"])


def test_resume_without_checkpoints_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"--resume .*: no checkpoints/last.pt there"):
        RunDir(tmp_path, World()).open_last()


def test_bad_files_over_the_limit_warn_loudly(tmp_path, capsys):
    cfg = SimpleNamespace(max_bad_fraction=0.05, report_at=[])
    report = RunReport(cfg, World(), tmp_path, classes=["a", "b"], train_ds=list(range(90)), val_ds=list(range(10)),
                       mirror=False, t_start=0.0)
    ok = report.bad_files(5, torch.device("cpu"))
    assert (ok.count, ok.fraction, ok.too_many) == (5, 0.05, False) and "WARNING" not in capsys.readouterr().out
    bad = report.bad_files(6, torch.device("cpu"))
    assert bad.too_many and "WARNING: 6 of 100 files (6.0 %) could not be read" in capsys.readouterr().out
