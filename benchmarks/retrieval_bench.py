"""Exact nearest-neighbour search over fc7 features, side by side (never part of the test run).

    python benchmarks/retrieval_bench.py                    # 100k × 4096 float16, 8 queries, k=8
    python benchmarks/retrieval_bench.py --n 20000 --device cuda

Compares, on the same random vectors and queries:

- ``knn`` (what ``alexnet index query`` uses): chunked matrix products ‖q‖² − 2q·x + ‖x‖² and a
  running top-k, over an in-memory float16 tensor;
- ``FeatureIndex.search``: the same over an index on disk (memory-mapped float16 shards);
- ``torch.cdist`` on the whole float32 matrix, then ``topk`` (needs N×D×4 bytes at once);
- a naive loop, one distance per database vector (timed on ``--naive-n`` vectors and
  extrapolated to N, clearly marked).

Every method's neighbours are checked against ``cdist``'s. Prints one aligned table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch


def timed(fn, repeat: int = 3):
    """Median seconds of ``repeat`` calls after one warm-up call, and the last result."""
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def compare(n: int, dim: int, queries: int, k: int, naive_n: int, device: str = "cpu", repeat: int = 3):
    """``(rows, knn seconds, device)``; rows are ``(method, seconds for all queries, same result as cdist)``."""
    args = argparse.Namespace(n=n, dim=dim, queries=queries, k=k, naive_n=naive_n, device=device)
    from alexnet.infer.retrieval import FeatureIndex, IndexWriter, knn

    g = torch.Generator().manual_seed(0)
    # ReLU features are non-negative and sparse-ish, like fc7's.
    db = torch.relu(torch.randn(args.n, args.dim, generator=g)).half()
    q = torch.relu(torch.randn(args.queries, args.dim, generator=g))
    dev = torch.device(args.device)
    rows = []

    t_cdist, (ref_d, ref_i) = timed(lambda: torch.cdist(q.to(dev), db.to(dev).float()).topk(args.k, largest=False), repeat)
    ref_i = ref_i.cpu()
    rows.append(("torch.cdist (whole float32 matrix)", t_cdist, True))

    t_knn, (_, i) = timed(lambda: knn(q, db, k=args.k, device=dev), repeat)
    rows.append(("knn: chunked matmul + running top-k", t_knn, torch.equal(i, ref_i)))

    tmp = tempfile.mkdtemp(prefix="alexnet-bench-")
    try:
        w = IndexWriter(tmp, {"format": 1, "dim": None, "count": 0, "position": 0, "shards": [],
                              "complete": False}, shard_size=32768)
        w.add(db, [f"#{j}" for j in range(args.n)], [0] * args.n, list(range(args.n)))
        w.finish()
        index = FeatureIndex(tmp)
        t_idx, (_, i) = timed(lambda: index.search(q, k=args.k, device=dev), repeat)
        rows.append(("FeatureIndex.search (memory-mapped shards)", t_idx, torch.equal(i, ref_i)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    m = min(args.naive_n, args.n)
    x = db[:m].float()

    def naive():
        out = []
        for qi in q:
            d = [float(torch.sqrt(((qi - x[j]) ** 2).sum())) for j in range(m)]
            out.append(sorted(range(m), key=d.__getitem__)[: args.k])
        return out

    t_naive, got = timed(naive, repeat=1)
    sub = torch.cdist(q, x).topk(args.k, largest=False).indices.tolist()
    rows.append((f"naive per-vector loop (timed on {m}, ×{args.n / m:.0f})", t_naive * args.n / m, got == sub))

    return rows, t_knn, dev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="database vectors")
    ap.add_argument("--dim", type=int, default=4096, help="dimensions (fc7: 4096)")
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--naive-n", type=int, default=5_000, help="vectors the naive loop is timed on")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    rows, t_knn, dev = compare(args.n, args.dim, args.queries, args.k, args.naive_n, args.device)
    print(f"{args.queries} queries, k={args.k}, {args.n:,} × {args.dim} float16 vectors, device {dev}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    w0 = max(len(r[0]) for r in rows)
    print(f"{'method':<{w0}}  {'seconds':>9}  {'per query ms':>12}  {'vs knn':>7}  same result")
    for name, t, ok in rows:
        print(f"{name:<{w0}}  {t:>9.3f}  {1000 * t / args.queries:>12.1f}  {t / t_knn:>6.1f}×  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
