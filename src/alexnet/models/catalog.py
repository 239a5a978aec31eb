"""The model table (README and ``alexnet models``), generated from the registry.

Every network is built on PyTorch's ``meta`` device: parameters and activations have shapes but no
storage and no arithmetic is done, so the forward pass that `summarize` hooks gives the same
parameter counts, output shapes and MACs as a real one in a fraction of the time (VGG-16 alone
allocates 0.5 GB and initialises 138 M weights otherwise). tests/models check the two agree.
"""

from __future__ import annotations

import torch

from .registry import build_model, list_models, model_cfg
from .summary import Summary, summarize


def meta_summary(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> Summary:
    """`summarize` of model ``name`` built on the meta device (no weights allocated)."""
    cfg = model_cfg(name)
    with torch.device("meta"):
        model = build_model(name, **kwargs)
    return summarize(model, input_size or cfg.input_size, name)


def model_rows() -> list[dict]:
    rows = []
    for name in list_models():
        cfg = model_cfg(name)
        s = meta_summary(name)
        rows.append({"model": name, "params": s.total_params, "macs": s.total_macs,
                     "input": "×".join(map(str, cfg.input_size)), "year": cfg.year, "result": cfg.result})
    return rows


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
