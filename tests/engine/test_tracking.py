"""``--log mlflow``: a tiny digits run logged to a local MLflow store, read back with MLflow's own
client (parameters, one metric value per epoch, artifacts), continued by ``--resume`` in the same
MLflow run; and the one line when MLflow is not installed."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.engine.config import TrainConfig, make_config
from alexnet.engine.tracking import MLFLOW_MISSING, RUN_FILE, check_loggers

# MLflow's SQLite store on SQLAlchemy 2.1 warns about its own query options (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")

TINY = ["--model-arg", "width=0.25", "--model-arg", "fc_width=64", "--amp", "off", "-b", "128",
        "--train-subset", "256"]


@pytest.fixture
def offline_mlflow(monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")  # the local SQLite store (the mlflow extra brings it)
    pytest.importorskip("alembic")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    from mlflow.tracking import MlflowClient

    return MlflowClient


def test_mlflow_run_reads_back_and_resume_continues_it(tmp_path, offline_mlflow, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--epochs", "2", "--output-dir", str(out), "--name", "r", "--log", "mlflow", *TINY]) == 0
    run_dir = out / "r"
    saved = json.loads((run_dir / RUN_FILE).read_text())
    assert saved["tracking_uri"] == f"sqlite:///{(out / 'mlflow.db').resolve()}"  # the default store
    assert f"mlflow: run {saved['run_id']}" in capsys.readouterr().out
    client = offline_mlflow(saved["tracking_uri"])
    run = client.get_run(saved["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    config = json.loads((run_dir / "config.json").read_text())
    assert set(run.data.params) == set(config)  # every field of config.json, nothing else
    assert run.data.params["lr"] == str(config["lr"]) and run.data.params["epochs"] == "2"
    assert json.loads(run.data.params["model_kwargs"]) == {"width": 0.25, "fc_width": 64}
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    history = client.get_metric_history(saved["run_id"], "val_top1")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([float(r["val_top1"]) for r in rows], abs=1e-3)
    files = {a.path for a in client.list_artifacts(saved["run_id"])}
    assert {"weights.safetensors", "weights.json", "config.json", "metrics.csv", "figures"} <= files
    assert {a.path for a in client.list_artifacts(saved["run_id"], "figures")} == {"figures/curves.png",
                                                                                  "figures/filters.png"}
    local = client.download_artifacts(saved["run_id"], "weights.safetensors", str(tmp_path / "dl"))
    assert open(local, "rb").read() == (run_dir / "weights.safetensors").read_bytes()

    # --resume with more epochs: the same MLflow run, epoch 3 added, epochs 1-2 not logged twice
    assert main(["train", "--resume", str(run_dir), "--epochs", "3"]) == 0
    assert json.loads((run_dir / RUN_FILE).read_text())["run_id"] == saved["run_id"]
    assert [m.step for m in client.get_metric_history(saved["run_id"], "val_top1")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(saved["run_id"], "train_loss")] == [1, 2, 3]
    assert client.get_run(saved["run_id"]).info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_resume_adds_mlflow_to_a_run_without_it(tmp_path, offline_mlflow, monkeypatch):
    """A run trained without --log mlflow and resumed with it: its earlier epochs are logged from
    metrics.csv, into the store a tracking URI names, its artifacts beside that database (not in
    the current directory, MLflow's own default)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "runs"
    cfg = make_config("digits", epochs=1, batch_size=128, output_dir=str(out), name="r", train_subset=256,
                      model_kwargs={"width": 0.25, "fc_width": 64}, amp="off")
    from alexnet.engine.train import fit

    fit(cfg)
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["train", "--resume", str(out / "r"), "--epochs", "2", "--log", "mlflow", "--mlflow-uri", uri]) == 0
    saved = json.loads((out / "r" / RUN_FILE).read_text())
    assert saved["tracking_uri"] == uri and not (out / "mlflow.db").exists()
    client = offline_mlflow(uri)
    assert [m.step for m in client.get_metric_history(saved["run_id"], "train_loss")] == [1, 2]
    assert (tmp_path / "mlartifacts" / saved["run_id"] / "artifacts" / "weights.safetensors").is_file()
    assert not list(cwd.iterdir())


def test_mlflow_not_installed_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: find_spec and import fail
    with pytest.raises(UserError) as e:
        TrainConfig(log=["mlflow"]).check_values()
    assert str(e.value) == MLFLOW_MISSING and 'pip install "alexnet[mlflow]"' in MLFLOW_MISSING
    assert main(["train", "--epochs", "1", "--output-dir", str(tmp_path), "--log", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {MLFLOW_MISSING}" and not list(tmp_path.iterdir())  # nothing trained
    from alexnet.engine.tracking import import_mlflow

    with pytest.raises(UserError, match="alexnet\\[mlflow\\]"):
        import_mlflow()


def test_log_names_are_checked():
    with pytest.raises(UserError, match="unknown --log 'wandb'"):
        check_loggers(["wandb"])
    check_loggers([])
    assert TrainConfig().log == []
