"""A finished run's figures, drawn from its directory: what ``alexnet train --log mlflow`` adds to
the MLflow run (``alexnet visualise curves`` and ``filters`` draw the same one at a time)."""

from __future__ import annotations

from pathlib import Path


def run_figures(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``curves.png`` (loss, accuracy and rate per epoch, from ``metrics.csv``) and
    ``filters.png`` (the first layer's kernels, the paper's Figure 3, §6.1, from
    ``weights.safetensors``) into ``out_dir`` (default ``RUN_DIR/figures``); the paths written,
    leaving out a figure whose file the run does not have yet."""
    from ..models import load_weights
    from ..viz import plot_curves, plot_filters

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "figures"
    paths = []
    if (run_dir / "metrics.csv").is_file():
        paths.append(plot_curves([run_dir], out / "curves.png"))
    if (run_dir / "weights.safetensors").is_file():
        model, meta = load_weights(run_dir)
        paths.append(plot_filters(model, out / "filters.png", title=f"{meta['model']}: first-layer kernels"))
    return paths


def log_run_figures(run_dir: Path) -> None:
    """After a run logged to MLflow: its figures (curves, first-layer filters) as artifacts, and the
    line that says where to see them."""
    from ..engine.tracking import log_artifacts

    saved = log_artifacts(run_dir, run_figures(run_dir), "figures")
    if saved:
        uri = saved["tracking_uri"]
        ui = f" (see it with: mlflow ui --backend-store-uri {uri})" if uri.startswith(("sqlite:", "file:")) else ""
        print(f"mlflow: run {saved['run_id']} in {uri}{ui}")
