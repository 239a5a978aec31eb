"""Local response normalisation (§3.3) in one pass over both towers, with its analytic backward.

b_i = a_i / (k + s · Σ_{j ∈ W(i)} a_j²)^β, where W(i) is the window of ``size`` maps around map i
(``size // 2`` before it, ``(size - 1) // 2`` after it, fewer at the edges: exactly
``F.local_response_norm``'s window) inside map i's tower, and s = α/n or α (see `LRN`).

Why not ``F.local_response_norm``: it squares into a padded copy, runs an average pool over it, and
applies per tower through ``chunk``/``cat``; in channels_last and in bf16 that cost as much as the
convolutions around it. Here the window sum is a 1×1 convolution with a fixed banded 0/1 matrix, grouped
by tower (so no window crosses a tower boundary), which oneDNN runs as a matrix product over the
``(N·H·W, C)`` view in either memory format; the scale and ``k`` ride in its
weight and bias. Everything is computed in fp32 whatever the input's precision (autocast is switched
off inside) and the result comes back in the input's dtype and memory format. The backward is the
analytic one: with d_i = k + s Σ_{j∈W(i)} a_j² and r = d^-β,

    ∂L/∂a_j = g_j r_j − 2 s β a_j Σ_{i : j ∈ W(i)} g_i a_i r_i / d_i,

the second sum being the transposed window (the same one for odd ``size``). Kept for it: the input,
r and r / d (the forward computes them anyway). See docs/architecture.md for where the layer sits in the network.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import UserError

# §3.3: k=2, n=5, α=1e-4, β=0.75. The paper prints b = a / (k + α Σ a²)^β, but the authors' code
# divides α by n: cuda-convnet's and cuda-convnet2's layer.py (`NormLayerParser.add_params`:
# ``dic['scale'] /= dic['size']`` for `cmrnorm`, whose cfg gives ``scale=0.0001``, ``minDiv=2``,
# ``pow=0.75``, ``size=5``), and Caffe's LRN (alpha 0.0001, local_size 5 in bvlc_alexnet, divided by
# local_size), as torch.nn.LocalResponseNorm does. So the published numbers were made with α/n:
# that is the default here; ``alpha_mode="paper"`` gives the formula as printed. Caffe's
# bvlc_alexnet differs twice more: its norm layers set no k, so caffe.proto's default k = 1 holds,
# and its window runs over all of a layer's maps, across the two towers (AlexNet's ``lrn_k=1``,
# ``lrn_across=true``).
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0
LRN_ALPHA_MODES = ("per-n", "paper")


def window_matrix(channels: int, size: int, groups: int, transpose: bool = False,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(C, C / groups, 1, 1)`` 0/1 weight whose grouped 1×1 convolution sums each map's LRN window.

    Within a tower, row i holds ones at the maps j of i's window: i − size//2 ≤ j ≤ i + (size−1)//2.
    One block per tower (``groups``), so no window crosses a tower boundary. ``transpose=True``
    gives the window of the backward pass (rows and columns swapped).
    """
    # Built afresh (microseconds): a cached tensor would outlive a trace (export, TorchScript),
    # whose fake tensors hold no data.
    c = torch.arange(channels // groups, device=device)
    i, j = (c[None, :], c[:, None]) if transpose else (c[:, None], c[None, :])
    band = ((j >= i - size // 2) & (j <= i + (size - 1) // 2)).to(dtype)
    return band.repeat(groups, 1).reshape(channels, channels // groups, 1, 1)


def window_sum(t: torch.Tensor, size: int, groups: int, scale: float = 1.0, shift: float = 0.0,
               transpose: bool = False) -> torch.Tensor:
    """shift + scale · (each map's window sum of ``t`` in its tower), one grouped 1×1 convolution.

    Measured against a dense block-diagonal 1×1 convolution and against ``size`` shifted in-place
    slice additions (benchmarks/paper_layers.md): the three are within noise of each other in
    channels_last, the grouped one the most often fastest.
    """
    w = window_matrix(t.shape[1], size, groups, transpose, t.device, t.dtype)
    bias = torch.full((t.shape[1],), shift, device=t.device, dtype=t.dtype) if shift else None
    return F.conv2d(t, w * scale if scale != 1.0 else w, bias, groups=groups)


def no_autocast(device: torch.device):
    """Autocast off on ``device``; nothing to switch off on a device without autocast (meta)."""
    try:
        return torch.autocast(device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


class LRNFunction(torch.autograd.Function):
    """``LRNFunction.apply(x, size, scale, beta, k, groups)``: the forward and analytic backward above.

    ``scale`` is the factor in front of the window sum (α/n for the authors' code, α as printed).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int, scale: float, beta: float, k: float, groups: int) -> torch.Tensor:
        # Few fresh buffers: a large one is a fresh mmap whose pages fault on first touch, which
        # costs as much as the arithmetic here; hence the ``out=`` and in-place forms. Every op
        # sees one dtype: mixed bf16/fp32 operands make TensorIterator cast through hidden copies.
        acc = torch.promote_types(x.dtype, torch.float32)  # fp32 (fp64 stays fp64)
        with no_autocast(x.device):
            xf = x.to(acc)
            sq = xf * xf
            d = window_sum(sq, size, groups, scale, k)
            r = torch.pow(d, -beta, out=sq)  # r = d^-β, in sq's buffer
            q = d.reciprocal_().mul_(r) if ctx.needs_input_grad[0] else None  # r / d, in d's buffer
            y = xf.mul_(r) if x.dtype != acc else xf * r  # in the fp32 copy's buffer when there is one
        ctx.save_for_backward(x, r, q)
        ctx.args = (size, scale, beta, groups)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, r, q = ctx.saved_tensors
        size, scale, beta, groups = ctx.args
        with no_autocast(x.device):
            xf, gf = x.to(r.dtype), g.to(r.dtype)
            t = (gf * xf).mul_(q)  # g_i a_i r_i / d_i
            u = window_sum(t, size, groups, transpose=True)
            dx = torch.mul(gf, r, out=t).addcmul_(xf, u, value=-2.0 * scale * beta)
        return dx.to(x.dtype), None, None, None, None, None


def local_response_norm(x: torch.Tensor, size: int, scale: float, beta: float, k: float,
                        groups: int = 1) -> torch.Tensor:
    """LRN of a ``(N, C, H, W)`` tensor, each of ``groups`` towers on its own (see the module docstring)."""
    if x.dim() != 4 or x.shape[1] % groups:
        raise ValueError(f"LRN needs (N, C, H, W) with C divisible by groups={groups}, got {tuple(x.shape)}")
    if torch.jit.is_tracing():  # TorchScript (and the ONNX exporter built on it) cannot record a Python
        # autograd.Function: torch's own LRN on each tower, the same function (α/n with α = scale · n)
        parts = [F.local_response_norm(p, size, alpha=scale * size, beta=beta, k=k) for p in x.chunk(groups, 1)]
        return parts[0] if groups == 1 else torch.cat(parts, 1)
    return LRNFunction.apply(x, size, scale, beta, k, groups)


class LRN(nn.Module):
    """Local response normalisation across channels (§3.3).

    ``alpha_mode="per-n"`` (default): b = a / (k + (α/n) Σ a²)^β, what cuda-convnet (the authors'
    code) and Caffe compute with the paper's α = 1e-4; ``"paper"``: b = a / (k + α Σ a²)^β, the
    formula as the paper prints it (normalisation n = 5 times stronger). The sum runs over the n
    maps centred on map i (fewer at the edges).

    ``groups=2`` normalises each tower's channels on their own, as the two GPUs did: a kernel map
    on one GPU is never normalised by maps living on the other. This is what makes the grouped
    network and the two-tower network compute the same function. Both towers are computed in one
    pass (`local_response_norm`); the result equals ``F.local_response_norm`` applied per tower.
    """

    def __init__(self, size: int = LRN_SIZE, alpha: float = LRN_ALPHA, beta: float = LRN_BETA,
                 k: float = LRN_K, groups: int = 1, alpha_mode: str = "per-n"):
        super().__init__()
        if alpha_mode not in LRN_ALPHA_MODES:
            raise UserError(f"lrn_alpha must be one of {', '.join(LRN_ALPHA_MODES)}, not {alpha_mode!r}")
        if not k > 0:
            raise UserError(f"lrn_k must be above 0 (the paper's 2, Caffe's 1), not {k!r}: at 0 a map whose "
                            f"window is all zeros divides by zero")
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups
        self.alpha_mode = alpha_mode
        # the factor in front of the window sum: α/n (cuda-convnet, Caffe, torch) or α (as printed)
        self.scale = alpha / size if alpha_mode == "per-n" else alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_response_norm(x, self.size, self.scale, self.beta, self.k, self.groups)

    def extra_repr(self) -> str:
        rule = ("k + alpha/size * sum(a^2): cuda-convnet, Caffe, torch" if self.alpha_mode == "per-n"
                else "k + alpha * sum(a^2): as printed in the paper")
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, groups={self.groups}, "
                f"alpha_mode={self.alpha_mode} ({rule})")
