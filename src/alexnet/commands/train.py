"""``alexnet train``: a recipe, flags on top of it, a `TrainConfig`, then `alexnet.engine.fit`.

Every flag sets the `TrainConfig` field of its name (``--lr-gamma`` → ``lr_gamma``), except the few
in `FLAGS_NOT_COPIED`, which `config_from_args` handles itself; the fields no flag of their name sets
are in `FIELDS_NOT_COPIED`. So a new field needs one new flag here and nothing else. ``alexnet train -h`` lists them in sections.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..data.kinds import KINDS, KINDS_NEEDING_PATH, nothing_there  # plain Python: no torch before a mistake is said
from .models import unknown_model

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


def _names(text: str) -> list[str]:
    """``mlflow`` or ``a,b`` → a list of names; ``""`` or ``none`` → ``[]``."""
    return [t.strip() for t in text.split(",") if t.strip() and t.strip().lower() != "none"]


def key_value(text: str) -> tuple[str, object]:
    """``--model-arg KEY=VALUE``: ``width=0.5`` → (width, 0.5), ``widths=32,64`` → a list; other text stays text."""
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
    p = sub.add_parser(
        "train", help="train a model (default: alexnet-mnist on the embedded digits, seconds on 2 CPU cores)",
        description="Train a model. A recipe sets every field; flags override it. Under torchrun "
                    "(torchrun --nproc_per_node=N -m alexnet train …) it runs DDP; -b is per process.")
    for section, add_flags in FLAG_SECTIONS:
        add_flags(p.add_argument_group(section))
    p.set_defaults(func=run_train)


def _model_flags(g: argparse._ArgumentGroup) -> None:
    from ..engine.config import RECIPES

    a = g.add_argument
    a("--recipe", help=f"named recipe: {', '.join(RECIPES)} (default: one that suits the model: digits for "
                       f"alexnet-mnist, cifar10 for alexnet-cifar, photos for the ImageNet-sized models, "
                       f"finetune with --weights; without a model, one that suits the data: photos, small "
                       f"colour or small grey images, cifar10, imagenet)")
    a("--model", help="model name (see `alexnet models`; default: the recipe's, alexnet-mnist on the digits, or "
                      "the model --weights were made for)")
    a("--model-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
      help="extra model argument, e.g. width=0.5, init=caffe, dropout=0 (repeatable)")
    a("--weights", metavar="SPEC", help="start from these weights: a torchvision name (AlexNet_Weights.IMAGENET1K_V1, "
                                        "IMAGENET1K_V1), a .pth state_dict, or a run directory of ours")
    a("--freeze", metavar="LAYER", help="freeze LAYER and everything before it (features, conv1…conv5, fc6, fc7)")
    a("--lr-backbone-scale", type=float, metavar="S", help="the rate × S for every layer but the last (finetune: 0.1)")


def _data_flags(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--data", help="dataset spec: digits, cifar10:/p, mnist:/p, imagenet:/p, folder:/p, list:/p/train.txt, "
                     "cache:/p, shards:/p (or shards:s3://…), or a path")
    a("--data-path", help="dataset root; combined with the recipe's dataset kind (e.g. cifar10) or used as a folder/list")
    a("--val-split", type=float,
      help="validation fraction when the data has no validation split (0: every image trains, no validation)")
    a("--train-subset", type=int, metavar="N",
      help="train on a stratified sample of N training images (the same N for every seed; 0: all of them)")
    a("--download", action="store_true", default=None, help="download CIFAR-10/MNIST if missing (needs internet)")
    a("-j", "--workers", type=int, help="data loading worker processes")
    a("--data-device", help="where training images are decoded and augmented: cpu (default) or cuda — the "
                            "workers then only read JPEG bytes; decode (nvJPEG), crops, flips and PCA lighting run "
                            "in batches on the GPU")
    a("--resident", action=argparse.BooleanOptionalAction, default=None,
      help="decode the images once into memory (uint8) and augment whole batches there (small images)")


def _optimisation_flags(g: argparse._ArgumentGroup) -> None:
    from ..engine.config import OPTIMIZERS

    a = g.add_argument
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
    a("--clip-grad-norm", type=float)
    a("--lookahead", action=argparse.BooleanOptionalAction, default=None,
      help="every 5 steps move the weights to their running average (airbench; cifar10-fast recipe)")
    a("--ema", type=float, metavar="DECAY",
      help="also keep an exponential moving average of the weights with this decay per step (e.g. 0.999; timm's "
           "warm-up), validated beside them each epoch; the better one becomes weights.safetensors (0: off)")
    a("--time-budget", metavar="DURATION", help="90s, 15m, 2h, 1h30m: measure this machine's speed and plan the epochs "
                                                "and schedule so the whole run, final evaluation included, ends within it")
    a("--train-epochs", type=float, metavar="X",
      help="train X epochs, a fraction allowed (airbench94: 9.9), instead of --epochs: the run's epochs are "
           "ceil(X) and the schedule, lookahead and run end after ceil(X × steps per epoch) steps (0: off)")


def _schedule_flags(g: argparse._ArgumentGroup) -> None:
    from ..engine.config import SCHEDULERS

    a = g.add_argument
    a("--lr-scheduler", help=f"{', '.join(SCHEDULERS)} (torchvision's steplr and cosineannealinglr accepted)")
    a("--lr-step-size", type=int, help="step: epochs between drops")
    a("--lr-gamma", type=float, help="step/plateau: factor per drop")
    a("--lr-patience", type=int, help="plateau: epochs without improvement before a drop")
    a("--lr-max-drops", type=int, help="plateau: at most this many drops (paper: 3)")
    a("--lr-warmup-epochs", type=float)


def _augmentation_flags(g: argparse._ArgumentGroup) -> None:
    from ..engine.config import AUGS

    a = g.add_argument
    a("--aug", choices=AUGS, help="augmentation: paper (crops, flips, PCA lighting), light, small, none, auto; "
                                  "with --resident: flip, flip-translate, none")
    a("--translate", type=int, metavar="PX", help="--aug flip-translate: shift by up to PX pixels (default 2)")
    a("--pca", help="pca.json from `alexnet data pca-stats` (default: ImageNet's eigenvalues/vectors)")
    a("--pca-scale", choices=("sqrt", "eigval"),
      help="PCA lighting: alpha × sqrt(eigenvalue) (the authors' code, default) or × eigenvalue (the paper's text)")
    a("--normalize", choices=("meanstd", "pixelmean"),
      help="the model's mean/std, or the paper's mean pixel measured on the training data (or --pca's pca.json)")


def _evaluation_flags(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--ten-crop", action=argparse.BooleanOptionalAction, default=None, help="final ten-crop evaluation")
    a("--report-at", type=_percentages, metavar="P,P,…",
      help="print the wall time at which validation top-1 first reaches each of these accuracies (%%)")
    a("--print-freq", type=int, metavar="N", help="also print a line every N steps")
    a("--log", type=_names, metavar="NAME[,NAME]",
      help="also log the run to: mlflow (parameters, metrics per epoch, weights and figures; "
           'pip install "alexnet[mlflow]"); none: no tracker')
    a("--mlflow-uri", metavar="URI", help="--log mlflow's tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                          "a local store OUTPUT_DIR/mlflow.db beside the runs)")
    a("--tta", type=int, choices=(0, 1, 2), metavar="LEVEL",
      help="final evaluation also with airbench's test-time augmentation, logits averaged: 1 the image and its "
           "mirror, 2 also each shifted by one pixel up-left and down-right (6 views, airbench94); 0: off")


def _speed_flags(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--device", help="auto, cpu, cuda, cuda:N")
    a("--amp", choices=("auto", "off", "bf16", "fp16"), help="mixed precision (auto: fastest correct)")
    a("--channels-last", choices=("auto", "on", "off"))
    a("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    a("--deterministic", action=argparse.BooleanOptionalAction, default=None,
      help="deterministic kernels (bit-exact resume)")


def _run_flags(g: argparse._ArgumentGroup) -> None:
    a = g.add_argument
    a("--seed", type=int)
    a("--output-dir", help="where run directories go (default: runs)")
    a("--name", help="run directory name (default: <model>-<data>-<time>)")
    a("--checkpoint-every", type=int, metavar="N", help="also checkpoint every N steps")
    a("--max-steps", type=int, metavar="N", help="stop after N optimiser steps in total (smoke tests); this "
                                                 "invocation only, not kept for --resume")
    a("--max-bad-fraction", type=float, metavar="F",
      help="more unreadable files than this share (default 0.05) ends the run with a warning and exit 1")
    a("--resume", metavar="RUN_DIR", help="continue a run from its checkpoints/last.pt (mid-epoch); auto (with "
                                          "--name): continue the run NAME if it has a checkpoint, else start it — "
                                          "a job that torchrun restarts or a scheduler requeues resumes on its own")
    a("--test-only", action="store_true", default=None, help="only evaluate (with --resume)")
    a("--config", dest="config_file", metavar="FILE",
      help="start from FILE's fields: a YAML file (keys as in config.json; `alexnet recipes show NAME` prints "
           "one), or a run's config.json or directory to train it again exactly as a new run; flags override it")


# The sections of `alexnet train -h`, in order.
FLAG_SECTIONS = (
    ("model and starting weights", _model_flags),
    ("data", _data_flags),
    ("optimisation", _optimisation_flags),
    ("learning-rate schedule", _schedule_flags),
    ("augmentation and preprocessing", _augmentation_flags),
    ("evaluation and reporting", _evaluation_flags),
    ("precision and speed", _speed_flags),
    ("run directory and resume", _run_flags),
)

# Flags not copied into the `TrainConfig` field of their name: what config_from_args does with each.
FLAGS_NOT_COPIED = {
    "recipe": "picks the recipe the fields start from (saved as the `recipe` field by make_config)",
    "model_arg": "KEY=VALUE pairs gathered into the `model_kwargs` field",
    "data_path": "combined with the recipe's dataset kind into the `data` field",
    "config_file": "the file read (engine/config_file.py): its fields start the config; its path is recorded",
}
# `TrainConfig` fields no flag of their name sets: how they are set instead.
FIELDS_NOT_COPIED = {
    "model_kwargs": "set by --model-arg KEY=VALUE (repeatable)",
    "recipe": "set by --recipe through make_config",
    "processes": "recorded at the start of a run: how many processes train it (torchrun's WORLD_SIZE)",
    "pixel_mean": "measured at the start of a pixelmean run, or read from --pca's pca.json",
    "precision": "decided once at the start of a run from --amp (engine/precision.py) and kept on resume",
    "precision_reason": "why that precision was chosen, recorded with it",
    "config_file": "set by --config to the file the fields came from",
    "budget_plan": "planned once at the start of a run from --time-budget (engine/budget.py) and kept on resume",
    "resident_device": "decided once at the start of a --resident run (the device, its free memory), kept on resume",
}


def fields_from_flags() -> tuple[str, ...]:
    """The `TrainConfig` fields copied from the flags of the same name: all but `FIELDS_NOT_COPIED`."""
    import dataclasses

    from ..engine.config import TrainConfig

    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in FIELDS_NOT_COPIED)


def _flag_overrides(args: argparse.Namespace) -> dict:
    """The `TrainConfig` fields the command line gives (``--model-arg`` gathered into ``model_kwargs``)."""
    over = {k: getattr(args, k) for k in fields_from_flags() if getattr(args, k, None) is not None}
    if args.model_arg:
        over["model_kwargs"] = dict(args.model_arg)
    return over


def check_flags(args: argparse.Namespace) -> dict:
    """Every value the flags give, checked right after parsing and before torch is imported, so that
    a mistake is answered in well under a second (`TrainConfig.check_values`, plain Python): the
    recipe's fields (or a resumed run's ``config.json``) with ``--config``'s and the flags on top.
    What needs the model registry, the weights or the data is checked later, in `config_from_args`
    and `fit`. Returns the fields ``--config``'s file gives (``{}`` without one)."""
    from ..core.errors import UserError
    from ..engine.budget import check_resume_flags
    from ..engine.config import PER_INVOCATION, TrainConfig, config_values, read_run_config
    from ..engine.recipes import default_recipe
    from ..engine.config_file import read_config_file

    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1 (leave it out to train every epoch), not {args.max_steps}")
    if args.data_path and args.data is not None and (":" in args.data or args.data == "digits"
                                                     or Path(args.data).exists()):
        raise UserError(f"--data {args.data} and --data-path {args.data_path} both name the data: give "
                        f"--data-path alone, or --data KIND with --data-path (e.g. --data folder --data-path DIR)")
    why = (args.data is not None and not args.data_path and nothing_there(args.data)) or unknown_model(args.model or "")
    if why:  # a mistyped folder or model: said before torch loads
        raise UserError(why)
    over = _flag_overrides(args)
    if args.resume and args.config_file:
        raise UserError("--config starts a new run from a file; --resume continues a run from its own "
                        "config.json: give one of them")
    if args.resume and args.resume != "auto":  # auto: a new run's values until fit finds a checkpoint
        base = read_run_config(Path(args.resume).expanduser() / "config.json")
        if base is None:
            return {}  # not a run directory itself: resume_config says which
        for k in PER_INVOCATION:
            base.pop(k, None)
        check_resume_flags(base, over)  # a run planned for a --time-budget keeps its plan
        TrainConfig.from_dict({**base, **over}).check_values()
        return {}
    cf = read_config_file(args.config_file) if args.config_file else None
    start = cf.start_values({**over, **({"data": args.data_path} if args.data_path else {})}) if cf else {}
    given = {**start, **over}
    recipe = args.recipe or start.get("recipe") or default_recipe(given.get("model"), given.get("weights"),
                                                                  given.get("data"))[0]
    if cf:
        cf.check_values(recipe)
        data = "" if args.data_path or "data" in over else str(start.get("data", ""))
        if data.rpartition(":")[2] == "DATA" and not Path("DATA").exists():  # a committed run's, its path left out
            raise UserError(f"{args.config_file}: its data is {data!r}, the placeholder a committed run's config "
                            "has for its data's folder: add --data-path PATH")
    config_values(recipe, file_values=start, **over).check_values()
    return start


def _check_weights_first(spec: str, model: str | None) -> None:
    """A ``--weights`` that names a file or run directory is read before the data is asked for, so
    that its mistake (no such file, not a checkpoint, a training checkpoint) is the one reported."""
    if Path(spec).expanduser().exists() or spec.endswith((".pth", ".pt", ".safetensors")) or os.sep in spec:
        from ..models.pretrained import read_pretrained

        read_pretrained(spec, model, progress=False)


def config_from_args(args: argparse.Namespace):
    from ..core.errors import UserError
    from ..engine.config import RECIPES, make_config, resume_config
    from ..engine.flag_notes import check_pca_scale_flag, start_notes

    start = check_flags(args)  # the --config file's fields, under the flags
    over = _flag_overrides(args)
    if args.resume and args.resume != "auto":
        return resume_config(args.resume, **over)
    if over.get("aug", start.get("aug")):  # typed or in the file: checked at once, before torch (else below)
        check_pca_scale_flag(args.pca_scale, over.get("aug", start.get("aug")))
    weights = over.get("weights", start.get("weights"))
    if weights and "model" not in {**start, **over}:  # the model the weights were made for
        from ..models.pretrained import model_for_weights

        made_for = model_for_weights(weights)
        if made_for:
            over["model"] = made_for[0]
            if made_for[1] and "model_kwargs" not in {**start, **over}:
                over["model_kwargs"] = made_for[1]
    recipe, notes = args.recipe or start.get("recipe"), []  # notes: printed by rank 0 only
    if recipe is None:
        from ..engine.recipes import default_recipe
        from ..models import model_cfg

        given = {**start, **over}
        if "model" in given:
            model_cfg(given["model"])  # an unknown model is the error to report, not the recipe's data
            if "model_kwargs" in given:  # likewise a bad --model-arg
                from ..models.registry import check_model_kwargs

                check_model_kwargs(given["model"], given["model_kwargs"])

        image = None
        if "model" not in given and not weights:  # the data tell: photos, small colour or small grey images
            from ..data.datasets import first_image

            data = given.get("data")
            spec = (f"{data}:{args.data_path}" if data in KINDS else args.data_path) if args.data_path else data
            if spec and spec not in KINDS:  # a kind alone (digits, or one that needs a location: said below)
                kind, path, image = first_image(spec)
                given["data"] = f"{kind}:{path}"
                if args.data_path and not over.get("data"):
                    over["data"] = args.data_path  # what is there, not the chosen recipe's kind (cifar10)
        recipe, why = default_recipe(given.get("model"), weights, given.get("data"), image)
        if "model" not in given and RECIPES[recipe].get("model"):
            over["model"] = RECIPES[recipe]["model"]
        notes.append(f"recipe {recipe} ({why}; --recipe NAME to choose another)")
    if recipe not in RECIPES:
        return make_config(recipe)  # raises the one-line error
    for note in notes + start_notes(recipe, start, over, int(os.environ.get("WORLD_SIZE") or 1)):
        if os.environ.get("RANK", "0") == "0":
            print(note)
    if args.data_path:
        flag_kind = over.get("data")  # --data KIND beside it (with a KIND:PATH or an existing path it was refused)
        kind = flag_kind or start.get("data") or RECIPES[recipe].get("data", "")
        # a config file's (or a run's) KIND:PATH keeps its kind and takes the new path; its bare path is replaced
        head, sep, _ = kind.partition(":")
        kind = head if sep and head in KINDS else kind
        # a dataset kind (the recipe's cifar10) takes the path even where a folder of that name is at hand; so does
        # --data's word, which, when no kind, is the error to report
        if kind != "digits" and (kind in KINDS or (kind == flag_kind and not Path(kind).exists())):
            over["data"] = f"{kind}:{args.data_path}"
        else:
            over["data"] = args.data_path
    data = over.get("data", start.get("data", RECIPES[recipe].get("data", "digits")))
    if data in KINDS_NEEDING_PATH:
        if weights:  # the weights argument first, then the data
            _check_weights_first(weights, over.get("model", start.get("model")))
        raise UserError(f"dataset {data!r} needs a location: --data-path PATH (or --data {data}:PATH)")
    check_pca_scale_flag(args.pca_scale, over.get("aug", start.get("aug", RECIPES[recipe].get("aug"))))
    return make_config(recipe, file_values=start, **over)


def run_train(args: argparse.Namespace) -> int:
    from ..core.errors import EveryProcessHereError, UserError
    from ..engine.budget import process_started

    started = process_started()  # --time-budget counts the whole command, the interpreter's start included
    try:
        config = config_from_args(args)  # before importing the engine: a bad value is answered without torch
    except UserError as e:  # under torchrun every process here read the same flags and files: one line a machine
        raise (EveryProcessHereError(str(e)) if type(e) is UserError else e) from None
    from ..engine import fit

    res = fit(config, started=started)
    if "mlflow" in config.log and not config.test_only and os.environ.get("RANK", "0") == "0":
        from ..infer.figures import log_run_figures

        log_run_figures(res.run_dir)
    return 1 if res.too_many_bad else 0
