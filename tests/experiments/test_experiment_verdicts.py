"""The experiments judged by the interval rule (overlap-pool, depth, pca-lighting, ten-crop) on
hand-made runs where the right and the wrong verdict differ; what their JSON record and page say;
and docs/experiments.md, which must be exactly what the committed records make."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alexnet import experiments
from alexnet.experiments import output, pages, stats
from alexnet.experiments.runs import RunResult

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "experiments"


def run(arm: str, seed: int, val: float, *, losses=(2.0, 1.5), extra=None, precision="bf16") -> RunResult:
    """A finished run: its final validation error ``val`` and a training-loss curve."""
    epochs = [{"epoch": i + 1, "train_loss": v, "val_top1": 100 - val, "val_top5": 100 - val / 4, "time": 10.0,
               "img_per_s": 100.0} for i, v in enumerate(losses)]
    return RunResult(arm, seed, f"OUT/runs/{arm}-{seed}", epochs, dict(extra or {}), precision=precision)


def summary(name: str, results: list[RunResult]) -> stats.Summary:
    exp = experiments.get(name)
    return stats.as_summary(exp.summarize(exp, results))


PCA, NO = "crops + flips + PCA lighting", "crops + flips, no PCA lighting"


def test_a_diverged_run_is_left_out_and_that_decides_the_verdict():
    # PCA lighting about 2 points better on seeds 0, 1 and 3; seed 2 without it diverged to chance
    results = [run(PCA, 0, 40.0), run(PCA, 1, 41.0), run(PCA, 2, 42.0), run(PCA, 3, 40.5),
               run(NO, 0, 42.0), run(NO, 1, 43.1), run(NO, 2, 90.0, losses=(2.0, float("nan"))), run(NO, 3, 42.6)]
    s = summary("pca-lighting", results)
    c = s.comparisons[0]
    assert c.verdict == "reproduces" and c.n == (3, 3) and c.diff == pytest.approx(6.2 / 3)
    assert c.excluded == ("crops + flips, no PCA lighting, seed 2: diverged (the loss became infinite or NaN; "
                          "final validation error 90.0 %)",)
    at_chance = summary("pca-lighting", results[:6] + [run(NO, 2, 90.0), results[7]]).comparisons[0]  # a finite loss
    assert at_chance.excluded == ("crops + flips, no PCA lighting, seed 2: did not learn (final validation error "
                                  "90.0 %, at chance)",)
    assert s.verdict.startswith("reproduces: PCA lighting lowers the top-1 error")
    assert [r["seeds"] for r in s.rows] == [4, 3]  # the diverged run is not averaged into the table either
    assert s.rows[1]["validation top-1 error (%)"].startswith("42.57 [")
    # without seed 3 two pairs are left: the interval is given, the verdict is not
    two = summary("pca-lighting", [r for r in results if r.seed != 3]).comparisons[0]
    assert two.n == (2, 2) and two.low > 0 and two.verdict == "inconclusive" and "at least 3 seed pairs" in two.text


def test_at_chance_is_the_runs_own_number_of_classes():
    """Two classes: 48 % error is guessing (left out); a hundred: 86 % error has learned something
    (kept), where ten classes' 90 % would have called both the other way round."""
    def of(k, val, seed=0):
        r = run(NO, seed, val)
        r.num_classes = k
        return r

    assert stats.diverged(of(2, 48.0)) and not stats.diverged(of(100, 86.0))
    assert of(2, 48.0).chance_error == 50.0 and of(100, 1.0).chance_error == pytest.approx(99.0)
    kept, out = stats.usable([of(2, 48.0), of(2, 20.0, 1)])
    assert [r.seed for r in kept] == [1] and out == [f"{NO}, seed 0: did not learn (final validation error 48.0 %, at chance)"]
    assert stats.usable([of(100, 86.0)])[0] and RunResult(NO, 0, "d", []).num_classes == 10
    rec = {"runs": [of(2, 20.0).to_dict()]}
    assert pages.results_of(rec)[0].num_classes == 2  # kept in the record, so `report` judges alike


def test_an_unstable_run_is_left_out():
    wobbly = run(NO, 1, 43.1, losses=(2.0, 2.5, 1.9))  # the loss rose above its first epoch's
    s = summary("pca-lighting", [run(PCA, 0, 40.0), run(PCA, 1, 41.0), run(NO, 0, 42.0), wobbly])
    assert s.comparisons[0].excluded == (f"{NO}, seed 1: unstable (the training loss rose above its first epoch's)",)
    assert s.comparisons[0].n == (1, 1) and s.verdict.startswith("inconclusive") and "too few usable runs" in s.verdict


def test_pca_lighting_is_paired_by_seed_and_depth_is_not():
    # a large seed-to-seed spread shared by both arms, and a steady 1.1-point effect
    paper, other = [30.0, 40.0, 50.0], [31.0, 41.2, 51.1]
    s = summary("pca-lighting", [run(PCA, i, v) for i, v in enumerate(paper)] + [run(NO, i, v) for i, v in enumerate(other)])
    assert s.comparisons[0].paired and s.comparisons[0].verdict == "reproduces"
    assert "paired by seed, 3 pairs" in s.verdict
    full, without = "all five conv layers", ("without conv2", "without conv3", "without conv4")
    d = summary("depth", [run(full, i, v) for i, v in enumerate(paper)]
                + [run(arm, i, v) for arm in without for i, v in enumerate(other)])
    assert len(d.comparisons) == 3 and not any(c.paired for c in d.comparisons)
    assert {c.verdict for c in d.comparisons} == {"inconclusive"} and d.verdict.startswith("inconclusive:")
    assert any("Unpaired (Welch)" in n for n in d.notes)


def test_depth_needs_every_removal():
    full = [run("all five conv layers", i, 40.0 + 0.1 * i) for i in range(3)]
    worse = [run(a, i, 43.0 + 0.1 * i + 0.05 * (i == 1)) for a in ("without conv2", "without conv3") for i in range(3)]
    same = [run("without conv4", i, 40.0 + 0.1 * i + 0.05 * (i == 1)) for i in range(3)]
    assert summary("depth", full + worse + [run("without conv4", i, 43.0 + 0.1 * i + 0.05 * (i == 1))
                                            for i in range(3)]).verdict.startswith("reproduces")
    s = summary("depth", full + worse + same)  # two removals cost 3 points, one costs nothing
    assert [c.verdict for c in s.comparisons] == ["reproduces", "reproduces", "inconclusive"]
    assert s.verdict.startswith("inconclusive")


def test_overlap_pool_judges_the_overfitting_gap_on_its_own():
    ov, pl = "overlapping 3/2", "non-overlapping 2/2"
    # lower error with overlap (by 2.0 ± 0.1), but a *larger* gap (train error far lower)
    results = [run(ov, i, 40.0 + i, extra={"train_eval_error": 30.0 + i - 0.05 * (i == 1)}) for i in range(3)]
    results += [run(pl, i, 42.0 + i + 0.1 * (i == 1), extra={"train_eval_error": 38.0 + i}) for i in range(3)]
    s = summary("overlap-pool", results)
    err, gap = s.comparisons
    assert err.verdict == "reproduces" and err.paired
    assert gap.verdict == "contradicts" and "overfits less" in gap.what
    assert s.verdict.startswith("reproduces:") and "; overfitting: contradicts:" in s.verdict


def test_pca_lighting_and_depth_compare_the_overfitting_gaps_with_their_own_intervals():
    # PCA lighting: the same error, but its gap 3 points smaller on every seed
    pca = [run(PCA, i, 40.0 + i, extra={"train_eval_error": 30.0 + i + 0.1 * (i == 1)}) for i in range(3)]
    plain = [run(NO, i, 40.0 + i + 0.05 * (i == 2), extra={"train_eval_error": 27.0 + i}) for i in range(3)]
    s = summary("pca-lighting", pca + plain)
    err, gap = s.comparisons
    assert err.verdict == "inconclusive" and gap.verdict == "reproduces" and gap.paired
    assert gap.diff == pytest.approx(3.05)
    assert s.verdict.startswith("inconclusive:") and "; overfitting: reproduces: PCA lighting overfits less" in s.verdict
    assert s.rows[0]["overfitting gap (points)"].startswith("9.97 [")
    # runs recorded before the training images were evaluated: no gap, said so, the error still judged
    old = summary("pca-lighting", [run(PCA, i, 40.0 + i) for i in range(3)] + [run(NO, i, 42.0 + i) for i in range(3)])
    assert len(old.comparisons) == 1 and stats.GAP_NOT_MEASURED in old.notes
    assert old.rows[0]["overfitting gap (points)"] == "–"
    # depth: without conv3 the gap is about 2 points lower (reported with its interval, not judged)
    full = [run("all five conv layers", i, 40.0 + i, extra={"train_eval_error": 30.0 + i}) for i in range(3)]
    conv3 = [run("without conv3", i, 42.0 + i + 0.1 * (i == 1), extra={"train_eval_error": 34.0 + i}) for i in range(3)]
    d = summary("depth", full + conv3)
    assert len(d.comparisons) == 1 and d.rows[1]["gap lower by, vs all five (points)"].startswith("+1.97 [")
    assert any(n.startswith("overfitting gap") and "conv3 +1.97 [" in n for n in d.notes)


def test_ten_crop_is_paired_on_the_same_weights():
    def tc(seed, centre, ten):
        return run("alexnet-mini", seed, centre, extra={"centre_error": centre, "ten_crop_error": ten, "centre_error5": 5.0,
                                                         "ten_crop_error5": 4.0, "centre_seconds": 1.0,
                                                         "ten_crop_seconds": 9.0})

    s = summary("ten-crop", [tc(0, 30.0, 29.0), tc(1, 45.0, 44.1), tc(2, 60.0, 58.9)])
    c = s.comparisons[0]
    assert c.paired and c.verdict == "reproduces" and c.diff == pytest.approx(1.0)
    assert s.rows[1]["top-1 error (%)"].startswith("44.00 [")
    s = summary("ten-crop", [tc(0, 30.0, 29.0), tc(1, 45.0, 45.5), tc(2, 60.0, 58.9)])
    assert s.comparisons[0].verdict == "inconclusive" and "smallest effect" in s.verdict


def test_the_record_carries_the_comparisons_and_how_the_runs_were_made():
    exp = experiments.get("pca-lighting")
    results = [run(PCA, 0, 40.0), run(PCA, 1, 41.0, extra={"wall_s": 33.3}), run(NO, 0, 42.0), run(NO, 1, 90.0)]
    rec = output.build_record(exp, results, scale=exp.fast, data="digits", command="c", machine="m",
                              machine_spec={"cpu": "x", "cores": 2}, date="2026-11-30")
    assert rec["verdict_word"] == "inconclusive" and rec["rule"] == "95 % interval"
    assert rec["comparisons"][0]["paired"] is True and rec["comparisons"][0]["low"] is None  # one pair left
    assert rec["excluded"] == [f"{NO}, seed 1: did not learn (final validation error 90.0 %, at chance)"]
    assert rec["precision"] == "bf16" and rec["machine_spec"]["cores"] == 2 and rec["date"] == "2026-11-30"
    assert [r["wall_s"] for r in rec["runs"]] == [20.0, 33.3, 20.0, 20.0] and rec["wall_s"] == pytest.approx(93.3)
    md = output.section_md(rec, {"depth": 2})
    assert f"- left out, never averaged: {NO}, seed 1: did not learn" in md
    assert "no interval" in md and "paired by seed, 1 pair" in md and "1 pairs" not in md
    assert "Runs shared with: [`depth`](depth.md) (2 runs)" in md and "precision bf16" in md  # its own page
    assert "Runs shared with: [`depth`](#depth) (2 runs)" in output.section_md(rec, {"depth": 2}, in_index=True)
    results[0].precision = "fp32"
    assert output.precision_of(results) == "mixed: bf16, fp32"


def test_a_summary_that_still_returns_three_items_works():
    import dataclasses

    old_rule = "reproduces: x lowered the error (+2.00 points, beyond the seeds' spread ±0.50)"
    exp = dataclasses.replace(experiments.get("pca-lighting"), summarize=lambda e, r: ([{"arm": "a"}], old_rule, ["n"]))
    rec = output.build_record(exp, [run(PCA, 0, 40.0)], scale=exp.fast, data="d", command="c", machine="m")
    assert rec["verdict"] == old_rule and rec["comparisons"] == [] and rec["rule"] == "half-range over seeds (old)"
    assert "not yet re-judged" in output.section_md(rec)
    new_text = ([], "inconclusive: x? (+1.00 points, 95 % CI [-2.00, +4.00]; paired by seed, 3 pairs)", [])
    exp = dataclasses.replace(exp, summarize=lambda e, r: new_text)
    rec = output.build_record(exp, [run(PCA, 0, 40.0)], scale=exp.fast, data="d", command="c", machine="m")
    assert rec["rule"] == "95 % interval" and rec["verdict_word"] == "inconclusive"
    assert list(stats.Summary([], "inconclusive: x", ["n"])) == [[], "inconclusive: x", ["n"]]
    assert stats.as_summary(([], "v", [], ["c"])).comparisons == ["c"]


# ------------------------------------------------------------------------- the committed doc

def committed_records() -> list[dict]:
    return pages.load_records(DOCS, list(experiments.EXPERIMENTS))


def test_docs_experiments_md_is_what_the_committed_records_make():
    """A hand edit, or a verdict the records no longer give, shows as a difference: regenerate with
    `alexnet experiment report --out docs/experiments --index docs/experiments.md`."""
    records = committed_records()
    assert len(records) == len(experiments.EXPERIMENTS)
    made = pages.index_md(records, image_prefix="experiments/", preface=(DOCS / "preface.md").read_text())
    assert (ROOT / "docs" / "experiments.md").read_text() == made
    for r in records:
        assert (DOCS / f"{r['experiment']}.md").read_text() == output.section_md(r, output.shared_runs(r, records))


def test_every_committed_verdict_follows_from_its_runs():
    for r in committed_records():
        again = pages.rederive(experiments.get(r["experiment"]), r)
        for key in ("verdict", "verdict_word", "comparisons", "excluded", "rows", "notes", "rule"):
            assert again[key] == r[key], (r["experiment"], key)


def test_the_standing_names_a_claim_of_several_statements_as_such():
    """towers and dropout judge several statements (no one word for the claim): said so, not "no verdict"."""
    several = {"experiment": "x", "verdict": "(1) a — reproduces: … (2) b — inconclusive: …", "verdict_word": None,
               "comparisons": [{}, {}], "rule": "95 % interval"}
    lone = {**several, "experiment": "y", "comparisons": []}
    rec = committed_records()[0]
    line = pages.standing([{**rec, **several}, {**rec, **lone}])[0]
    assert "1 with several statements, each judged on its own (`x`)" in line and "1 no verdict (`y`)" in line


def test_the_standing_says_all_images_for_whole_split_records_beside_sampled_ones():
    """train_subset 0 means the whole training split: beside sampled records it reads "… or all"."""
    rec = committed_records()
    def scale_line(subsets):
        return pages.standing([{**r, "scale": {**r["scale"], "train_subset": s}} for r, s in zip(rec, subsets)])[-1]
    n = len(rec)
    assert scale_line([0] * n).startswith("These runs trained on all training images")
    assert scale_line([5000] * n).startswith("These runs trained on 5,000 training images")
    assert scale_line([0] + [5000] * (n - 2) + [10000]).startswith("These runs trained on 5,000–10,000 or all training")


def test_the_hand_written_preface_claims_no_verdict_and_no_scale_the_records_do_not_have():
    text = (DOCS / "preface.md").read_text()
    assert not re.search(r"reproduc|contradict|inconclusive", text, re.I), "verdicts belong to the records"
    old = [r["experiment"] for r in committed_records() if r["scale"]["train_subset"] != 0]
    says_all = "Every record here comes from the re-run at the default scale" in text
    assert says_all == (not old), f"the preface's scale sentence is out of date: reduced-scale records {old}"
    assert not re.search(r"under way|pending", text), "the re-run is finished: nothing is pending"


def test_report_rederives_records_and_copies_run_files(tmp_path, capsys):
    out = tmp_path / "docs"
    out.mkdir()
    rec = json.loads((DOCS / "ten-crop.json").read_text())
    committed, rec["verdict"] = rec["verdict"], "stale: not derived from the runs"
    key = Path(rec["runs"][0]["run_dir"]).name
    src = tmp_path / "elsewhere" / key
    src.mkdir(parents=True)
    for f in ("config.json", "metrics.csv", "result.json", "weights.safetensors"):
        (src / f).write_text("x")
    (out / "ten-crop.json").write_text(json.dumps(rec))
    from alexnet.cli import main

    assert main(["experiment", "report", "--out", str(out), "--runs", str(tmp_path / "elsewhere"),
                 "--index", str(tmp_path / "experiments.md")]) == 0
    new = json.loads((out / "ten-crop.json").read_text())
    assert new["verdict"] == committed and "ten-crop testing lowers the top-1 error" in committed
    assert "(was: stale: not derived from the runs)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "runs" / key).iterdir()) == ["config.json", "metrics.csv", "result.json"]
    assert "![ten-crop](docs/ten-crop.png)" in (tmp_path / "experiments.md").read_text()


def test_report_keeps_the_run_files_already_in_out(tmp_path, monkeypatch):
    """A copy of an experiment folder reported again keeps its own run files; only missing ones are
    filled from the run's recorded directory (relative to where it trained)."""
    from alexnet.experiments.pages import copy_run_files

    monkeypatch.chdir(tmp_path)
    for folder, text in (("e1", "original"), ("e1y", "edited")):
        (tmp_path / folder / "runs" / "k").mkdir(parents=True)
        (tmp_path / folder / "runs" / "k" / "metrics.csv").write_text(text)
    (tmp_path / "e1" / "runs" / "m").mkdir()
    (tmp_path / "e1" / "runs" / "m" / "metrics.csv").write_text("only in e1")
    record = {"runs": [{"run_dir": "e1/runs/k"}, {"run_dir": "e1/runs/m"}]}
    assert copy_run_files(record, tmp_path / "e1y") == 1
    assert (tmp_path / "e1y" / "runs" / "k" / "metrics.csv").read_text() == "edited"
    assert (tmp_path / "e1y" / "runs" / "m" / "metrics.csv").read_text() == "only in e1"
