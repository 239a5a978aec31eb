"""``alexnet train`` and ``alexnet evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ORDER = 10


def _percentages(text: str) -> list[float]:
    """``80,85,90`` → ``[80.0, 85.0, 90.0]``; ``""`` or ``none`` → ``[]``."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        vals = [float(t) for t in text.replace("%", "").split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected accuracies in percent like 80,85,90, got {text!r}") from None
    if not all(0 < v <= 100 for v in vals):
        raise argparse.ArgumentTypeError(f"accuracies must be in (0, 100] percent, got {text!r}")
    return vals


def _kv(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    if "," in v and not v.lstrip().startswith(("[", "{", '"')):
        v = f"[{v}]"  # widths=32,64,96,96,64
    try:
        val = json.loads(v)
    except ValueError:
        val = text.split("=", 1)[1]
    return k.strip(), val


def register(sub: argparse._SubParsersAction) -> None:
    from ..engine.config import AUGS, OPTIMIZERS, RECIPES, SCHEDULERS

    p = sub.add_parser(
        "train", help="train a model (default: alexnet-mnist on the embedded digits, ~20 s on 2 CPU cores)",
        description="Train a model. A recipe sets every field; flags override it. Under torchrun "
                    "(torchrun --nproc_per_node=N -m alexnet train …) it runs DDP; -b is per process.")
    a = p.add_argument
    a("--recipe", help=f"named recipe: {', '.join(RECIPES)} (default: one that suits the model: digits for "
                       f"alexnet-mnist, cifar10 for alexnet-cifar, photos for the ImageNet-sized models, "
                       f"finetune with --weights)")
    a("--model", help="model name (see `alexnet models`; default alexnet-mnist, or the model --weights were made for)")
    a("--weights", metavar="SPEC", help="start from these weights: a torchvision name (AlexNet_Weights.IMAGENET1K_V1, "
                                        "IMAGENET1K_V1), a .pth state_dict, or a run directory of ours")
    a("--freeze", metavar="LAYER", help="freeze LAYER and everything before it (features, conv1…conv5, fc6, fc7)")
    a("--lr-backbone-scale", type=float, metavar="S",
      help="rate multiplier for every trained layer but the last (finetune recipe: 0.1)")
    a("--data", help="dataset spec: digits, cifar10:/p, mnist:/p, imagenet:/p, folder:/p, list:/p/train.txt, or a path")
    a("--data-path", help="dataset root; combined with the recipe's dataset kind (e.g. cifar10) or used as a folder/list")
    a("--model-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
      help="extra model argument, e.g. width=0.5, init=caffe, dropout=0 (repeatable)")
    a("--val-split", type=float,
      help="validation fraction when the data has no validation split (0: every image trains, no validation)")
    a("--train-subset", type=int, metavar="N",
      help="train on a stratified sample of N training images (the same N for every seed)")
    a("--download", action="store_true", default=None, help="download CIFAR-10/MNIST if missing (needs internet)")
    a("--epochs", type=int)
    a("-b", "--batch-size", type=int, help="batch size per process (the global batch is -b × processes)")
    a("--global-batch", type=int, metavar="N",
      help="keep this global batch under torchrun: each process takes N / processes (the paper recipe: 128)")
    a("--scale-lr", action="store_true", default=None,
      help="-b per process and the rate × the number of processes (linear scaling)")
    a("--opt", "--optimizer", dest="optimizer", choices=OPTIMIZERS,
      help="sgd (PyTorch's), sgd-paper (§5's update exactly: the rate inside the momentum), adam, adamw")
    a("--lr", type=float, help="peak learning rate")
    a("--momentum", type=float)
    a("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    a("--wd", "--weight-decay", dest="weight_decay", type=float)
    a("--bias-lr-mult", type=float, help="biases learn this many times faster (paper recipe: 2, the authors' code)")
    a("--bias-weight-decay", type=float, help="weight decay of biases (default: --wd; paper recipe: 0)")
    a("--label-smoothing", type=float)
    a("--lr-scheduler", help=f"{', '.join(SCHEDULERS)} (torchvision's steplr and cosineannealinglr accepted)")
    a("--lr-step-size", type=int, help="step: epochs between drops")
    a("--lr-gamma", type=float, help="step/plateau: factor per drop")
    a("--lr-patience", type=int, help="plateau: epochs without improvement before a drop")
    a("--lr-max-drops", type=int, help="plateau: at most this many drops (paper: 3)")
    a("--lr-warmup-epochs", type=float)
    a("--clip-grad-norm", type=float)
    a("--lookahead", action=argparse.BooleanOptionalAction, default=None,
      help="every 5 steps move the weights to their running average (airbench; cifar10-fast recipe)")
    a("--aug", choices=AUGS, help="augmentation: paper (crops, flips, PCA lighting), light, small, none, auto; "
                                  "with --resident: flip, flip-translate, none")
    a("--resident", action=argparse.BooleanOptionalAction, default=None,
      help="decode the images once into memory (uint8) and augment whole batches there (small images)")
    a("--translate", type=int, metavar="PX", help="--aug flip-translate: shift by up to PX pixels (default 2)")
    a("--pca", help="pca.json from `alexnet data pca-stats` (default: ImageNet's eigenvalues/vectors)")
    a("--pca-scale", choices=("sqrt", "eigval"),
      help="PCA lighting: alpha × sqrt(eigenvalue) (the authors' code, default) or × eigenvalue (the paper's text)")
    a("--normalize", choices=("meanstd", "pixelmean"),
      help="the model's mean/std, or the paper's mean pixel measured on the training data (or --pca's pca.json)")
    a("-j", "--workers", type=int, help="data loading worker processes")
    a("--data-device", help="where training images are decoded and augmented: cpu (default) or cuda — the "
                            "workers then only read JPEG bytes; decode (nvJPEG), crops, flips and PCA lighting run "
                            "in batches on the GPU")
    a("--ten-crop", action=argparse.BooleanOptionalAction, default=None, help="final ten-crop evaluation")
    a("--device", help="auto, cpu, cuda, cuda:N")
    a("--amp", choices=("auto", "off", "bf16", "fp16"), help="mixed precision (auto: fastest correct)")
    a("--channels-last", choices=("auto", "on", "off"))
    a("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    a("--deterministic", action=argparse.BooleanOptionalAction, default=None,
      help="deterministic kernels (bit-exact resume)")
    a("--seed", type=int)
    a("--output-dir", help="where run directories go (default: runs)")
    a("--name", help="run directory name (default: <model>-<data>-<time>)")
    a("--checkpoint-every", type=int, metavar="N", help="also checkpoint every N steps")
    a("--print-freq", type=int, metavar="N", help="also print a line every N steps")
    a("--report-at", type=_percentages, metavar="P,P,…",
      help="print the wall time at which validation top-1 first reaches each of these accuracies (%%)")
    a("--max-steps", type=int, metavar="N",
      help="stop after N optimiser steps in total (smoke tests); this invocation only, not kept for --resume")
    a("--max-bad-fraction", type=float, metavar="F",
      help="more unreadable files than this share (default 0.05) ends the run with a warning and exit 1")
    a("--resume", metavar="RUN_DIR", help="continue a run from its checkpoints/last.pt (mid-epoch)")
    a("--test-only", action="store_true", default=None, help="only evaluate (with --resume)")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="top-1/top-5 accuracy and error of trained weights, centre and ten-crop")
    p.add_argument("weights", help="a run directory or weights.safetensors")
    p.add_argument("--data", help="dataset spec (default: the run's own data)")
    p.add_argument("--split", help="train, val or all (default: val for the run's own data; all for a --data "
                                   "folder or list without a validation part)")
    p.add_argument("--ten-crop", action="store_true", help="also ten-crop (§4.1), side by side")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("-j", "--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    p.add_argument("--report", metavar="DIR", help="write a report: per-class accuracy, confusion matrix, mistakes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_evaluate)


FIELDS_FROM_FLAGS = ("model", "weights", "freeze", "lr_backbone_scale", "data", "val_split", "train_subset",
                     "download", "epochs", "batch_size", "global_batch", "scale_lr", "optimizer", "lr", "momentum",
                     "nesterov", "weight_decay", "bias_lr_mult", "bias_weight_decay", "pca_scale", "label_smoothing",
                     "lr_scheduler", "lr_step_size", "lr_gamma",
                     "lr_patience", "lr_max_drops", "lr_warmup_epochs", "clip_grad_norm", "aug", "pca",
                     "lookahead", "resident", "translate", "report_at",
                     "normalize", "workers", "data_device", "ten_crop", "device", "amp", "channels_last", "compile",
                     "deterministic", "seed", "output_dir", "name", "checkpoint_every", "print_freq",
                     "max_steps", "max_bad_fraction", "resume", "test_only")


def config_from_args(args: argparse.Namespace):
    from ..core.errors import UserError
    from ..engine.config import RECIPES, make_config, resume_config

    over = {k: getattr(args, k) for k in FIELDS_FROM_FLAGS if getattr(args, k, None) is not None}
    if args.model_arg:
        over["model_kwargs"] = dict(args.model_arg)
    if args.resume:
        return resume_config(args.resume, **over)
    if args.weights and "model" not in over:  # the model the weights were made for
        from ..models.pretrained import model_for_weights

        made_for = model_for_weights(args.weights)
        if made_for:
            over["model"] = made_for[0]
            if made_for[1] and "model_kwargs" not in over:
                over["model_kwargs"] = made_for[1]
    recipe = args.recipe
    if recipe is None:
        from ..engine.config import default_recipe
        from ..models import model_cfg

        if "model" in over:
            model_cfg(over["model"])  # an unknown model is the error to report, not the recipe's data
            if "model_kwargs" in over:  # likewise a bad --model-arg
                from ..models.registry import check_model_kwargs

                check_model_kwargs(over["model"], over["model_kwargs"])

        recipe, why = default_recipe(over.get("model"), args.weights)
        if "model" not in over and RECIPES[recipe].get("model"):
            over["model"] = RECIPES[recipe]["model"]
        print(f"recipe {recipe} ({why}; --recipe NAME to choose another)")
    if recipe not in RECIPES:
        return make_config(recipe)  # raises the one-line error
    if args.data_path:
        kind = over.get("data") or RECIPES[recipe].get("data", "")
        if kind and ":" not in kind and kind not in ("digits",) and not Path(kind).exists():
            over["data"] = f"{kind}:{args.data_path}"
        else:
            over["data"] = args.data_path
    data = over.get("data", RECIPES[recipe].get("data", "digits"))
    if data in ("cifar10", "mnist", "imagenet", "folder", "list"):
        raise UserError(f"dataset {data!r} needs a location: --data-path PATH (or --data {data}:PATH)")
    return make_config(recipe, **over)


def run_train(args: argparse.Namespace) -> int:
    from ..engine import fit

    res = fit(config_from_args(args))
    return 1 if res.too_many_bad else 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate_weights

    collector = None
    if args.report:
        from ..infer.report import ReportCollector

        collector = ReportCollector()
    res = evaluate_weights(args.weights, args.data, split=args.split, ten_crop=args.ten_crop,
                           batch_size=args.batch_size, workers=args.workers, device=args.device, amp=args.amp,
                           on_batch=collector)
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
        import sys

        listed = "; ".join(f"{p} ({r})" for p, r in list(bad.items())[:5]) + ("; …" if len(bad) > 5 else "")
        print(f"warning: {len(bad)} file{'s' if len(bad) != 1 else ''} could not be read and "
              f"{'were' if len(bad) != 1 else 'was'} left out of the scores: {listed}", file=sys.stderr)
    if collector is not None:
        collector.dataset = res["centre_dataset"]
        collector.write(args.report, res["meta"]["classes"])
        if not args.json:
            print(f"report written to {args.report}/ (metrics.json, per_class.csv, confusion.csv/png, mistakes.png)")
    return 1 if bad else 0
