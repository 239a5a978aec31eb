"""airbench94's training code (``legacy/airbench94.py`` of github.com/KellerJordan/cifar10-airbench), run on the CPU.

Copyright (c) 2024 Keller Jordan, MIT licence (below). The hyperparameters and the functions keep
airbench's names and code; tools/airbench_original.py runs them on this project's data to tell
whether the gap between ``--recipe cifar10-airbench`` and airbench's 94 % is in the engine or in the
data. What is changed, and only that:

- `CifarLoader` takes uint8 image and label tensors instead of reading torchvision's pickles, and
  keeps the images in fp32 (airbench: fp16, ``.half()``);
- `make_net` leaves the network in fp32 on the CPU (airbench: ``.half().cuda()``, batch norm in fp32);
  the forward passes run under `autocast` (bf16 on the CPU, as ``--amp auto`` gives the engine there,
  or fp32): the CPU has no fast fp16;
- `main` is one run (airbench: 25 in a row), seeded with ``torch.manual_seed``, timed with
  ``time.perf_counter`` instead of CUDA events, the loss taken in fp32; it returns each epoch's
  row (with the centre accuracy on the held-out images, which airbench prints) and the final
  weights scored at ``tta_level`` 0, 1 and 2 (airbench: 2 only). `batch_crop` keeps only the
  branch for translations of at most 2 pixels (the one airbench's settings take).

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions: The above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

import time
from math import ceil

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch import nn

hyp = {  # airbench94's, unchanged
    'opt': {'train_epochs': 9.9, 'batch_size': 1024, 'lr': 11.5, 'momentum': 0.85, 'weight_decay': 0.0153,
            'bias_scaler': 64.0, 'label_smoothing': 0.2, 'whiten_bias_epochs': 3},
    'aug': {'flip': True, 'translate': 2},
    'net': {'widths': {'block1': 64, 'block2': 256, 'block3': 256}, 'batchnorm_momentum': 0.6,
            'scaling_factor': 1 / 9, 'tta_level': 2},
}

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


def autocast(amp):
    """The forward pass's precision on the CPU: bf16 autocast (``bf16``) or fp32."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=(amp == "bf16"))


def infer(model, loader, tta_level=0, amp="fp32"):
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
    with torch.no_grad(), autocast(amp):
        return torch.cat([infer_fn(inputs, model).float() for inputs in test_images.split(2000)])


def evaluate(model, loader, tta_level=0, amp="fp32"):
    logits = infer(model, loader, tta_level, amp)
    return (logits.argmax(1) == loader.labels).float().mean().item()


def main(train_images, train_labels, test_images, test_labels, seed=0, amp="bf16", epochs=None, batch_size=None,
         log=print):
    """One run of airbench's ``main`` (see the module docstring); ``(rows, scores, total_time_seconds)``."""
    batch_size = batch_size or hyp['opt']['batch_size']
    epochs = hyp['opt']['train_epochs'] if epochs is None else epochs
    torch.manual_seed(seed)
    momentum = hyp['opt']['momentum']
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = hyp['opt']['lr'] / kilostep_scale
    wd = hyp['opt']['weight_decay'] * batch_size / kilostep_scale
    lr_biases = lr * hyp['opt']['bias_scaler']

    loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp['opt']['label_smoothing'], reduction='none')
    test_loader = CifarLoader(test_images, test_labels, train=False, batch_size=2000)
    train_loader = CifarLoader(train_images, train_labels, train=True, batch_size=batch_size, aug=hyp['aug'])
    if len(train_loader) == 0:
        raise ValueError(f"{len(train_labels)} training images make no batch of {batch_size}")
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
            with autocast(amp):
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
        val_acc = evaluate(model, test_loader, tta_level=0, amp=amp)
        rows.append({"epoch": epoch + 1, "steps": current_steps, "train_loss": round(loss.item() / batch_size, 4),
                     "train_acc": round(100 * train_acc, 2), "val_top1": round(100 * val_acc, 2),
                     "time": round(epoch_s, 2), "train_s": round(train_s, 1)})
        log(" ".join(f"{k} {v}" for k, v in rows[-1].items()))
    scores = {}
    for name, level in (('centre', 0), ('flip', 1), ('tta', 2)):
        t0 = time.perf_counter()
        scores[name] = round(100 * evaluate(model, test_loader, tta_level=level, amp=amp), 2)
        if level == hyp['net']['tta_level']:
            train_s += time.perf_counter() - t0  # airbench's total_time_seconds counts its TTA evaluation
    return rows, scores, train_s
