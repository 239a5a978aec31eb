"""Experiment tracking beyond ``metrics.csv`` and TensorBoard: ``--log mlflow``.

A run logged to MLflow gets its config fields as parameters, one value per epoch for each metric
of ``metrics.csv`` (the MLflow step is the epoch), and, when training ends, the run's files as
artifacts: ``config.json``, ``classes.json``, ``metrics.csv``, ``weights.safetensors`` +
``weights.json`` (and ``bad_samples.txt`` when there is one). ``alexnet train`` adds the run's
figures (training curves, first-layer filters) under ``figures/`` with `log_artifacts`.

Where it goes: ``--mlflow-uri URI``, else ``$MLFLOW_TRACKING_URI``, else a local store beside the
run directories, ``OUTPUT_DIR/mlflow.db`` (SQLite, MLflow 3's default backend: its file store
refuses to open without ``MLFLOW_ALLOW_FILE_STORE``) with the artifacts in
``OUTPUT_DIR/mlartifacts/``, so the runs of one output folder can be compared in one MLflow UI
(``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``). The experiment is
``$MLFLOW_EXPERIMENT_NAME`` or ``alexnet``; created in any local SQLite store, it keeps its
artifacts in ``mlartifacts/`` beside the database, not in the current directory.

The run directory keeps the MLflow run's id in ``mlflow.json``, so ``--resume`` continues the same
MLflow run: the finished epochs it lacks are logged from ``metrics.csv``, those it holds are not
logged again (an epoch cut short by ``--max-steps`` and redone after the resume is: the later value
at the same step is the one MLflow shows), and the parameters it holds keep their first values (an
MLflow parameter cannot change; ``config.json`` among the artifacts is the final one). Only rank 0 logs. A tracking server that
fails during training costs a warning, not the run. MLflow is optional (``pip install
"alexnet[mlflow]"``: mlflow-skinny and SQLAlchemy/Alembic for the local store); this module
imports it only when a run asks for it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.io import atomic_write_json

LOGGERS = ("mlflow",)  # what --log accepts
MLFLOW_MISSING = 'MLflow is not installed: pip install "alexnet[mlflow]" (for --log mlflow)'
RUN_FILE = "mlflow.json"  # in the run directory: the tracking URI, experiment and run id
EXPERIMENT = "alexnet"  # unless $MLFLOW_EXPERIMENT_NAME says otherwise
METRICS = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "time", "img_per_s")
RUN_FILES = ("config.json", "classes.json", "metrics.csv", "weights.safetensors", "weights.json",
             "bad_samples.txt")


def check_loggers(names: list[str]) -> None:
    """``--log`` names: each one known, and MLflow importable when asked for — one line before any
    training (plain Python: finds the package without importing it)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"--log takes names like mlflow, not {names!r}")
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"unknown --log {name!r} (choose from {', '.join(LOGGERS)}; TensorBoard "
                            f"events are written whenever tensorboard is installed)")
    if "mlflow" in names and importlib.util.find_spec("mlflow") is None:
        raise UserError(MLFLOW_MISSING)


def import_mlflow() -> Any:
    """``mlflow``, or the one-line `UserError` saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise UserError(MLFLOW_MISSING) from None
    return mlflow


def default_store(output_dir: Path) -> tuple[str, str]:
    """The local store beside the run directories: (tracking URI, artifact location)."""
    uri = f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"
    return uri, beside_database(uri)


def beside_database(uri: str) -> str:
    """A new experiment's artifact location for a local SQLite ``uri``: ``mlartifacts/`` beside the
    database file (MLflow's own default, ``./mlruns``, follows the current directory); "" otherwise."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return ""
    return (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlartifacts").as_uri()


def param_value(v: Any) -> str:
    """A config value as an MLflow parameter: JSON for lists and dicts, text otherwise."""
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class MlflowTracker:
    """One training run's MLflow run: opened (or re-opened on resume) by `open`, fed each epoch's
    row by `log_epoch`, closed with the run's files by `close`."""

    def __init__(self, client: Any, run_id: str, run_dir: Path, logged_epochs: int):
        self.client, self.run_id, self.run_dir = client, run_id, Path(run_dir)
        self.logged = logged_epochs  # epochs the MLflow run already holds
        self.failed = False

    @classmethod
    def open(cls, config: dict[str, Any], run_dir: Path, uri: str = "") -> "MlflowTracker":
        """Start the MLflow run of ``run_dir``, or continue the one its ``mlflow.json`` names; log
        the parameters it does not hold yet and the epochs of ``metrics.csv`` it lacks."""
        run_dir = Path(run_dir)
        saved = read_run_file(run_dir)
        uri = uri or saved.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            uri, artifacts = default_store(run_dir.parent)
        else:
            artifacts = beside_database(uri)
        import_mlflow()
        import logging

        for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..."
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            run = _existing_run(client, saved.get("run_id", "")) if saved.get("tracking_uri") == uri else None
            if run is None:
                exp_id = _experiment(client, os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT, artifacts)
                run = client.create_run(exp_id, run_name=run_dir.name,
                                        tags={"run_dir": str(run_dir.resolve()), "model": str(config.get("model"))})
            else:
                client.update_run(run.info.run_id, status="RUNNING")
        except ImportError as e:  # the SQLite store needs SQLAlchemy and Alembic (mlflow-skinny lacks them)
            raise UserError(f"{MLFLOW_MISSING}; missing: {e.name or first_line(e)}") from None
        except Exception as e:  # MlflowException, a refused connection, a bad URI: one line
            raise UserError(f"--log mlflow: cannot open the tracking store {uri}: {first_line(e)}") from None
        run_id = run.info.run_id
        atomic_write_json(run_dir / RUN_FILE, {"tracking_uri": uri, "experiment_id": run.info.experiment_id,
                                               "run_id": run_id})
        held = run.data.params
        params = {k: param_value(v)[:6000] for k, v in config.items() if k not in held}
        logged = max((m.step for m in client.get_metric_history(run_id, "train_loss")), default=0)
        tracker = cls(client, run_id, run_dir, logged)
        items = [_param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            tracker.call("log_batch", run_id, params=items[i:i + 100])
        rows = read_rows(run_dir / "metrics.csv")  # a resumed run's finished epochs (after its trim)
        for row in rows:  # those the MLflow run lacks: logged before --log mlflow was given, or lost
            tracker.log_epoch(row)
        tracker.logged = int(rows[-1]["epoch"]) if rows else 0  # an epoch redone from here is logged again
        return tracker

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """One client call; a failure warns once and stops the logging, never the training."""
        if self.failed:
            return
        try:
            getattr(self.client, method)(*args, **kwargs)
        except Exception as e:  # the tracking server went away: the run goes on
            self.failed = True
            print(f"warning: --log mlflow: {method} failed ({first_line(e)}); no more MLflow logging in this run "
                  f"(metrics.csv has everything)", file=sys.stderr)

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One ``metrics.csv`` row, unless the MLflow run already holds its epoch."""
        epoch = int(row["epoch"])
        if epoch <= self.logged:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(row[k]), now, epoch) for k in METRICS
                   if row.get(k) not in (None, "") and float(row[k]) == float(row[k])]  # no NaN (no validation)
        self.call("log_batch", self.run_id, metrics=metrics)
        self.logged = epoch

    def close(self) -> None:
        """The run's files as artifacts, and the MLflow run's end: FINISHED, or KILLED (Ctrl-C, a
        resumable stop) / FAILED when an exception is on its way out."""
        exc = sys.exc_info()[0]
        if exc is None:
            for name in RUN_FILES:
                if (self.run_dir / name).is_file():
                    self.call("log_artifact", self.run_id, str(self.run_dir / name))
        status = "FINISHED" if exc is None else "KILLED" if issubclass(exc, KeyboardInterrupt) else "FAILED"
        self.call("set_terminated", self.run_id, status=status)


def _param(key: str, value: str) -> Any:
    from mlflow.entities import Param

    return Param(key, value)


def _existing_run(client: Any, run_id: str) -> Any:
    """The run ``run_id`` of the store, or None (never written, or deleted since)."""
    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except Exception:  # MlflowException RESOURCE_DOES_NOT_EXIST
        return None
    return run if run.info.lifecycle_stage == "active" else None


def _experiment(client: Any, name: str, artifact_location: str) -> str:
    """The id of experiment ``name``, created (artifacts at ``artifact_location`` when given) if new."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location or None)
    except Exception:  # created meanwhile by a run started at the same moment
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def read_run_file(run_dir: Path) -> dict[str, str]:
    """``mlflow.json`` of a run directory ({} when there is none or it is unreadable)."""
    try:
        d = json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in d.items()} if isinstance(d, dict) else {}


def read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def log_artifacts(run_dir: Path, paths: list[Path], artifact_path: str = "") -> dict[str, str]:
    """Add files to the MLflow run of ``run_dir`` (its ``mlflow.json``), under ``artifact_path``;
    nothing when the run was not logged to MLflow. A failure is a warning: the run is done.
    Returns ``mlflow.json`` ({} without one)."""
    saved = read_run_file(run_dir)
    if not saved.get("run_id") or not paths:
        return saved
    mlflow = import_mlflow()
    tracker = MlflowTracker(mlflow.tracking.MlflowClient(tracking_uri=saved["tracking_uri"]), saved["run_id"],
                            Path(run_dir), 0)
    for p in paths:
        tracker.call("log_artifact", saved["run_id"], str(p), artifact_path or None)
    return saved
