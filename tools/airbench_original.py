"""airbench94's own training code on this project's data: is the gap to 94 % in the engine or in the data?

    python tools/airbench_original.py run DATA OUT [--seeds 0,1,2] [--amp bf16|fp32]   # timed, under the lock
    python tools/airbench_original.py summarize OUT RESULTS.json [--engine docs/results/airbench-steps.json]

`--recipe cifar10-airbench` is this engine's rendering of airbench94's choices; on the CIFAR-10 JPEGs it
reaches about 90.5 %, not airbench's 94.01 % (docs/cifar10.md, "The reference: airbench94's choices").
Either the engine renders a choice wrongly or the data (JPEGs, 45,000 training images, a hold-out)
costs the points. This tool tells the two apart: it trains with airbench's own code — the functions
of ``legacy/airbench94.py`` (github.com/KellerJordan/cifar10-airbench, MIT licence, copyright (c)
2024 Keller Jordan), copied below with their names — on exactly the images the engine trains and
scores on: the training split of ``cifar10:DATA`` decoded by this project (45,000 images) and its
5,000-image hold-out (split seed 0) in place of the test split. What changes from the original:

- the data: the two splits above, as uint8 tensors, instead of torchvision's pickles;
- the device and precision: the CPU, fp32 weights with the forward pass under bf16 autocast
  (``--amp bf16``, as `--amp auto` gives the engine on a CPU with bf16) or all fp32 (``--amp fp32``),
  where airbench keeps fp16 weights on a GPU (the CPU has no fast fp16);
- the clock (``time.perf_counter``), one run per process, seeded (``torch.manual_seed(seed)``);
- the final weights are scored three ways (``tta_level`` 0, 1, 2: centre, mirror, airbench's six
  views) instead of one; per epoch, as airbench does, the centre accuracy.

``run`` writes ``OUT/orig-s<seed>/`` (``metrics.csv`` per epoch, ``result.json``, ``output.txt``,
``run.json`` with the whole command's wall time, one run at a time under ``$ALEXNET_CPU_LOCK``);
a seed with a ``result.json`` is skipped. The decoded splits are kept in ``OUT/decoded.pt`` (as
airbench keeps ``train.pt``). ``summarize`` gives each score's median and, against the engine's
reference seeds (``arms.airbench`` of ``--engine``), the difference with a 95 % Welch interval
(unpaired: the two codes draw different random numbers for the same seed).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from math import ceil
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airbench_steps import welch  # noqa: E402 — the sibling tool's interval, the same for both comparisons
from ema_measure import run as timed_run  # noqa: E402 — timed, locked, run.json

NAME = "orig-s{seed}"
SCORES = {"centre": 0, "flip": 1, "tta": 2}  # score name -> airbench's tta_level

hyp = {  # airbench94's, unchanged
    'opt': {'train_epochs': 9.9, 'batch_size': 1024, 'lr': 11.5, 'momentum': 0.85, 'weight_decay': 0.0153,
            'bias_scaler': 64.0, 'label_smoothing': 0.2, 'whiten_bias_epochs': 3},
    'aug': {'flip': True, 'translate': 2},
    'net': {'widths': {'block1': 64, 'block2': 256, 'block3': 256}, 'batchnorm_momentum': 0.6,
            'scaling_factor': 1 / 9, 'tta_level': 2},
}


def decoded_splits(data: str, cache: Path):
    """(train images, train labels, hold-out images, hold-out labels): uint8 ``[N, 3, 32, 32]`` and int64, the
    splits `alexnet train --data-path DATA` trains and validates on (``cifar10:DATA``, 10 % held out, seed 0)."""
    import torch

    from alexnet.data.datasets import build_dataset
    from alexnet.data.resident import decode_all

    if cache.is_file():
        saved = torch.load(cache)
        if saved["data"] == str(data):
            return saved["train"], saved["train_labels"], saved["val"], saved["val_labels"]
    out = {"data": str(data)}
    for split, key in (("train", "train"), ("val", "val")):
        images, labels, bad = decode_all(build_dataset(f"cifar10:{data}", split, val_split=0.1, seed=0), workers=2)
        if bad:
            print(f"{split}: {len(bad)} unreadable images left out")
        out[key], out[f"{key}_labels"] = images, labels
    torch.save(out, cache)
    return out["train"], out["train_labels"], out["val"], out["val_labels"]


def train_one(data: str, folder: Path, seed: int, amp: str, epochs: float, batch_size: int, cache: Path) -> dict:
    """One run of airbench94's ``main`` on the decoded splits; writes ``metrics.csv`` and ``result.json``."""
    import torch
    from torch import nn
    import torch.nn.functional as F
    import torchvision.transforms as T

    CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465))
    CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616))

    def batch_flip_lr(inputs):
        flip_mask = (torch.rand(len(inputs), device=inputs.device) < 0.5).view(-1, 1, 1, 1)
        return torch.where(flip_mask, inputs.flip(-1), inputs)

    def batch_crop(images, crop_size):
        r = (images.size(-1) - crop_size) // 2
        shifts = torch.randint(-r, r + 1, size=(len(images), 2), device=images.device)
        images_out = torch.empty((len(images), 3, crop_size, crop_size), device=images.device, dtype=images.dtype)
        for sy in range(-r, r + 1):  # airbench's branch for r <= 2 (r is 2 here)
            for sx in range(-r, r + 1):
                mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
                images_out[mask] = images[mask, :, r + sy:r + sy + crop_size, r + sx:r + sx + crop_size]
        return images_out

    class CifarLoader:  # airbench's, reading tensors instead of torchvision's pickles
        def __init__(self, images, labels, train=True, batch_size=500, aug=None):
            self.images, self.labels = images, labels
            self.images = (self.images.float() / 255).contiguous(memory_format=torch.channels_last)
            self.normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)
            self.proc_images = {}
            self.epoch = 0
            self.aug = aug or {}
            self.batch_size = batch_size
            self.drop_last = self.shuffle = train

        def __len__(self):
            return len(self.images) // self.batch_size if self.drop_last else ceil(len(self.images) / self.batch_size)

        def __iter__(self):
            if self.epoch == 0:
                images = self.proc_images['norm'] = self.normalize(self.images)
                if self.aug.get('flip', False):
                    images = self.proc_images['flip'] = batch_flip_lr(images)
                pad = self.aug.get('translate', 0)
                if pad > 0:
                    self.proc_images['pad'] = F.pad(images, (pad,) * 4, 'reflect')
            if self.aug.get('translate', 0) > 0:
                images = batch_crop(self.proc_images['pad'], self.images.shape[-2])
            elif self.aug.get('flip', False):
                images = self.proc_images['flip']
            else:
                images = self.proc_images['norm']
            if self.aug.get('flip', False):
                if self.epoch % 2 == 1:
                    images = images.flip(-1)
            self.epoch += 1
            indices = (torch.randperm if self.shuffle else torch.arange)(len(images), device=images.device)
            for i in range(len(self)):
                idxs = indices[i * self.batch_size:(i + 1) * self.batch_size]
                yield (images[idxs], self.labels[idxs])

    class Flatten(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    class Mul(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    class BatchNorm(nn.BatchNorm2d):
        def __init__(self, num_features, momentum, eps=1e-12, weight=False, bias=True):
            super().__init__(num_features, eps=eps, momentum=1 - momentum)
            self.weight.requires_grad = weight
            self.bias.requires_grad = bias

    class Conv(nn.Conv2d):
        def __init__(self, in_channels, out_channels, kernel_size=3, padding='same', bias=False):
            super().__init__(in_channels, out_channels, kernel_size=kernel_size, padding=padding, bias=bias)

        def reset_parameters(self):
            super().reset_parameters()
            if self.bias is not None:
                self.bias.data.zero_()
            w = self.weight.data
            torch.nn.init.dirac_(w[:w.size(1)])

    class ConvGroup(nn.Module):
        def __init__(self, channels_in, channels_out, batchnorm_momentum):
            super().__init__()
            self.conv1 = Conv(channels_in, channels_out)
            self.pool = nn.MaxPool2d(2)
            self.norm1 = BatchNorm(channels_out, batchnorm_momentum)
            self.conv2 = Conv(channels_out, channels_out)
            self.norm2 = BatchNorm(channels_out, batchnorm_momentum)
            self.activ = nn.GELU()

        def forward(self, x):
            x = self.activ(self.norm1(self.pool(self.conv1(x))))
            return self.activ(self.norm2(self.conv2(x)))

    def make_net():
        widths = hyp['net']['widths']
        bn = hyp['net']['batchnorm_momentum']
        whiten_kernel_size = 2
        whiten_width = 2 * 3 * whiten_kernel_size ** 2
        net = nn.Sequential(
            Conv(3, whiten_width, whiten_kernel_size, padding=0, bias=True), nn.GELU(),
            ConvGroup(whiten_width, widths['block1'], bn), ConvGroup(widths['block1'], widths['block2'], bn),
            ConvGroup(widths['block2'], widths['block3'], bn), nn.MaxPool2d(3), Flatten(),
            nn.Linear(widths['block3'], 10, bias=False), Mul(hyp['net']['scaling_factor']))
        net[0].weight.requires_grad = False
        return net.to(memory_format=torch.channels_last)  # fp32 weights on the CPU (airbench: .half().cuda())

    def get_patches(x, patch_shape):
        c, (h, w) = x.shape[1], patch_shape
        return x.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()

    def get_whitening_parameters(patches):
        n, c, h, w = patches.shape
        patches_flat = patches.view(n, -1)
        est_patch_covariance = (patches_flat.T @ patches_flat) / n
        eigenvalues, eigenvectors = torch.linalg.eigh(est_patch_covariance, UPLO='U')
        return eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)

    def init_whitening_conv(layer, train_set, eps=5e-4):
        patches = get_patches(train_set, patch_shape=layer.weight.data.shape[2:])
        eigenvalues, eigenvectors = get_whitening_parameters(patches)
        eigenvectors_scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
        layer.weight.data[:] = torch.cat((eigenvectors_scaled, -eigenvectors_scaled))

    class LookaheadState:
        def __init__(self, net):
            self.net_ema = {k: v.clone() for k, v in net.state_dict().items()}

        def update(self, net, decay):
            for ema_param, net_param in zip(self.net_ema.values(), net.state_dict().values()):
                if net_param.dtype in (torch.half, torch.float):
                    ema_param.lerp_(net_param, 1 - decay)
                    net_param.copy_(ema_param)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=(amp == "bf16"))

    def infer(model, loader, tta_level=0):
        def infer_basic(inputs, net):
            return net(inputs).clone()

        def infer_mirror(inputs, net):
            return 0.5 * net(inputs) + 0.5 * net(inputs.flip(-1))

        def infer_mirror_translate(inputs, net):
            logits = infer_mirror(inputs, net)
            padded_inputs = F.pad(inputs, (1,) * 4, 'reflect')
            inputs_translate_list = [padded_inputs[:, :, 0:32, 0:32], padded_inputs[:, :, 2:34, 2:34]]
            logits_translate = torch.stack([infer_mirror(x, net) for x in inputs_translate_list]).mean(0)
            return 0.5 * logits + 0.5 * logits_translate

        model.eval()
        test_images = loader.normalize(loader.images)
        infer_fn = [infer_basic, infer_mirror, infer_mirror_translate][tta_level]
        with torch.no_grad(), autocast():
            return torch.cat([infer_fn(inputs, model).float() for inputs in test_images.split(2000)])

    def evaluate(model, loader, tta_level=0):
        logits = infer(model, loader, tta_level)
        return (logits.argmax(1) == loader.labels).float().mean().item()

    # --- main(run), airbench's, one run ---
    t_start = time.perf_counter()
    train_x, train_y, val_x, val_y = decoded_splits(data, cache)
    decode_s = time.perf_counter() - t_start
    torch.manual_seed(seed)
    momentum = hyp['opt']['momentum']
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = hyp['opt']['lr'] / kilostep_scale
    wd = hyp['opt']['weight_decay'] * batch_size / kilostep_scale
    lr_biases = lr * hyp['opt']['bias_scaler']

    loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp['opt']['label_smoothing'], reduction='none')
    test_loader = CifarLoader(val_x, val_y, train=False, batch_size=2000)
    train_loader = CifarLoader(train_x, train_y, train=True, batch_size=batch_size, aug=hyp['aug'])
    total_train_steps = ceil(len(train_loader) * epochs)
    model = make_net()
    current_steps = 0
    norm_biases = [p for k, p in model.named_parameters() if 'norm' in k and p.requires_grad]
    other_params = [p for k, p in model.named_parameters() if 'norm' not in k and p.requires_grad]
    param_configs = [dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                     dict(params=other_params, lr=lr, weight_decay=wd / lr)]
    optimizer = torch.optim.SGD(param_configs, momentum=momentum, nesterov=True)

    def get_lr(step):
        warmup_steps = int(total_train_steps * 0.23)
        warmdown_steps = total_train_steps - warmup_steps
        if step < warmup_steps:
            frac = step / warmup_steps
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warmup_steps) / warmdown_steps
        return 1.0 * (1 - frac) + 0.07 * frac
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, get_lr)
    alpha_schedule = 0.95 ** 5 * (torch.arange(total_train_steps + 1) / total_train_steps) ** 3
    lookahead_state = LookaheadState(model)

    t0 = time.perf_counter()
    init_whitening_conv(model[0], train_loader.normalize(train_loader.images[:5000]))
    train_s = time.perf_counter() - t0
    rows = []
    for epoch in range(ceil(epochs)):
        model[0].bias.requires_grad = (epoch < hyp['opt']['whiten_bias_epochs'])
        t0 = time.perf_counter()
        model.train()
        for inputs, labels in train_loader:
            with autocast():
                outputs = model(inputs)
            loss = loss_fn(outputs.float(), labels).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            current_steps += 1
            if current_steps % 5 == 0:
                lookahead_state.update(model, decay=alpha_schedule[current_steps].item())
            if current_steps >= total_train_steps:
                lookahead_state.update(model, decay=1.0)
                break
        epoch_s = time.perf_counter() - t0
        train_s += epoch_s
        train_acc = (outputs.detach().argmax(1) == labels).float().mean().item()
        val_acc = evaluate(model, test_loader, tta_level=0)
        rows.append({"epoch": epoch + 1, "steps": current_steps, "train_loss": round(loss.item() / batch_size, 4),
                     "train_acc": round(100 * train_acc, 2), "val_top1": round(100 * val_acc, 2),
                     "time": round(epoch_s, 2), "train_s": round(train_s, 1)})
        print(" ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    scores = {}
    for name, level in SCORES.items():
        t0 = time.perf_counter()
        scores[name] = round(100 * evaluate(model, test_loader, tta_level=level), 2)
        if level == hyp['net']['tta_level']:
            train_s += time.perf_counter() - t0  # airbench's total_time_seconds counts its TTA evaluation
    with open(folder / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = {"seed": seed, "amp": amp, "epochs": epochs, "batch_size": batch_size, "steps": current_steps,
              "train_images": len(train_y), "val_images": len(val_y), **scores,
              "train_s": round(train_s, 1), "decode_s": round(decode_s, 1),
              "epoch_s_median": round(statistics.median(r["time"] for r in rows), 2)}
    (folder / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print("final " + " ".join(f"{k} {v}" for k, v in scores.items()), flush=True)
    return result


def run(data: str, out: Path, seeds: list[int], amp: str, epochs: float, batch_size: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for seed in seeds:
        folder = out / NAME.format(seed=seed)
        if (folder / "result.json").is_file():
            print(f"{folder.name}: done before, skipped")
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "one", str(data), str(folder), "--seed", str(seed),
               "--amp", amp, "--epochs", str(epochs), "--batch-size", str(batch_size), "--cache", str(out / "decoded.pt")]
        rc = timed_run(out, folder.name, cmd)
        print(f"{folder.name}: " + ("done" if rc == 0 else f"failed (exit {rc}), see {folder / 'output.txt'}"))
        failed += rc != 0
    return 1 if failed else 0


def summarize(out: Path, dest: Path, engine: Path | None) -> dict:
    seeds = {}
    for folder in sorted(out.glob(NAME.format(seed="*"))):
        if (folder / "result.json").is_file():
            r = json.loads((folder / "result.json").read_text())
            wall = json.loads((folder / "run.json").read_text())["wall_s"] if (folder / "run.json").is_file() else None
            seeds[str(r["seed"])] = {**{k: r[k] for k in (*SCORES, "steps", "epoch_s_median", "amp")}, "wall_s": wall}
    if not seeds:
        raise SystemExit(f"no runs with a result.json in {out}")
    summary: dict = {"what": "airbench94's own code (legacy/airbench94.py) on the engine's splits", "seeds": seeds}
    for k in SCORES:
        values = [s[k] for s in seeds.values()]
        summary[f"{k}_median"], summary[f"{k}_range"] = statistics.median(values), [min(values), max(values)]
    if engine is not None:
        ref = json.loads(engine.read_text())["arms"]["airbench"]["seeds"]
        summary["engine_reference"] = {"file": str(engine), "seeds": sorted(ref, key=int)}
        for k in SCORES:
            summary[f"{k}_vs_engine"] = welch([s[k] for s in seeds.values()], [s[k] for s in ref.values()])
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(summary, indent=1, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("run", "one"):
        s = sub.add_parser(verb)
        s.add_argument("data")
        s.add_argument("out")
        s.add_argument("--amp", choices=("bf16", "fp32"), default="bf16")
        s.add_argument("--epochs", type=float, default=hyp['opt']['train_epochs'])
        s.add_argument("--batch-size", type=int, default=hyp['opt']['batch_size'])
        if verb == "run":
            s.add_argument("--seeds", default="0,1,2")
        else:
            s.add_argument("--seed", type=int, required=True)
            s.add_argument("--cache", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("results")
    s.add_argument("--engine", default=None)
    a = p.parse_args(argv)
    if a.verb == "run":
        try:
            seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
        except ValueError:
            p.error(f"--seeds: comma-separated integers, not {a.seeds!r}")
        return run(a.data, Path(a.out), seeds, a.amp, a.epochs, a.batch_size)
    if a.verb == "one":
        Path(a.out).mkdir(parents=True, exist_ok=True)
        train_one(a.data, Path(a.out), a.seed, a.amp, a.epochs, a.batch_size, Path(a.cache))
        return 0
    summarize(Path(a.out), Path(a.results), Path(a.engine) if a.engine else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
