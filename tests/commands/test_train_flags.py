"""``alexnet train``'s flags and `TrainConfig`'s fields: one flag per field, found without a hand-kept list."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pkgutil

import pytest

from alexnet.cli import build_parser, main
from alexnet.commands import train as train_cmd
from alexnet.core.errors import UserError
from alexnet.engine.config import TrainConfig

FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _train_parser() -> argparse.ArgumentParser:
    return _subparsers(build_parser())["train"]


def _flag_dests() -> set[str]:
    return {a.dest for a in _train_parser()._actions if a.option_strings and a.dest != "help"}


def test_every_field_has_a_flag_or_a_reason():
    missing = FIELDS - _flag_dests() - set(train_cmd.FIELDS_NOT_COPIED)
    assert not missing, f"TrainConfig fields without a train flag: {sorted(missing)} (add a flag, or say why not)"
    assert set(train_cmd.FIELDS_NOT_COPIED) <= FIELDS, "FIELDS_NOT_COPIED names something that is not a field"


def test_every_flag_sets_a_field_or_is_a_known_option():
    unknown = _flag_dests() - FIELDS - set(train_cmd.FLAGS_NOT_COPIED)
    assert not unknown, f"train flags that set no TrainConfig field: {sorted(unknown)}"
    assert set(train_cmd.FLAGS_NOT_COPIED) <= _flag_dests(), "FLAGS_NOT_COPIED names something that is not a flag"


def test_fields_copied_from_flags_are_every_field_with_a_flag():
    copied = set(train_cmd.fields_from_flags())
    assert copied <= _flag_dests()
    # a field left out of the copy while a flag of its name exists: config_from_args must say what it does
    skipped = (FIELDS & _flag_dests()) - copied
    assert skipped <= set(train_cmd.FLAGS_NOT_COPIED), f"flags read by nothing: {sorted(skipped)}"


def test_each_flag_reaches_its_field():
    """A value typed on the command line lands in the config (every field copied from a flag)."""
    argv = ["train", "--lr-gamma", "0.25", "--translate", "3", "--no-nesterov", "--report-at", "50,60",
            "--wd", "0.001", "--opt", "adamw", "--seed", "7", "--print-freq", "9"]
    args = build_parser().parse_args(argv)
    for name in train_cmd.fields_from_flags():
        assert hasattr(args, name), f"no flag stores into {name}"
    cfg = train_cmd.config_from_args(args)
    assert (cfg.lr_gamma, cfg.translate, cfg.nesterov, cfg.report_at) == (0.25, 3, False, [50.0, 60.0])
    assert (cfg.weight_decay, cfg.optimizer, cfg.seed, cfg.print_freq) == (0.001, "adamw", 7, 9)


def test_train_help_reads_in_sections(capsys):
    with pytest.raises(SystemExit):
        main(["train", "-h"])
    out = capsys.readouterr().out
    for section, _ in train_cmd.FLAG_SECTIONS:
        assert f"\n{section}:\n" in out
    groups = _train_parser()._action_groups
    ungrouped = [a.dest for g in groups if g.title in ("options", "optional arguments", "positional arguments")
                 for a in g._group_actions if a.dest != "help"]
    assert not ungrouped, f"train flags outside a section: {ungrouped}"


def test_dataset_kinds_that_need_a_location_come_from_the_data_layer(tmp_path, monkeypatch):
    from alexnet.data.datasets import KINDS, KINDS_NEEDING_PATH

    monkeypatch.chdir(tmp_path)  # no file or folder named like a kind
    assert set(KINDS_NEEDING_PATH) == set(KINDS) - {"digits"}
    for kind in KINDS_NEEDING_PATH:
        args = build_parser().parse_args(["train", "--data", kind])
        with pytest.raises(UserError, match=f"dataset '{kind}' needs a location"):
            train_cmd.config_from_args(args)


def test_one_subcommand_per_module():
    """cli.py's rule: each module of alexnet.commands adds exactly one sub-command (aliases aside)."""
    import alexnet.commands as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name.startswith("_"):
            continue
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(f"{pkg.__name__}.{m.name}").register(sub)
        parsers = {id(p) for p in sub.choices.values()}
        assert len(parsers) == 1, f"commands/{m.name}.py adds {sorted(sub.choices)}"
    assert _subparsers(build_parser())["evaluate"].get_default("func").__module__ == "alexnet.commands.evaluate"


@pytest.mark.parametrize("argv, world, says", [
    # SGD's rate is per batch: another -b without --lr is another rate per image, and the note gives the --lr that is not
    (["--recipe", "cifar10", "-b", "64"], 1, "-b 64 keeps the cifar10 recipe's rate 0.2, set for batch 512; "
                                              "the same rate per image would be --lr 0.025"),
    (["--recipe", "paper", "-b", "64"], 4, "a batch of 256 (4 processes × -b 64) keeps the paper recipe's rate 0.01, "
                                           "set for batch 128; the same rate per image would be --lr 0.02"),
    (["--recipe", "paper", "-b", "64", "--scale-lr"], 4, "rate 0.01 (× 4 with --scale-lr), set for batch 128; "
                                                         "the same rate per image would be --lr 0.005"),
    (["--recipe", "cifar10", "-b", "64", "--lr", "0.05"], 1, None),  # a rate given: nothing to say
    (["--recipe", "cifar10", "-b", "512"], 1, None),  # the recipe's own batch
    (["--recipe", "digits", "-b", "64"], 1, None),  # AdamW: rates do not scale linearly with the batch
    (["--recipe", "cifar10", "-b", "64", "--optimizer", "adam"], 1, None),
])
def test_another_batch_without_a_rate_gets_a_note_with_the_rate_per_image(argv, world, says, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", "0")
    cfg = train_cmd.config_from_args(build_parser().parse_args(["train", *argv, "--data", "digits"]))
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert (len(notes) == 1 and says in notes[0]) if says else notes == []
    if "--lr" not in argv and argv[1] != "digits":
        assert cfg.lr == {"cifar10": 0.2, "paper": 0.01}[argv[1]]  # the note advises; the run keeps the rate
    monkeypatch.setenv("RANK", "1")  # under torchrun the note is printed once, by rank 0
    train_cmd.config_from_args(build_parser().parse_args(["train", *argv, "--data", "digits"]))
    assert "note: " not in capsys.readouterr().out


def test_the_note_names_the_batch_the_rate_was_set_with_when_a_config_file_changes_one_of_them():
    from alexnet.engine.flag_notes import batch_rate_note

    # the file changes the batch, not the rate: the rate is still the recipe's, set for 512
    assert batch_rate_note("cifar10", {"batch_size": 256}, {"batch_size": 64}).endswith(
        "the cifar10 recipe's rate 0.2, set for batch 512; the same rate per image would be --lr 0.025")
    # the file sets both: its rate was set for its batch
    assert batch_rate_note("cifar10", {"batch_size": 256, "lr": 0.1}, {"batch_size": 64}).endswith(
        "--config's rate 0.1, set for batch 256; the same rate per image would be --lr 0.025")


def test_a_model_arg_that_drops_the_recipes_model_arguments_says_how_to_keep_them(capsys, tmp_path):
    from alexnet.engine.flag_notes import model_args_note

    assert model_args_note("cifar10", None, {"model_kwargs": {"width": 0.5}}) == (
        "note: --model-arg replaces the cifar10 recipe's model arguments; to keep the others, add --model-arg "
        "norm=batch --model-arg fc_width=1024 --model-arg widths=64,128,256,256,256")
    assert model_args_note("cifar10", None, {"model_kwargs": {"norm": "batch", "fc_width": 8, "widths": [4] * 5}}) == ""
    assert model_args_note("cifar10", None, {"model": "cifar4", "model_kwargs": {"lrn": False}}) == ""  # another model
    assert model_args_note("digits", None, {"model_kwargs": {"width": 0.5}}) == ""  # the recipe sets none
    assert model_args_note("digits", {"model_kwargs": {"fc_width": 64}}, {"model_kwargs": {"width": 0.5}}).startswith(
        "note: --model-arg replaces --config's model arguments; to keep the others, add --model-arg fc_width=64")
    # on the command line, before the run starts; the run has what was given, as before
    assert main(["train", "--recipe", "cifar10", "--data", "digits", "--model-arg", "width=0.0625", "--max-steps", "1",
                 "--amp", "off", "--output-dir", str(tmp_path), "--name", "m"]) == 0
    assert "note: --model-arg replaces the cifar10 recipe's model arguments" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_kwargs"] == {"width": 0.0625}


def test_a_config_run_trained_on_another_number_of_processes_says_what_that_does_to_the_batch(tmp_path, capsys,
                                                                                              monkeypatch):
    from alexnet.engine.flag_notes import processes_note

    assert main(["train", "--data", "digits", "--model-arg", "width=0.0625", "--max-steps", "1", "-b", "64",
                 "--amp", "off", "--output-dir", str(tmp_path), "--name", "one"]) == 0
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config["processes"] == 1  # recorded by the run
    (tmp_path / "two").mkdir()  # the same run as two torchrun processes would have recorded it
    (tmp_path / "two" / "config.json").write_text(json.dumps({**config, "processes": 2}))
    monkeypatch.setenv("WORLD_SIZE", "1")
    capsys.readouterr()
    cfg = train_cmd.config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "two")]))
    assert cfg.batch_size == 64 and cfg.global_batch == 0  # the run takes what it was given; the note advises
    assert ("note: --config's run trained with 2 processes × -b 64 (a batch of 128); 1 process × -b 64 here make "
            "a batch of 64: for the same batch give --global-batch 128") in capsys.readouterr().out
    train_cmd.config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "one")]))
    assert "note: " not in capsys.readouterr().out  # the same number of processes
    assert processes_note({"processes": 2, "batch_size": 64}, {"global_batch": 128}) == ""  # the batch is kept
    assert processes_note({"processes": 2, "batch_size": 64}, {"batch_size": 32}) == ""  # the person chose
    assert processes_note({"processes": 2, "batch_size": 64, "global_batch": 128}, {}) == ""
    assert processes_note({"processes": 1, "batch_size": 64}, {}, world=4).endswith("4 processes × -b 64 here make "
                                                                                   "a batch of 256: for the same "
                                                                                   "batch give --global-batch 64")


@pytest.mark.parametrize("recipe, given, says", [
    ("paper", {"nesterov": True}, "note: --nesterov does nothing with --optimizer sgd-paper (§5's update is plain "
                                  "momentum)"),
    ("paper", {"nesterov": False}, ""),  # what sgd-paper does anyway
    ("cifar10", {"nesterov": True}, ""),  # PyTorch's SGD takes it
    ("cifar10", {"optimizer": "sgd-paper", "nesterov": True}, "--nesterov does nothing with --optimizer sgd-paper"),
    ("digits", {"momentum": 0.8}, "note: --momentum does nothing with --optimizer adamw (Adam has its own)"),
    ("cifar10", {"optimizer": "adam", "momentum": 0.8, "nesterov": False}, "--nesterov and --momentum do nothing"),
    ("paper", {"momentum": 0.8}, ""),
])
def test_a_flag_the_optimiser_does_not_use_is_noted(recipe, given, says):
    from alexnet.engine.flag_notes import unused_flags_note

    note = unused_flags_note(recipe, None, given)
    assert (says in note and note) if says else note == ""


def test_only_rank_0_says_which_recipe_the_data_chose(capsys, monkeypatch):
    args = build_parser().parse_args(["train", "--model", "alexnet-cifar", "--data", "digits", "-b", "64"])
    for rank, says in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        train_cmd.config_from_args(args)
        out = capsys.readouterr().out
        assert ("recipe cifar10 (" in out) is says and ("note: -b 64" in out) is says
