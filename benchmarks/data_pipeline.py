"""Data pipeline throughput, side by side: the tutorials' PIL + ToTensor + Normalize per sample vs
ours (libjpeg-turbo decode, reduced-size decode for large JPEGs, uint8 transforms, normalisation
of the whole batch on the device). Never part of the test run.

    python benchmarks/data_pipeline.py                     # 300 generated 500×375 JPEGs (ImageNet-like)
    python benchmarks/data_pipeline.py --size 1600 1200    # phone-camera-sized photos
    python benchmarks/data_pipeline.py --cifar ../shared/data/cifar10-train-jpeg.tar.gz  # + real CIFAR JPEGs

Reports the median images/s of ``--repeats`` passes over the same files, one process, and the ratio.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from alexnet.data import build_transforms, decode_image, normalizer_for
from alexnet.models import model_cfg


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    w, h = size
    for i in range(n):
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)  # smooth, photo-like content
        p = folder / f"{i:04d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    return paths


def median_rate(fn, items, repeats: int) -> float:
    fn(items[:8])  # warm-up
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(items)
        rates.append(len(items) / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", nargs=2, type=int, default=[500, 375])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="alexnet")
    ap.add_argument("--cifar", help="cifar10-train-jpeg.tar.gz: also time its first --n JPEGs with alexnet-cifar")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = model_cfg(args.model)
    _, h, w = cfg.input_size
    mean, std = cfg.mean, cfg.std
    plain_tf = T.Compose([T.Resize(cfg.resize), T.CenterCrop(cfg.resize), T.RandomCrop(h), T.RandomHorizontalFlip(),
                          T.ToTensor(), T.Normalize(mean, std)])
    ours_tf = build_transforms(cfg, train=True, aug="light")
    norm = normalizer_for(cfg)

    def plain(paths):  # the tutorials' way: PIL decode at full size, float per sample
        return torch.stack([plain_tf(Image.open(p).convert("RGB")) for p in paths])

    def ours(paths):
        batch = torch.stack([ours_tf(decode_image(str(p), target_short_side=ours_tf.decode_short_side))
                             for p in paths])
        return norm(batch)

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp), args.n, tuple(args.size))
        a, b = median_rate(plain, paths, args.repeats), median_rate(ours, paths, args.repeats)
        print(f"{args.n} JPEGs {args.size[0]}×{args.size[1]} → {args.model} train transform, 1 thread, "
              f"median of {args.repeats}:")
        print(f"  PIL + ToTensor + Normalize : {a:7.0f} img/s")
        print(f"  ours (turbo, uint8, batch) : {b:7.0f} img/s   ({b / a:.2f}×)")
        if args.cifar:
            if not Path(args.cifar).is_file():
                print(f"  {args.cifar}: missing; CIFAR comparison skipped")
                return
            blobs = []
            with tarfile.open(args.cifar) as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".jpg"):
                        blobs.append(tar.extractfile(m).read())
                        if len(blobs) == args.n:
                            break
            ccfg = model_cfg("alexnet-cifar")
            ptf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                             T.Normalize(ccfg.mean, ccfg.std)])
            otf, onorm = build_transforms(ccfg, train=True, aug="small"), normalizer_for(ccfg)
            a = median_rate(lambda bs: torch.stack([ptf(Image.open(io.BytesIO(x)).convert("RGB")) for x in bs]),
                            blobs, args.repeats)
            b = median_rate(lambda bs: onorm(torch.stack([otf(decode_image(x)) for x in bs])), blobs, args.repeats)
            print(f"{len(blobs)} CIFAR-10 JPEGs 32×32 → alexnet-cifar train transform:")
            print(f"  PIL + ToTensor + Normalize : {a:7.0f} img/s")
            print(f"  ours                       : {b:7.0f} img/s   ({b / a:.2f}×)")


if __name__ == "__main__":
    main()
