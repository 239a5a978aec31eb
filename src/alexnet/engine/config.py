"""Training configuration: one dataclass, and named recipes that fill it.

CLI flags map one-to-one onto `TrainConfig` fields and reuse the names of torchvision's
classification reference (``--model --data-path --epochs -b --lr --momentum --wd --lr-scheduler
--workers --output-dir --resume --test-only --amp --seed``) where the meaning is the same. A recipe
is a documented set of field values; flags given on the command line override them. Every number
in a recipe says where it comes from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UserError, did_you_mean
from ..data.augment import PCA_SCALES, AugPlan  # plain Python: the CLI's help stays free of torch
from .recipes import RECIPES
from .tracking import check_loggers  # plain Python too: MLflow is only looked for
from .budget import check_resume_flags, parse_duration  # plain Python too

OPTIMIZERS = ("sgd", "sgd-paper", "adam", "adamw")
SCHEDULERS = ("plateau", "step", "cosine", "onecycle", "linear", "constant")
SCHEDULER_ALIASES = {"steplr": "step", "cosineannealinglr": "cosine", "reducelronplateau": "plateau",
                     "onecyclelr": "onecycle", "none": "constant"}
AUGS = AugPlan.names()  # every --aug name (data.augment's registry)
RESIDENT_AUGS = AugPlan.names("resident", auto=False)  # data.resident: whole batches in memory
STREAMING_AUGS = AugPlan.names("cpu")  # the per-image and --data-device paths
PCA_AUGS = ("paper", "auto")  # the --aug names that can mean PCA lighting (auto: paper for large inputs)
TTA_LEVELS = (0, 1, 2)  # --tta: engine/tta.py (that module imports torch)
AMP_MODES = ("auto", "off", "bf16", "fp16")  # core.device.AMP_CHOICES (that module imports torch; a test keeps them equal)


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run directory."""

    # what
    model: str = "alexnet-mnist"
    data: str = "digits"  # a dataset spec: digits, cifar10:/p, mnist:/p, imagenet:/p, folder:/p, list:/f, /path
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 0.5, "init": "caffe"}
    weights: str = ""  # starting weights: a torchvision weights name, a .pth state_dict, or a run of ours
    freeze: str = ""  # freeze this layer and everything before it (features, conv3, fc6, fc7, …)
    lr_backbone_scale: float = 1.0  # rate multiplier for every trainable layer but the last
    val_split: float = 0.1  # fraction held out when a dataset has no validation split
    train_subset: int = 0  # train on a stratified sample of this many images (0: all); seed 0, fixed
    download: bool = False  # let torchvision download CIFAR-10 / MNIST when they are missing
    # optimisation
    epochs: int = 15
    batch_size: int = 64  # per process; the global batch is batch_size × world size
    global_batch: int = 0  # >0: keep this global batch under torchrun (per process: global_batch / processes)
    processes: int = 1  # recorded at the start: the processes that train the run (torchrun's WORLD_SIZE)
    scale_lr: bool = False  # -b per process and lr × processes (linear scaling, Goyal et al. 2017)
    optimizer: str = "sgd"  # sgd (PyTorch's), sgd-paper (§5's update rule exactly), adam, adamw
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    bias_lr_mult: float = 1.0  # biases learn this many times faster (the authors' code and Caffe: 2)
    bias_weight_decay: float | None = None  # weight decay of biases (None: --wd; authors' code and Caffe: 0)
    label_smoothing: float = 0.0
    lr_scheduler: str = "onecycle"
    lr_step_size: int = 30
    lr_gamma: float = 0.1
    lr_patience: int = 3  # plateau: epochs without improvement before dividing by 1/lr_gamma
    lr_max_drops: int = 3  # plateau: the paper divided the rate three times (§5)
    lr_warmup_epochs: float = 0.0
    clip_grad_norm: float = 0.0  # 0: off
    lookahead: bool = False  # airbench's lookahead: every 5 steps pull the weights to their running average
    ema: float = 0.0  # >0: also keep an EMA of the weights with this decay (timm's warm-up; engine/ema.py); 0: off
    time_budget: str = ""  # 90s, 15m, 2h, 1h30m: the run plans its epochs and schedule to end within it (engine/budget.py)
    budget_plan: dict[str, Any] = field(default_factory=dict)  # that plan (BudgetPlan), made once, kept on resume
    train_epochs: float = 0.0  # >0: the run's length in epochs, a fraction allowed (airbench94's 9.9); sets epochs to its ceiling
    # data
    aug: str = "auto"
    pca: str | None = None  # pca.json from `alexnet data pca-stats` (default: ImageNet's values)
    pca_scale: str = "sqrt"  # PCA lighting: α·√λ (cuda-convnet2) or α·λ (the paper's text); see PCALighting
    normalize: str = "meanstd"  # or "pixelmean" (the paper: subtract the training data's mean pixel)
    # pixelmean: the training data's mean pixel (RGB in [0, 1]); filled in at the start of the run
    # (from --pca's pca.json when it has a "mean", else measured on training images) and saved here
    pixel_mean: list[float] | None = None
    workers: int = 0
    data_device: str = "cpu"  # where training batches are decoded and augmented: cpu, or cuda (data/gpu.py)
    resident: bool = False  # decode the data once into memory (uint8) and augment whole batches (data.resident)
    translate: int = 2  # --aug flip-translate: shift each image by up to this many pixels (reflected borders)
    ten_crop: bool = False  # final evaluation also with ten crops (§4.1)
    # where --resident keeps the set and augments it: cuda when the model trains on a GPU whose free
    # memory holds it, else cpu; decided once at the start (data/pipeline.py), recorded, kept on resume
    resident_device: str = ""
    tta: int = 0  # final evaluation also with airbench's test-time augmentation: 1 mirror, 2 mirror + 1 px shifts (engine/tta.py)
    # machinery
    device: str = "auto"
    amp: str = "auto"
    # the precision the run trains in (fp32, bf16, fp16) and why: decided once at the start of the
    # run (--amp auto measures), recorded here and reused on resume (engine/precision.py)
    precision: str = ""
    precision_reason: str = ""
    channels_last: str = "auto"  # auto, on, off
    compile: bool = False
    deterministic: bool = False
    seed: int = 0
    output_dir: str = "runs"
    name: str = ""  # run directory name under output_dir (default: <model>-<data>-<time>)
    checkpoint_every: int = 0  # also save checkpoints/last.pt every N steps (0: each epoch only)
    print_freq: int = 0  # also print a line every N steps (0: progress bar only)
    report_at: list[float] = field(default_factory=list)  # print when validation top-1 first reaches each (%)
    max_steps: int = 0  # stop after this many optimiser steps in total (0: no limit; for smoke tests)
    max_bad_fraction: float = 0.05  # more unreadable files than this share: a loud warning and exit 1
    recipe: str = "digits"
    resume: str = ""  # a run directory to continue from its checkpoints/last.pt; "auto": output_dir/name if it has one
    test_only: bool = False  # evaluate the resumed run's model on the validation split and stop
    config_file: str = ""  # the --config file (YAML, or a run's config.json) the fields came from
    log: list[str] = field(default_factory=list)  # also log the run to: mlflow (engine/tracking.py)
    mlflow_uri: str = ""  # --log mlflow's store (default: $MLFLOW_TRACKING_URI, else OUTPUT_DIR/mlflow.db)

    def validate(self) -> "TrainConfig":
        """Every check: `check_values`, then the model's arguments against the registry (which
        imports torch). Returns ``self``; a bad value is a one-line `UserError`."""
        self.check_values()
        from ..models.registry import check_model_kwargs  # the registry: names, arguments, ranges

        check_model_kwargs(self.model, self.model_kwargs)
        return self

    def check_values(self) -> "TrainConfig":
        """The checks that need neither torch nor the data: each value's range and the flags that
        exclude each other. Plain Python, so that the CLI answers a bad value in well under a second,
        before the heavy imports (docs/architecture.md, "Errors"). Returns ``self``."""
        self._check_training_values()
        self._check_data_and_run_values()
        return self

    def _check_training_values(self) -> None:
        def bad(msg: str) -> None:
            raise UserError(msg)

        for f in dataclasses.fields(self):  # inf passes every range check below (nan fails them)
            v = getattr(self, f.name)
            if isinstance(v, float) and math.isinf(v):
                bad(f"--{f.name.replace('_', '-')} must be a finite number, not {v}")
        if self.epochs < 1:
            bad(f"--epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1:
            bad(f"--batch-size must be at least 1, not {self.batch_size}")
        if not self.lr > 0:
            bad(f"--lr must be positive, not {self.lr}")
        if self.momentum < 0 or self.momentum >= 1:
            bad(f"--momentum must be in [0, 1), not {self.momentum}")
        if self.weight_decay < 0:
            bad(f"--wd must be non-negative, not {self.weight_decay}")
        if not 0 <= self.ema < 1:
            bad(f"--ema must be in [0, 1) (the EMA's decay per step, e.g. 0.999; 0: off), not {self.ema}")
        if not 0 <= self.label_smoothing < 1:
            bad(f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")
        if not 0 <= self.val_split < 1:  # 0: every image trains (no validation where the data has none)
            bad(f"--val-split must be in [0, 1), not {self.val_split}")
        if self.workers < 0:
            bad(f"--workers must be non-negative, not {self.workers}")
        if self.lr_step_size < 1:
            bad(f"--lr-step-size must be at least 1 epoch, not {self.lr_step_size}")
        if not 0 < self.lr_gamma <= 1:
            bad(f"--lr-gamma must be in (0, 1] (the factor the rate is multiplied by at each drop), "
                f"not {self.lr_gamma}")
        if self.lr_patience < 0:
            bad(f"--lr-patience must be non-negative, not {self.lr_patience}")
        if self.lr_max_drops < 0:
            bad(f"--lr-max-drops must be non-negative, not {self.lr_max_drops}")
        if self.amp not in AMP_MODES:
            bad(f"--amp must be one of {', '.join(AMP_MODES)}, not {self.amp!r}")
        if self.optimizer not in OPTIMIZERS:
            bad(f"unknown optimizer {self.optimizer!r}{did_you_mean(self.optimizer, OPTIMIZERS)} "
                f"(choose from {', '.join(OPTIMIZERS)})")
        self.lr_scheduler = SCHEDULER_ALIASES.get(self.lr_scheduler.lower(), self.lr_scheduler.lower())
        if self.lr_scheduler not in SCHEDULERS:
            bad(f"unknown --lr-scheduler {self.lr_scheduler!r} (choose from {', '.join(SCHEDULERS)})")
        if self.time_budget:
            parse_duration(self.time_budget)  # a bad duration is one line
        if not 0 <= self.train_epochs <= 10000:
            bad(f"--train-epochs must be between 0 (off: --epochs) and 10000, not {self.train_epochs}")
        if self.train_epochs and not self.time_budget:  # --time-budget plans the epochs itself
            self.epochs = math.ceil(self.train_epochs)

    def _check_data_and_run_values(self) -> None:
        def bad(msg: str) -> None:
            raise UserError(msg)

        if not re.fullmatch(r"cpu|cuda(:\d+)?", str(self.data_device)):
            bad(f"--data-device must be cpu or cuda[:N], not {self.data_device!r}")
        if self.aug not in AUGS:
            bad(f"unknown --aug {self.aug!r} (choose from {', '.join(AUGS)})")
        if self.resident and self.aug not in AugPlan.names("resident"):
            bad(f"--resident augments whole batches in memory: --aug {', '.join(RESIDENT_AUGS)} (not {self.aug!r})")
        if self.resident and self.data_device != "cpu":
            bad("--resident keeps decoded images in memory and --data-device decodes each batch on the GPU: give one")
        if not self.resident and self.aug not in STREAMING_AUGS:
            bad(f"--aug {self.aug} augments whole batches held in memory: add --resident")
        if self.resident_device not in ("", "cpu", "cuda"):
            bad(f"resident_device must be cpu or cuda (or empty: decided at the run's start), "
                f"not {self.resident_device!r}")
        if self.tta not in TTA_LEVELS:
            bad(f"--tta must be 0 (off), 1 (the image and its mirror) or 2 (also shifted by one pixel: 6 views), "
                f"not {self.tta}")
        if not 0 <= self.translate <= 8:
            bad(f"--translate must be between 0 and 8 pixels, not {self.translate}")
        if not (isinstance(self.report_at, list) and all(isinstance(v, (int, float)) and 0 < v <= 100
                                                         for v in self.report_at)):
            bad(f"--report-at takes accuracies in (0, 100] percent, e.g. 80,85,90, not {self.report_at!r}")
        if self.normalize not in ("meanstd", "pixelmean"):
            bad(f"--normalize must be meanstd or pixelmean, not {self.normalize!r}")
        if self.pca_scale not in PCA_SCALES:
            bad(f"--pca-scale must be one of {', '.join(PCA_SCALES)}, not {self.pca_scale!r}")
        if self.global_batch < 0:
            bad(f"--global-batch must be non-negative, not {self.global_batch}")
        if self.processes < 1:
            bad(f"processes must be at least 1, not {self.processes}")
        if self.bias_lr_mult < 0:
            bad(f"--bias-lr-mult must be non-negative, not {self.bias_lr_mult}")
        if self.bias_weight_decay is not None and self.bias_weight_decay < 0:
            bad(f"--bias-weight-decay must be non-negative, not {self.bias_weight_decay}")
        if self.pixel_mean is not None and not (isinstance(self.pixel_mean, list) and self.pixel_mean
                                                and all(isinstance(v, (int, float)) for v in self.pixel_mean)):
            bad(f"pixel_mean must be a list of numbers (RGB in [0, 1]), not {self.pixel_mean!r}")
        if self.channels_last not in ("auto", "on", "off"):
            bad(f"--channels-last must be auto, on or off, not {self.channels_last!r}")
        if not 0 < self.lr_backbone_scale <= 1:
            bad(f"--lr-backbone-scale must be in (0, 1], not {self.lr_backbone_scale}")
        if self.pca and self.aug not in PCA_AUGS and self.normalize != "pixelmean":
            bad(f"--pca {self.pca} is read only by PCA lighting (--aug paper) and --normalize pixelmean; "
                f"--aug {self.aug} uses neither: leave --pca out")
        if not 0 <= self.max_bad_fraction <= 1:
            bad(f"--max-bad-fraction must be between 0 and 1, not {self.max_bad_fraction}")
        if self.test_only and not self.resume:
            bad("--test-only evaluates a trained run: give it with --resume RUN_DIR")
        check_loggers(self.log)  # a known name, and MLflow installed before any training
        if self.name and (self.name in (".", "..") or "/" in self.name or os.sep in self.name):
            bad(f"--name {self.name!r} must be one folder's name (the run's, inside --output-dir), "
                f"not a path: give --output-dir for where the run goes")
        if self.resume == "auto" and not self.name:
            bad("--resume auto needs --name NAME: the run to continue, or to start when it has no checkpoint")
        for k in ("checkpoint_every", "print_freq", "max_steps", "lr_warmup_epochs", "clip_grad_norm",
                  "train_subset"):
            if getattr(self, k) < 0:
                bad(f"--{k.replace('_', '-')} must be non-negative, not {getattr(self, k)}")

    def check_with_data(self, *, lighting: bool, train_images: int, batch_per_process: int,
                        world_size: int = 1) -> list[str]:
        """The checks that need the data and the resolved augmentation, made once both are known
        and before the model is built: ``--pca`` that nothing reads (``--aug auto`` without PCA
        lighting — small or one-channel images — and no ``--normalize pixelmean``) is a
        `UserError`; a batch larger than the training images of one process returns a warning
        (the rule: warn, because a recipe's default batch may well exceed a small folder; each
        epoch is then one step over every image)."""
        if self.pca and not lighting and self.normalize != "pixelmean":
            raise UserError(f"--pca {self.pca} is read only by PCA lighting and --normalize pixelmean; --aug "
                            f"{self.aug} has no PCA lighting for this model's input: leave --pca out")
        per_process = -(-train_images // max(1, world_size))
        if self.test_only or batch_per_process <= per_process:
            return []
        rate = (f", and --lr {self.lr * per_process / batch_per_process:.3g} to keep lr {self.lr:g}'s rate per "
                f"image (it was set for batch {batch_per_process}; SGD's step is per batch)"
                if str(self.optimizer).startswith("sgd") else "")
        return [f"batch {batch_per_process} is larger than the training set ({per_process} images"
                f"{' per process' if world_size > 1 else ''}): each epoch is one step over all of them; "
                f"lower -b to at most {per_process}{rate}"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def saved_dict(self) -> dict[str, Any]:
        """What ``config.json`` keeps: every field except those that belong to one invocation
        (`PER_INVOCATION`: ``--max-steps``, ``--test-only``), which get their defaults, so that
        resuming a smoke-test run trains on instead of stopping after one more step."""
        d = self.to_dict()
        defaults = TrainConfig()
        d.update({k: getattr(defaults, k) for k in PER_INVOCATION})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_json(self) -> str:
        """``config.json``: `saved_dict` as JSON."""
        return json.dumps(self.saved_dict(), indent=2)


# Fields that apply to one invocation of `alexnet train`: not saved for, nor inherited by, a resume.
PER_INVOCATION = ("max_steps", "test_only")


# Recipes: field values, each with its source, one YAML file each in engine/recipes/ (`RECIPES`
# reads them on first use; `default_recipe` there chooses one when none is named). Flags override them.


def make_config(recipe: str = "digits", *, file_values: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from recipe ``recipe``, then a config file's ``file_values`` (`config_file`),
    then ``overrides`` (fields given explicitly, as flags) on top."""
    return config_values(recipe, file_values=file_values, **overrides).validate()


def config_values(recipe: str = "digits", *, file_values: dict[str, Any] | None = None,
                  **overrides: Any) -> TrainConfig:
    """`make_config` without `TrainConfig.validate`: the values only, checked as far as combining
    them needs (plain Python; the CLI calls ``.check_values()`` on it before importing torch)."""
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}{did_you_mean(recipe, RECIPES)} "
                        f"(choose from {', '.join(RECIPES)})")
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**RECIPES[recipe], **(file_values or {}), **given, "recipe": recipe}
    if given.get("time_budget") and "epochs" in given:
        raise UserError("give --epochs or --time-budget (which plans the epochs), not both")
    if given.get("train_epochs") and ("epochs" in given or given.get("time_budget")):
        raise UserError("give --train-epochs (fractional epochs), --epochs or --time-budget, not two of them")
    if "epochs" in given or given.get("time_budget"):
        values["train_epochs"] = 0.0  # a recipe's fractional epochs give way to the ones given
    if ("epochs" in given or given.get("train_epochs")) and not given.get("time_budget"):
        values["time_budget"] = ""  # and a length given replaces a config file's budget
    if given.get("global_batch"):
        if "batch_size" in given:
            raise UserError("give either -b (the batch per process) or --global-batch (split across the "
                            "processes), not both")
        if values.get("scale_lr"):
            raise UserError("--scale-lr multiplies the rate by the number of processes, each with batch -b; "
                            "--global-batch keeps the global batch fixed: give one of them")
    elif "batch_size" in given or values.get("scale_lr"):
        values["global_batch"] = 0  # -b given (or --scale-lr): the batch is per process
    return TrainConfig.from_dict(values)


def read_run_config(saved: Path) -> dict[str, Any] | None:
    """A run's ``config.json`` with each field's type checked as ``--config`` checks it (a hand edit
    that broke it is one line naming the field and the file); None when there is no such file."""
    try:
        base = json.loads(saved.read_text())
    except OSError:
        return None
    except ValueError as e:
        raise UserError(f"{saved}: not valid JSON ({e})") from None
    if not isinstance(base, dict):
        raise UserError(f"{saved}: not a run's config (a JSON object of training fields), but a JSON "
                        f"{type(base).__name__}")
    from .config_file import ConfigFile, field_types, typed

    hints, cf = field_types(), ConfigFile(saved, {}, True)
    return {k: typed(cf, k, v, hints[k]) if k in hints else v for k, v in base.items()}


def resume_config(run_dir: str, **overrides: Any) -> TrainConfig:
    """The config of the run in ``run_dir`` (its ``config.json``) with ``overrides``, set to resume it.

    The model and its arguments cannot change: the checkpoint's weights must fit.
    """
    if not Path(run_dir).expanduser().exists():  # said before the weights module brings torch in
        raise UserError(f"--resume {Path(run_dir).expanduser()}: no such folder (give a run directory, e.g. "
                        "runs/<name>)")
    from ..models.weights import resolve_run_dir

    run_dir = str(resolve_run_dir(run_dir, need="checkpoints/last.pt"))
    saved = Path(run_dir) / "config.json"
    if not saved.is_file():
        raise UserError(f"--resume {run_dir}: not a run directory (no config.json)")
    base = read_run_config(saved) or {}
    over = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in over:
        over.setdefault("train_epochs", 0.0)  # --epochs N trains on to N, past a recipe's fractional epochs
    if over.get("name") and over["name"] != Path(run_dir).name:  # the run keeps its folder
        raise UserError(f"--resume {run_dir} --name {over['name']}: a resumed run keeps its own folder; leave "
                        f"--name out (or start a new run: --config {run_dir} --name {over['name']})")
    if "model" in over and over["model"] != base["model"]:
        raise UserError(f"--resume: the run trained {base['model']!r}; cannot continue it as {over['model']!r}")
    if "model_kwargs" in over and over["model_kwargs"] != base.get("model_kwargs", {}):
        raise UserError("--resume: --model-arg differs from the run's; the weights would not fit")
    if "ema" in over and (over["ema"] > 0) != (base.get("ema", 0.0) > 0):
        had = bool(base.get("ema"))
        raise UserError(f"--resume: the run trained {'with' if had else 'without'} an EMA of its weights; --ema "
                        f"{over['ema']:g} cannot {'drop' if had else 'start'} it mid-run: leave --ema out")
    for k in PER_INVOCATION:  # a run directory written before these were left out of config.json
        base.pop(k, None)
    check_resume_flags(base, over)  # a run planned for a --time-budget keeps its plan
    if "data" not in over:
        from .flag_notes import check_resume_data

        check_resume_data(run_dir, str(base.get("data", "")))
    return TrainConfig.from_dict({**base, **over, "resume": str(run_dir)}).validate()

