"""LRN (§3.3) in one pass over both towers: equal to the formula, computed by a direct loop, in
fp32 and bf16, forward and backward, for both α conventions and one or two towers; equal to
``F.local_response_norm`` applied per tower (the layer it replaced), in the network too."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from alexnet.models import LRN, build_model
from alexnet.models.lrn import local_response_norm, window_matrix

SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0
TOL = {torch.float32: {"rtol": 2e-5, "atol": 2e-5}, torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2}}


def lrn_loop(x: torch.Tensor, alpha_mode: str, groups: int, size: int = SIZE) -> torch.Tensor:
    """b_i = a_i / (k + s Σ_{j ∈ W(i)} a_j²)^β, map by map, in float64; W(i) = maps i − size//2 …
    i + (size−1)//2 of i's tower; s = α/n ("per-n", the authors' code) or α ("paper", as printed)."""
    x = x.double()
    s = ALPHA / size if alpha_mode == "per-n" else ALPHA
    cg = x.shape[1] // groups
    out = []
    for i in range(x.shape[1]):
        lo, hi = i // cg * cg, i // cg * cg + cg - 1  # the tower of map i
        acc = torch.zeros_like(x[:, 0])
        for j in range(max(lo, i - size // 2), min(hi, i + (size - 1) // 2) + 1):
            acc = acc + x[:, j] ** 2
        out.append(x[:, i] / (K + s * acc) ** BETA)
    return torch.stack(out, 1)


def sample(dtype, channels_last: bool, c: int = 12, seed: int = 0) -> torch.Tensor:
    """ReLU-like maps large enough that the α term moves the result (s·Σa² ≈ 0.1–1)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(2, c, 5, 4, generator=g) * 40).relu().to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("alpha_mode", ["per-n", "paper"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lrn_equals_the_formula_forward_and_backward(dtype, alpha_mode, groups, channels_last):
    x = sample(dtype, channels_last).requires_grad_()
    layer = LRN(groups=groups, alpha_mode=alpha_mode)
    y = layer(x)
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last) == channels_last
    ref_x = x.detach().double().requires_grad_()
    ref = lrn_loop(ref_x, alpha_mode, groups)
    torch.testing.assert_close(y.double(), ref, **TOL[dtype])
    up = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y.double() * up).sum().backward()
    (ref * up).sum().backward()
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad.double(), ref_x.grad, **TOL[dtype])


@pytest.mark.parametrize("groups", [1, 2])
def test_the_formula_checks_are_sharp(groups):
    """The comparisons above fail for the other α convention, another window size, or a window
    crossing the tower boundary (the differences exceed even the bf16 tolerance)."""
    x = sample(torch.float32, False)
    y = LRN(groups=groups)(x).double()
    wrong = [lrn_loop(x, "paper", groups), lrn_loop(x, "per-n", groups, size=3)]
    if groups == 2:
        wrong.append(lrn_loop(x, "per-n", 1))
    for w in wrong:
        assert not torch.allclose(y, w, **TOL[torch.bfloat16])


@pytest.mark.parametrize("size", [3, 4, 5])
def test_window_matrix_is_the_window_within_each_tower(size):
    w = window_matrix(8, size, 2)[..., 0, 0]
    assert w.shape == (8, 4)
    for i in range(8):
        t = i // 4
        expect = [1.0 if i - size // 2 <= t * 4 + j <= i + (size - 1) // 2 else 0.0 for j in range(4)]
        assert w[i].tolist() == expect
    torch.testing.assert_close(window_matrix(8, size, 2, transpose=True)[:4, :, 0, 0], w[:4].T)


@pytest.mark.parametrize("size", [4, 5])
@pytest.mark.parametrize("groups", [1, 2])
def test_equals_torch_local_response_norm_per_tower(groups, size):
    """The layer it replaced: ``F.local_response_norm`` on each tower's ``chunk``, then ``cat``
    (even sizes too, whose window is not centred)."""
    x = sample(torch.float32, True, c=16, seed=3).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y = local_response_norm(x, size, ALPHA / size, BETA, K, groups)
    ref = torch.cat([F.local_response_norm(c, size, ALPHA, BETA, K) for c in x2.chunk(groups, 1)], 1)
    torch.testing.assert_close(y, ref, **TOL[torch.float32])
    up = torch.randn_like(ref)
    (y * up).sum().backward()
    (ref * up).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TOL[torch.float32])


def test_under_bf16_autocast_the_sum_runs_in_fp32_and_the_result_keeps_the_input_dtype():
    x = sample(torch.bfloat16, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = LRN(groups=2)(x)
        y32 = LRN(groups=2)(x.float())
    assert y.dtype == torch.bfloat16 and y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), lrn_loop(x, "per-n", 2), **TOL[torch.float32])
    with torch.no_grad():
        assert LRN()(x).dtype == torch.bfloat16  # no backward needed: nothing kept for it


class TorchLRN(nn.Module):
    """The former layer: ``F.local_response_norm`` per tower (torch's α/n convention)."""

    def __init__(self, lrn: LRN):
        super().__init__()
        self.size, self.beta, self.k, self.groups = lrn.size, lrn.beta, lrn.k, lrn.groups
        self.alpha = lrn.alpha if lrn.alpha_mode == "per-n" else lrn.alpha * lrn.size  # torch divides by n

    def forward(self, x):
        return torch.cat([F.local_response_norm(c, self.size, self.alpha, self.beta, self.k)
                          for c in x.chunk(self.groups, 1)], 1)


def swap_lrn(model: nn.Module) -> None:
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LRN):
                setattr(parent, name, TorchLRN(child))


@pytest.mark.parametrize("name,kw,shape", [
    ("alexnet", {"width": 0.25, "fc_width": 64}, (2, 3, 227, 227)),
    ("alexnet", {"width": 0.25, "fc_width": 64, "towers": 2}, (2, 3, 227, 227)),
    ("alexnet-mini", {}, (4, 3, 24, 24)),
    ("cifar4", {}, (4, 3, 32, 32))])
def test_networks_compute_what_they_computed_with_the_former_lrn(name, kw, shape):
    torch.manual_seed(0)
    new = build_model(name, num_classes=10, **kw).eval()
    old = build_model(name, num_classes=10, **kw).eval()
    old.load_state_dict(new.state_dict())
    swap_lrn(old)
    assert not any(isinstance(m, LRN) for m in old.modules())
    x = (torch.randn(shape) * 3).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(new(x), old(x), rtol=1e-4, atol=1e-5)
    new(x).square().sum().backward()
    old(x).square().sum().backward()
    for (n, p), q in zip(new.named_parameters(), old.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=n)


def test_a_trace_leaves_no_fake_window_behind():
    """Exporting traces the layer with fake tensors; a window matrix built then must not be reused
    (a cache of them did: after an ONNX export, LRN returned garbage)."""
    x = sample(torch.float32, True, c=16, seed=5)
    torch.export.export(LRN(groups=2).eval(), (x,), strict=False)  # as the ONNX (dynamo) exporter does
    torch.testing.assert_close(LRN(groups=2)(x).double(), lrn_loop(x, "per-n", 2), **TOL[torch.float32])


def test_shapes_on_the_meta_device():
    """The models table builds networks on the meta device (no storage, no autocast there)."""
    with torch.device("meta"):
        assert LRN(groups=2)(torch.empty(2, 16, 5, 5)).shape == (2, 16, 5, 5)


def test_caffes_lrn_is_k_1_across_both_towers_and_the_default_stays_the_papers():
    """bvlc_alexnet's norm1/norm2: k = 1 (caffe.proto's default), the window over all the layer's
    maps (torch's LocalResponseNorm on the whole tensor); the default: k = 2, each tower apart."""
    from alexnet.core.errors import UserError
    from alexnet.models import build_model

    torch.manual_seed(0)
    x = torch.randn(2, 16, 7, 7) * 30
    caffe = build_model("alexnet", num_classes=3, width=1 / 6, fc_width=32, lrn_k=1, lrn_across=True)
    ref = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
    assert torch.allclose(caffe.features.lrn1(x), ref(x), atol=1e-6)
    paper = build_model("alexnet", num_classes=3, width=1 / 6, fc_width=32).features.lrn1
    halves = torch.cat([torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(h) for h in x.chunk(2, 1)], 1)
    assert torch.allclose(paper(x), halves, atol=1e-6) and not torch.allclose(paper(x), ref(x), atol=1e-3)
    towers = build_model("alexnet", num_classes=3, towers=2, width=1 / 6, fc_width=32, lrn_k=1)
    assert towers.tower1.lrn.k == 1
    with pytest.raises(UserError, match="grouped network"):
        build_model("alexnet", num_classes=3, towers=2, lrn_across=True)
    with pytest.raises(UserError, match="lrn_k must be above 0"):
        build_model("alexnet", num_classes=3, lrn_k=0)
