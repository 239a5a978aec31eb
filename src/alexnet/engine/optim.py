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

from typing import Callable, Iterable

import torch


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
