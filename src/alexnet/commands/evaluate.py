"""``alexnet evaluate``: top-1/top-5 accuracy and error of trained weights (`alexnet.infer.evaluate_weights`)."""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 11  # right after train


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="top-1/top-5 accuracy and error of trained weights, centre and ten-crop")
    p.add_argument("weights", help="a run directory or weights.safetensors")
    p.add_argument("--data", help="dataset spec (default: the run's own data)")
    p.add_argument("--split", help="train, val, test or all (default: val for the run's own data; all for a "
                                   "--data folder or list without a validation part; test: a folder's test/ "
                                   "where it has one beside val/, else val)")
    p.add_argument("--ten-crop", action="store_true", help="also ten-crop (§4.1), side by side")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("-j", "--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    p.add_argument("--report", metavar="DIR", help="write a report: per-class accuracy, confusion matrix, mistakes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..core.weight_files import load_meta
    from ..data.kinds import nothing_there

    load_meta(args.weights)  # a wrong path, or --data that is not there: one line before torch loads
    if args.data is not None and nothing_there(args.data):
        raise UserError(nothing_there(args.data))
    from ..infer.evaluation import evaluate_weights

    collector = None
    if args.report:
        from ..infer.report import ReportCollector

        _check_report_dir(args.report)  # before the evaluation, not after it
        collector = ReportCollector()
    res = evaluate_weights(args.weights, args.data, split=args.split, ten_crop=args.ten_crop,
                           batch_size=args.batch_size, workers=args.workers, device=args.device, amp=args.amp,
                           on_batch=collector)
    if not res["centre"].n:  # every image bad: no score to show, nor a report
        why = _listed(res.get("bad_files") or {}, 3)
        print(f"error: no image of {res['data']} ({res['split']}) could be read, so nothing was scored"
              f"{': ' + why if why else ''}", file=sys.stderr)
        return 1
    crops = "ten-crop" if res["mirror"] else "five-crop"
    rows = [("centre crop", res["centre"])] + ([(crops, res["ten_crop"])] if res["ten_crop"] else [])
    top5 = len(res["meta"]["classes"]) > 5  # top-5 of five classes or fewer is always 100 %
    if args.json:
        keys = ("centre_crop", "ten_crop")  # ten_crop holds five crops when "mirrored_crops" is false
        print(json.dumps({"data": res["data"], "model": res["meta"]["model"], "split": res["split"],
                          **({"mirrored_crops": res["mirror"]} if res["ten_crop"] else {}),
                          **{k: r.to_dict() for k, (_, r) in zip(keys, rows)}}, indent=2))
    else:
        print(f"{res['meta']['model']} on {res['data']} ({res['split']}, {rows[0][1].n} images)")
        head = ("", "top-1 acc", "top-1 err", "top-5 acc", "top-5 err", "loss")
        body = [(n, f"{r.top1:.2f}%", f"{r.top1_error:.2f}%", f"{r.top5:.2f}%", f"{r.top5_error:.2f}%", f"{r.loss:.4f}")
                for n, r in rows]
        if not top5:
            head, body = head[:3] + head[5:], [b[:3] + b[5:] for b in body]
        w = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        for row in [head, *body]:
            print("  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)))
    bad = res.get("bad_files") or {}
    if bad:
        print(f"warning: {len(bad)} file{'s' if len(bad) != 1 else ''} could not be read and "
              f"{'were' if len(bad) != 1 else 'was'} left out of the scores: {_listed(bad, 5)}", file=sys.stderr)
    if collector is not None:
        from ..core.io import WriteError

        collector.dataset = res["centre_dataset"]
        try:
            collector.write(args.report, res["meta"]["classes"])
        except OSError as e:  # the disk filled or the folder went away meanwhile: one line, exit 2
            raise WriteError(e.filename or args.report, e) from None
        if not args.json:
            print(f"report written to {args.report}/ (metrics.json, per_class.csv, confusion.csv/png, mistakes.png)")
    return 1 if bad else 0


def _listed(bad: dict[str, str], most: int) -> str:
    """The first ``most`` bad files with their reasons, on one line."""
    return "; ".join(f"{p} ({r})" for p, r in list(bad.items())[:most]) + ("; …" if len(bad) > most else "")


def _check_report_dir(report: str) -> None:
    """``--report DIR`` must be a folder this process can write: made now, or one line (exit 2)."""
    import os
    from pathlib import Path

    from ..core.errors import UserError

    out = Path(report)
    if out.exists() and not out.is_dir():
        raise UserError(f"--report {report}: is a file; give a folder for the report's files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--report {report}: cannot make the folder ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--report {report}: the folder is not writable")
