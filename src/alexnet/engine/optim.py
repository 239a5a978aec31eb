"""The paper's exact SGD update (§5), as a torch optimiser.

§5: v_{i+1} = 0.9·v_i − 0.0005·ε·w_i − ε·⟨∂L/∂w⟩_i,  w_{i+1} = w_i + v_{i+1}.

PyTorch's SGD keeps the learning rate *outside* the momentum buffer: b ← μ·b + (g + λ·w),
w ← w − ε·b. While ε is constant the two are the same update (v = −ε·b). They differ when ε
changes: at a drop ε → ε/10 PyTorch scales the whole buffer, the velocity built up at the old rate
included, by 1/10 at once; in the paper's rule that velocity keeps its size and decays by 0.9 per
step while new steps come in at ε/10, so the drop takes effect over ~10–20 steps. cuda-convnet2
(``Weights::aggregateReplicaGradients``: ``inc = mom·inc + ε·grad − wc·ε·w``) does as the paper.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from .config import TrainConfig


class PaperSGD(torch.optim.Optimizer):
    """SGD with momentum, the learning rate inside the velocity, as §5 writes it.

    Per parameter group: ``lr`` (ε), ``momentum`` (0.9 in the paper), ``weight_decay`` (0.0005).
    The velocity is ``state[p]["momentum_buffer"]`` (zero before the first step), so a checkpoint
    of ``state_dict()`` resumes exactly.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("lr, momentum and weight_decay must be non-negative")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad if wd == 0 else p.grad.add(p, alpha=wd)  # ∂L/∂w + λ·w
                state = self.state[p]
                v = state.get("momentum_buffer")
                if v is None:
                    v = state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                v.mul_(mom).add_(d, alpha=-lr)  # v ← μ·v − ε·λ·w − ε·∂L/∂w
                p.add_(v)  # w ← w + v
        return loss


def param_groups(cfg: TrainConfig, model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """The trainable parameters as optimiser groups, each with an ``lr_mult`` the loop applies
    (``lr = rate × lr_mult``). Frozen parameters (``--freeze``) are left out: no state, no decay.

    One group, in ``model.parameters()`` order, unless the rate or the decay differs between
    parameters: ``--lr-backbone-scale`` < 1 puts everything but the last linear layer at that
    fraction of the rate (fine-tuning); ``--bias-lr-mult`` ≠ 1 or ``--bias-weight-decay`` ≠ ``--wd``
    treats every parameter named ``bias`` apart (the paper recipe: 2× the rate, no decay, as the
    authors' code and Caffe). Groups: backbone weights, backbone biases, head weights, head biases.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    bias_wd = cfg.weight_decay if cfg.bias_weight_decay is None else cfg.bias_weight_decay
    split_bias = not (cfg.bias_lr_mult == 1 and bias_wd == cfg.weight_decay)
    head: set[int] | None = None
    if cfg.lr_backbone_scale != 1.0:
        from ..models.pretrained import head_parameters

        head = head_parameters(model)
    groups: dict[tuple[bool, bool], dict[str, Any]] = {}
    for key in ((False, False), (False, True), (True, False), (True, True)):  # (is head, is bias)
        in_head, is_bias = key
        mult = (1.0 if in_head else cfg.lr_backbone_scale) * (cfg.bias_lr_mult if is_bias else 1.0)
        groups[key] = {"params": [], "lr": lr * mult, "lr_mult": mult,
                       "weight_decay": bias_wd if is_bias else cfg.weight_decay}
    for n, p in named:
        groups[(head is None or id(p) in head, split_bias and n.rsplit(".", 1)[-1] == "bias")]["params"].append(p)
    return [g for g in groups.values() if g["params"]]


def build_optimizer(cfg: TrainConfig, model: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names over `param_groups` at rate ``lr`` (``cfg.lr`` when None)."""
    lr = cfg.lr if lr is None else lr
    groups = param_groups(cfg, model, lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "sgd-paper":  # §5's update rule exactly (engine/optim.py); no Nesterov
        return PaperSGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay)


class Lookahead:
    """airbench's lookahead (Jordan 2024; after Zhang et al. 2019): a running average of the
    weights (and batch-norm statistics) is kept, and every ``every`` steps the average moves toward
    the weights by ``1 − decay`` and the weights are set to it. ``decay = base**every · (t/T)³``
    grows from 0 (the weights lead) to 0.95⁵ at the end (the average leads); at the last step the
    weights become the average. It smooths the end of a short schedule the way an EMA does, with no
    second model to evaluate."""

    def __init__(self, model: nn.Module, total_steps: int, every: int = 5, base: float = 0.95):
        self.model, self.total, self.every, self.base = model, max(1, int(total_steps)), int(every), float(base)
        self.avg = {k: v.detach().clone() for k, v in self._tensors().items()}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def step(self, global_step: int) -> None:
        """Call after optimiser step number ``global_step`` (1-based)."""
        last = global_step >= self.total
        if global_step % self.every and not last:
            return
        decay = 1.0 if last else self.base ** self.every * (global_step / self.total) ** 3
        for k, v in self._tensors().items():
            a = self.avg[k]
            a.lerp_(v, 1.0 - decay)
            v.copy_(a)

    def state_dict(self) -> dict[str, Any]:
        return {"avg": {k: v.clone() for k, v in self.avg.items()}, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state["avg"].items():
            if k in self.avg:
                self.avg[k].copy_(v)
