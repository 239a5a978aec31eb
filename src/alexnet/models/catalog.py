"""The model table (README and ``alexnet models``), generated from the registry.

Parameters and MACs come from `summarize` (a hooked forward pass) on a network built on PyTorch's
``meta`` device: tensors have shapes but no storage and no arithmetic is done, so the numbers equal a
real pass's without allocating VGG-16's 0.5 GB. Even so, building nine networks and importing
torchvision costs seconds, so the numbers of the registered models are kept in ``catalog.json``;
a test recomputes every entry (and checks meta against a real pass), and a model registered later
(a plug-in) is computed on the fly. Regenerate the file with ``python -m alexnet.models.catalog``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from .registry import build_model, list_models, model_cfg
from .summary import Summary, summarize

CACHE = "catalog.json"


def meta_summary(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> Summary:
    """`summarize` of model ``name`` built on the meta device (no weights allocated)."""
    cfg = model_cfg(name)
    with torch.device("meta"):
        model = build_model(name, **kwargs)
    return summarize(model, input_size or cfg.input_size, name)


def _key(name: str) -> str:
    cfg = model_cfg(name)
    return f"{name} {'x'.join(map(str, cfg.input_size))} {cfg.num_classes}"


def _cached() -> dict[str, dict[str, int]]:
    try:
        return json.loads(resources.files(__package__).joinpath(CACHE).read_text())
    except (OSError, ValueError):
        return {}


def computed_numbers(name: str) -> dict[str, int]:
    s = meta_summary(name)
    return {"params": s.total_params, "macs": s.total_macs}


def model_rows(use_cache: bool = True) -> list[dict]:
    cache = _cached() if use_cache else {}
    rows = []
    for name in list_models():
        cfg = model_cfg(name)
        nums = cache.get(_key(name)) or computed_numbers(name)
        rows.append({"model": name, "params": nums["params"], "macs": nums["macs"],
                     "input": "×".join(map(str, cfg.input_size)), "year": cfg.year, "result": cfg.result})
    return rows


def write_cache(path: str | Path | None = None) -> Path:
    """Recompute every registered model's numbers into ``catalog.json`` (next to this file)."""
    path = Path(path) if path else Path(__file__).with_name(CACHE)
    data = {_key(n): computed_numbers(n) for n in list_models()}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def model_table(markdown: bool = False) -> str:
    rows = model_rows()
    head = ["model", "params", "MACs", "input", "year", "ImageNet result"]
    body = [[r["model"], f"{r['params'] / 1e6:.2f} M" if not markdown else f"{r['params']:,}",
             f"{r['macs'] / 1e9:.3f} G", r["input"], str(r["year"]), r["result"]] for r in rows]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(out)
    w = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip() for row in [head, *body])


if __name__ == "__main__":
    print(f"wrote {write_cache()}")
