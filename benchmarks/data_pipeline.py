"""Data pipeline throughput, side by side: the tutorials' PIL + ToTensor + Normalize per sample vs
ours (libjpeg-turbo decode, reduced-size decode for large JPEGs, uint8 transforms, normalisation
of the whole batch on the device). Never part of the test run.

    python benchmarks/data_pipeline.py                     # 300 generated 500×375 JPEGs (ImageNet-like)
    python benchmarks/data_pipeline.py --size 1600 1200    # phone-camera-sized photos
    python benchmarks/data_pipeline.py --cifar ~/data/cifar10-train-jpeg.tar.gz  # + real CIFAR JPEGs
    python benchmarks/data_pipeline.py --loaders [--photos DIR]   # whole loaders: tutorial vs ours vs cache (vs GPU)

Reports the median images/s of ``--repeats`` passes over the same files, one process, and the ratio.

``--loaders`` (`compare_loaders`) times whole training loaders per core (one thread, no worker
processes), from files to a normalised float batch: the tutorial's ``torchvision.datasets.ImageFolder``
+ PIL (``RandomResizedCrop`` + flip + ``ToTensor`` + ``Normalize``) + DataLoader; ours on the JPEG
folder (`build_dataset` + `build_loader`); ours on a ``raw`` cache of it (``alexnet data cache``,
built once, not timed); and, with CUDA, the GPU decode path. Photos: real CIFAR-10 images upscaled
to ~400×350 with added sensor-like noise (`make_realistic_photos`), so decode cost is that of
ImageNet-sized JPEGs — not real ImageNet photos, which this machine does not have.
"""

from __future__ import annotations

import argparse
import io
import os
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


def make_realistic_photos(folder: Path, n: int, size: tuple[int, int] = (400, 350), classes: int = 10,
                          source: str | None = os.environ.get("ALEXNET_BENCH_PHOTOS"), seed: int = 0) -> Path:
    """``folder/<class>/*.jpg``: ``n`` ImageNet-sized JPEGs (quality 90). Each is a real CIFAR-10
    image from ``source`` (a folder of class folders of JPEGs; default: the folder named by the
    environment variable ALEXNET_BENCH_PHOTOS, e.g. the unpacked CIFAR-10 ``train/``) when there is one, else smooth
    random content, upscaled (bicubic) to about ``size`` (±10 %), plus Gaussian noise (σ 6) so the
    JPEG carries photo-like detail (~100 KB each, like ImageNet's average)."""
    rng = np.random.default_rng(seed)
    srcs: list[Path] = []
    if source and Path(source).is_dir():
        dirs = sorted(d for d in Path(source).iterdir() if d.is_dir())[:classes]
        per = max(1, -(-n // max(1, len(dirs))))
        for d in dirs:
            srcs += sorted(d.glob("*.jpg"))[:per]
    w0, h0 = size
    for i in range(n):
        cls = f"c{i % classes}"
        w, h = int(w0 * rng.uniform(0.9, 1.1)), int(h0 * rng.uniform(0.9, 1.1))
        if srcs:
            img = Image.open(srcs[i % len(srcs)]).convert("RGB")
            cls = srcs[i % len(srcs)].parent.name
        else:
            img = Image.fromarray(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8))
        arr = np.asarray(img.resize((w, h), Image.BICUBIC), dtype=np.float32)
        arr = np.clip(arr + rng.normal(0, 6, arr.shape), 0, 255).astype(np.uint8)
        (folder / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / cls / f"{i:05d}.jpg", quality=90)
    return folder


def _pass(make_iter, finish=None) -> int:
    seen = 0
    for batch in make_iter():
        x = batch[0]
        if finish is not None:
            x = finish(x, *batch[3:])  # a `LitBatch`'s lighting goes to the normaliser
        seen += len(x)
    return seen


def interleaved_rates(passes: dict, repeats: int) -> dict:
    """``{name: fn() -> images}`` → median images/s of each over ``repeats`` rounds, after one
    warm-up round; the rounds interleave the contenders, so a change in the machine's load hits
    all of them alike (the build machine is shared)."""
    rates: dict = {k: [] for k in passes}
    for r in range(repeats + 1):
        for k, fn in passes.items():
            t = time.perf_counter()
            n = fn()
            if r:
                rates[k].append(n / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def compare_loaders(photos: Path, cache_dir: Path, *, model: str = "alexnet", batch: int = 64,
                    repeats: int = 5, gpu: bool | None = None, seed: int = 0) -> dict:
    """Per-core images/s of whole training loaders on ``photos`` (see the module docstring).
    Returns ``{"tutorial", "ours_jpeg", "cache", "cache_uint8", "gpu" (or None), "n", "cache_build_s",
    "crop", "threads"}`` (``--aug light`` on the cache) and the cache with ``--aug paper``:
    ``cache_paper`` / ``cache_paper_uint8`` (PCA lighting left to the normaliser, as training does)
    and ``cache_paper_lit_uint8`` (lighting added to the uint8 batch on the CPU, the way before);
    every rate includes normalisation to float on the CPU except the ``_uint8`` ones, which leave it
    to the training device, as training does."""
    import torchvision
    from torch.utils.data import DataLoader

    from alexnet.data import build_dataset, build_loader
    from alexnet.data.cache_build import build_cache

    torch.set_num_threads(1)
    cfg = model_cfg(model)
    _, h, w = cfg.input_size
    tut_tf = T.Compose([T.RandomResizedCrop(h), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])
    tut_ds = torchvision.datasets.ImageFolder(str(photos), transform=tut_tf)
    n = len(tut_ds)
    g = torch.Generator().manual_seed(seed)
    norm = normalizer_for(cfg)
    tf = build_transforms(cfg, train=True, aug="light")
    ours_ds = build_dataset(f"folder:{photos}", "train", tf, val_split=0)
    t = time.perf_counter()
    build_cache(f"folder:{photos}", cache_dir, short_side=cfg.resize, val_split=0, workers=1, progress=False)
    build_s = time.perf_counter() - t
    cds = build_dataset(f"cache:{cache_dir}", "train", tf)
    assert cds.fast_plan() is not None, "the cache's size must be the model's resize for the batched path"
    cache_loader = lambda: build_loader(cds, batch_size=batch, train=True, seed=seed, pin_memory=False)  # noqa: E731
    pds = build_dataset(f"cache:{cache_dir}", "train", build_transforms(cfg, train=True, aug="paper"))
    paper_loader = lambda defer: lambda: build_loader(pds, batch_size=batch, train=True, seed=seed,  # noqa: E731
                                                      pin_memory=False, defer_lighting=defer)
    passes = {
        "tutorial": lambda: _pass(lambda: DataLoader(tut_ds, batch_size=batch, shuffle=True, num_workers=0,
                                                     generator=g)),
        "ours_jpeg": lambda: _pass(lambda: build_loader(ours_ds, batch_size=batch, train=True, seed=seed,
                                                        pin_memory=False), norm),
        "cache": lambda: _pass(cache_loader, norm),
        "cache_uint8": lambda: _pass(cache_loader),
        "cache_paper": lambda: _pass(paper_loader(True), norm),
        "cache_paper_uint8": lambda: _pass(paper_loader(True)),
        "cache_paper_lit_uint8": lambda: _pass(paper_loader(False)),
    }
    if (gpu is None and torch.cuda.is_available()) or gpu:
        passes["gpu"] = gpu_pass(photos, cfg, batch, seed)
    r = interleaved_rates(passes, repeats)
    tutorial, ours, cache, cache_u8, gpu_rate = (r["tutorial"], r["ours_jpeg"], r["cache"], r["cache_uint8"],
                                                 r.get("gpu"))
    return {"n": n, "crop": f"{h}×{w}", "threads": 1, "tutorial": tutorial, "ours_jpeg": ours, "cache": cache,
            "cache_uint8": cache_u8, "gpu": gpu_rate, "cache_build_s": build_s,
            **{k: r[k] for k in ("cache_paper", "cache_paper_uint8", "cache_paper_lit_uint8")}}


def gpu_pass(photos: Path, cfg, batch: int, seed: int = 0):
    """One timed pass of the GPU data path (JPEG bytes read on the CPU, decoded with nvJPEG and
    augmented on CUDA, normalised there), as a function for `interleaved_rates`."""
    from alexnet.data import build_dataset
    from alexnet.data.gpu import DeviceBatchLoader

    dev = torch.device("cuda")
    ds = build_dataset(f"folder:{photos}", "train", build_transforms(cfg, train=True, aug="paper"), val_split=0)
    norm = normalizer_for(cfg).to(dev)
    loader = DeviceBatchLoader(ds, batch_size=batch, train=True, seed=seed, device=dev, workers=0)

    def run() -> int:
        n = _pass(lambda: loader, norm)
        torch.cuda.synchronize()
        return n

    return run


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
    ap.add_argument("--loaders", action="store_true", help="time whole loaders: tutorial vs ours vs cache (vs GPU)")
    ap.add_argument("--photos", help="with --loaders: a folder of class folders of JPEGs (default: generated)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.loaders:
        with tempfile.TemporaryDirectory() as tmp:
            photos = Path(args.photos) if args.photos else make_realistic_photos(Path(tmp) / "photos", args.n)
            r = compare_loaders(photos, Path(tmp) / "cache", model=args.model, repeats=args.repeats)
        print(f"{r['n']} JPEGs → {args.model} training batches ({r['crop']}), 1 thread, median of {args.repeats}:")
        for k in ("tutorial", "ours_jpeg", "cache", "cache_uint8", "cache_paper", "cache_paper_uint8",
                  "cache_paper_lit_uint8", "gpu"):
            if r[k] is not None:
                print(f"  {k:<21} {r[k]:8.0f} img/s  {r[k] / r['tutorial']:6.1f}×")
        print(f"  --aug paper / --aug light on the cache (uint8 out): "
              f"{r['cache_paper_uint8'] / r['cache_uint8']:.2f}× "
              f"(lighting on the uint8 batch: {r['cache_paper_lit_uint8'] / r['cache_uint8']:.2f}×)")
        print(f"  (cache built once in {r['cache_build_s']:.1f} s, not timed above)")
        return
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
