"""Per-layer summary — output shape, parameters, multiply-accumulates — from a real forward pass.

Nothing here is a hand-written table: forward hooks on every leaf module record what the network
actually produced, so the numbers stay true when an architecture changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: list[int]  # without the batch dimension
    params: int
    macs: int


@dataclass
class Summary:
    model: str
    input_size: list[int]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        head = ("layer", "type", "output shape", "params", "MACs")
        body = [(r.name, r.kind, "×".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}")
                for r in self.rows]
        foot = ("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}")
        w = [max(len(row[i]) for row in [head, *body, foot]) for i in range(5)]

        def fmt(row):
            return "  ".join(c.ljust(w[i]) if i < 3 else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()

        rule = "  ".join("-" * x for x in w)
        lines = [f"{self.model}  input {'×'.join(map(str, self.input_size))}", fmt(head), rule,
                 *map(fmt, body), rule, fmt(foot),
                 f"trainable parameters: {self.trainable_params:,}   "
                 f"multiply-accumulates: {self.total_macs / 1e9:.3f} G"]
        return "\n".join(lines)


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_sample = out[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


@torch.no_grad()
def summarize(model: nn.Module, input_size: tuple[int, int, int], name: str = "") -> Summary:
    """Run one forward pass on a zero batch of ``input_size`` (C, H, W) and tabulate every leaf layer.
    An input size the network cannot take (too small, another number of channels) is a `UserError`."""
    from ..core.errors import UserError

    label = name or getattr(model, "model_name", type(model).__name__)
    size = tuple(input_size)
    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise UserError(f"input_size is (channels, height, width), three positive whole numbers, not {input_size!r}")
    rows: list[LayerRow] = []
    hooks = []
    for mod_name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue

        def hook(m, _inp, out, mod_name=mod_name):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor):
                return
            rows.append(LayerRow(mod_name, type(m).__name__, list(out.shape[1:]),
                                 sum(p.numel() for p in m.parameters(recurse=False)), _macs(m, out)))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        model(torch.zeros(1, *input_size, device=device))
    except RuntimeError as e:  # too small for a kernel or a pooling window, or other channels than conv1's
        msg = str(e).splitlines()[0]
        if "reduction dim" in msg or "mat1 and mat2" in msg:  # the features reach a linear layer at another size
            msg = ("its first linear layer takes the features of one input size (the convolutions' output "
                   "grows with the image); `alexnet models` lists each network's input")
        raise UserError(f"{label} cannot run on a {'×'.join(map(str, size))} input: {msg}") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(label, list(input_size), rows,
                   total, trainable, sum(r.macs for r in rows))
