"""Reporting: result files, notes, plots and multirun summaries, from hand-made rows."""

import csv
import json
import math
import os
import subprocess
import sys
from io import StringIO

import pytest
from rich.console import Console

from robustbench_cli.errors import UserError
from robustbench_cli.reporting import (
    aggregate_sweep,
    atomic_write_text,
    plot_accuracy_vs_eps,
    print_results,
    results_table,
    table_notes,
    write_job_failure,
    write_results,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(attack, eps, accuracy, clean=0.9, **extra):
    n = 200
    return {
        "attack": attack,
        "eps": eps,
        "accuracy": accuracy,
        "top5": None,
        "n": n,
        "correct": round(accuracy * n),
        "seconds": 1.25,
        "clean_accuracy": clean,
        **extra,
    }


def monotone_rows():
    """A healthy table: accuracy falls with eps, PGD beats FGSM, noise is weakest."""
    return [
        row("none", 0.0, 0.9),
        row("fgsm", 0.01, 0.7),
        row("fgsm", 0.03, 0.5),
        row("pgd_linf", 0.01, 0.6),
        row("pgd_linf", 0.03, 0.3),
        row("bim", 0.03, 0.35),
        row("gaussian", 0.03, 0.88),
        row("fgsm", 0.03, 0.52, label="pred"),
        row("pgd_l2", 0.5, 0.2),
    ]


# --- atomic writes -----------------------------------------------------------------------


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old content that is longer than the new one")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_keeps_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


# --- per-run files -----------------------------------------------------------------------


def test_write_results_writes_every_file(tmp_path):
    identity = {"model": "mlp", "dataset": "mnist", "defense": "none", "seed": 0}
    rows = [{**r, **identity} for r in monotone_rows()]
    rows[3]["queries"] = 1000
    run_dir = tmp_path / "run"
    write_results(run_dir, rows, notes=["something odd"])

    assert json.loads((run_dir / "results.json").read_text()) == rows

    with open(run_dir / "results.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    header = list(records[0])
    assert header[:8] == ["attack", "eps", "accuracy", "top5", "n", "correct", "seconds", "clean_accuracy"]
    assert header[8:] == ["model", "dataset", "defense", "seed", "label", "queries"]
    assert [r["attack"] for r in records] == [r["attack"] for r in rows]
    assert float(records[1]["accuracy"]) == 0.7 and records[1]["top5"] == ""
    assert records[3]["queries"] == "1000"

    markdown = (run_dir / "results.md").read_text()
    for attack in ("none", "fgsm", "pgd_linf", "bim", "gaussian", "fgsm_pred", "pgd_l2"):
        assert f"| {attack} |" in markdown
    assert "| 70.00 |" in markdown and "model: mlp" in markdown
    assert markdown.rstrip().endswith("## Notes\n\n- something odd")

    assert (run_dir / "accuracy_vs_eps.png").read_bytes().startswith(PNG_SIGNATURE)
    assert not [name for name in os.listdir(run_dir) if name.endswith(".tmp")]


def test_write_results_skips_plot_without_an_eps_curve(tmp_path):
    write_results(tmp_path, [row("none", 0.0, 0.9), row("fgsm", 0.03, 0.5)])
    assert not (tmp_path / "accuracy_vs_eps.png").exists()
    assert "## Notes" not in (tmp_path / "results.md").read_text()


def test_write_job_failure(tmp_path):
    write_job_failure(tmp_path / "3", ["attack=pgd_linf", "eps=0.1"], "boom")
    assert json.loads((tmp_path / "3" / "error.json").read_text()) == {
        "overrides": ["attack=pgd_linf", "eps=0.1"],
        "error": "boom",
    }


def png_width(path):
    return int.from_bytes(path.read_bytes()[16:20], "big")  # from the IHDR chunk


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "plot.png"
    plot_accuracy_vs_eps([r for r in monotone_rows() if r["attack"] != "pgd_l2"], path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_plot_draws_each_norm_in_its_own_panel(tmp_path):
    linf_only, both_norms = tmp_path / "linf.png", tmp_path / "both.png"
    plot_accuracy_vs_eps([row("pgd_linf", 0.01, 0.6), row("pgd_linf", 0.03, 0.3)], linf_only)
    plot_accuracy_vs_eps([row("pgd_linf", 0.01, 0.6), row("pgd_l2", 0.5, 0.3)], both_norms)
    assert png_width(both_norms) == 2 * png_width(linf_only)


# --- console -----------------------------------------------------------------------------


def test_results_table_has_one_line_per_row_in_percent():
    rows = monotone_rows()
    table = results_table(rows, notes=["watch out"])
    assert table.row_count == len(rows)
    accuracy = next(column for column in table.columns if column.header == "accuracy (%)")
    assert list(accuracy.cells)[:2] == ["90.00", "70.00"]
    assert "watch out" in table.caption


def test_print_results_shows_table_and_notes():
    console = Console(file=StringIO(), width=140)
    print_results(monotone_rows(), notes=["label leaking suspected"], console=console)
    printed = console.file.getvalue()
    assert "pgd_linf" in printed and "30.00" in printed and "label leaking suspected" in printed


def test_narrow_console_wraps_numbers_instead_of_cutting_them():
    console = Console(file=StringIO(), width=50)
    print_results([row("pgd_linf", 8 / 255, 0.3, model=m) for m in ("mlp", "cnn")], console=console)
    printed = console.file.getvalue()
    assert "…" not in printed and printed.count("mlp") == 1


# --- notes -------------------------------------------------------------------------------


N = 200


def hits(count, n=N):
    """Per-point outcomes: the first `count` points right, the rest wrong."""
    return [i < count for i in range(n)]


def scored(attack, eps, count, clean=180, **extra):
    """A row and its per-point outcomes; the right points are always the first `count` ones,
    so two rows differ exactly by the count difference (all discordant pairs one way)."""
    outcomes = {"correct": hits(count), "clean": hits(clean)}
    return row(attack, eps, count / N, clean=clean / N, **extra), outcomes


def notes_of(*scored_rows):
    rows, outcomes = zip(*scored_rows)
    return table_notes(rows, outcomes)


def test_notes_silent_on_a_clean_monotone_table():
    rows = monotone_rows()
    outcomes = [{"correct": hits(round(r["accuracy"] * N)), "clean": hits(180)} for r in rows]
    assert table_notes(rows, outcomes) == []


def test_note_attacked_accuracy_above_clean_only_when_significant():
    notes = notes_of(scored("fgsm", 0.03, 190, clean=180))  # 10 points gained, none lost
    assert len(notes) == 1 and "above the clean accuracy 90.00%" in notes[0] and "McNemar p=0.002" in notes[0]
    assert notes_of(scored("fgsm", 0.03, 183, clean=180)) == []  # 3 points: p = 0.25


@pytest.mark.parametrize("one_step", ["fgsm", "step_ll", "fast_fgsm"])
def test_note_one_step_attack_stronger_than_pgd(one_step):
    notes = notes_of(scored(one_step, 0.03, 80), scored("pgd_linf", 0.03, 100))
    assert len(notes) == 1 and notes[0].startswith(f"{one_step} at eps=0.03 is stronger")


def test_a_one_image_difference_fires_no_note():
    assert notes_of(scored("fgsm", 0.03, 99), scored("pgd_linf", 0.03, 100)) == []
    assert notes_of(scored("pgd_linf", 0.01, 100), scored("pgd_linf", 0.03, 101)) == []
    assert notes_of(scored("pgd_linf", 0.03, 100), scored("random_sign", 0.03, 99)) == []


def test_rows_without_per_point_outcomes_are_never_compared():
    assert table_notes([row("fgsm", 0.03, 0.1), row("pgd_linf", 0.03, 0.9)]) == []


def test_no_note_for_bim_stronger_than_pgd():
    assert notes_of(scored("bim", 0.03, 80), scored("pgd_linf", 0.03, 100)) == []


def test_note_accuracy_rising_with_eps():
    rising = [scored("pgd_linf", 0.01, 100), scored("pgd_linf", 0.02, 101), scored("pgd_linf", 0.03, 120)]
    notes = notes_of(*rising)
    assert len(notes) == 1 and "rises with eps" in notes[0] and "eps=0.03" in notes[0]


@pytest.mark.parametrize("black_box", ["nes", "transfer", "gaussian", "random_sign", "trunc_normal"])
def test_note_black_box_or_noise_stronger_than_every_white_box(black_box):
    rows = [scored("fgsm", 0.03, 100), scored("pgd_linf", 0.03, 80), scored(black_box, 0.03, 60)]
    notes = notes_of(*rows)
    assert len(notes) == 1 and notes[0].startswith(f"{black_box} at eps=0.03")
    assert notes_of(*rows[:2], scored(black_box, 0.03, 90)) == []


def test_torchattacks_rows_are_named_and_judged_by_their_class():
    square = scored("torchattacks", 0.03, 60, cls="Square")
    notes = notes_of(scored("pgd_linf", 0.03, 80), square)
    assert len(notes) == 1 and notes[0].startswith("torchattacks_square at eps=0.03 is stronger")
    assert notes_of(scored("pgd_linf", 0.03, 80), scored("torchattacks", 0.03, 60, cls="PGD")) == []


def test_black_box_is_not_compared_with_an_other_norm():
    assert notes_of(scored("pgd_l2", 0.03, 20), scored("nes", 0.03, 60)) == []


def test_jsma_is_an_l0_attack_and_not_compared_with_linf_noise():
    assert notes_of(scored("jsma", 0.03, 100), scored("gaussian", 0.03, 60)) == []


def test_note_label_leaking():
    for pred_row in (scored("fgsm_pred", 0.03, 80), scored("fgsm", 0.03, 80, label="pred")):
        notes = notes_of(scored("fgsm", 0.03, 100, label="true"), pred_row)
        assert len(notes) == 1 and "label leaking (Kurakin et al.)" in notes[0]
    assert notes_of(scored("fgsm", 0.03, 82), scored("fgsm_pred", 0.03, 80)) == []


def test_notes_compare_rows_of_the_same_model_and_protocol_only():
    rows = [scored("fgsm", 0.03, 80, model="cnn"), scored("pgd_linf", 0.03, 100, model="mlp")]
    assert notes_of(*rows) == []
    assert notes_of(scored("fgsm", 0.03, 80, protocol="robust"),
                    scored("pgd_linf", 0.03, 100, protocol="all_points")) == []
    rows.append(scored("pgd_linf", 0.03, 100, model="cnn"))
    notes = notes_of(*rows)
    assert len(notes) == 1 and notes[0].startswith("[cnn] fgsm")


def test_sanity_note_fires_when_significantly_above_one_percent_at_an_unbounded_budget():
    def check(count):
        return scored("pgd_linf", 1.0, count, check="sanity")

    assert notes_of(check(2)) == []  # 1%
    assert notes_of(check(4)) == []  # 2% of 200 points: P(>= 4 | 1%) = 0.14, noise
    notes = notes_of(check(10), scored("pgd_linf", 0.03, 100))  # 5%: P(>= 10 | 1%) < 1e-4
    assert len(notes) == 1 and notes[0].startswith("sanity check failed: pgd_linf")
    assert float(notes[0].split("binomial p=")[1].split(")")[0]) < 0.01


def test_wilson_interval_and_mcnemar_on_known_counts():
    from robustbench_cli.reporting.stats import mcnemar, wilson_interval

    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)
    assert wilson_interval(0, 500)[0] == 0.0 and wilson_interval(500, 500)[1] == 1.0
    p, only_first, only_second = mcnemar(hits(10, 20), hits(0, 20))
    assert (only_first, only_second) == (10, 0) and p == pytest.approx(2 / 1024)
    assert mcnemar(hits(1, 20), hits(0, 20))[0] == 1.0
    from robustbench_cli.reporting.stats import binomial_upper_tail

    assert binomial_upper_tail(1, 10, 0.5) == pytest.approx(1 - 0.5 ** 10)
    assert binomial_upper_tail(3, 200, 0.01) == pytest.approx(1 - sum(
        math.comb(200, i) * 0.01 ** i * 0.99 ** (200 - i) for i in range(3)))


# --- multirun aggregation ----------------------------------------------------------------


def make_job(sweep, name, overrides):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    return job


def test_aggregate_sweep(tmp_path):
    sweep = tmp_path / "multirun"
    for name, eps, accuracy in (("0", 0.0, 0.9), ("1", 0.1, 0.6)):
        job = make_job(sweep, name, ["attack=fgsm", f"eps={eps}"])
        write_results(job, [row("fgsm", eps, accuracy, model="mlp")])
    failed_job = make_job(sweep, "2", ["attack=pgd_linf", "eps=0.1"])
    write_job_failure(failed_job, ["attack=pgd_linf", "eps=0.1"], "CUDA out of memory")
    make_job(sweep, "10", ["attack=pgd_linf", "eps=0.0"])
    (sweep / "multirun.yaml").write_text("hydra: {}\n")

    result = aggregate_sweep(sweep)

    assert [(r["job"], r["eps"]) for r in result["rows"]] == [("0", 0.0), ("1", 0.1)]
    assert result["failed"] == [
        {"job": "2", "overrides": ["attack=pgd_linf", "eps=0.1"], "error": "CUDA out of memory"}
    ]
    assert [job["job"] for job in result["incomplete"]] == ["10"]

    with open(sweep / "summary.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    fgsm = next(r for r in records if r["attack"] == "fgsm")
    assert (fgsm["status"], fgsm["clean"], fgsm["eps=0"], fgsm["eps=0.1"]) == (
        "ok",
        "90.00",
        "90.00",
        "60.00",
    )
    failed = next(r for r in records if r["status"] == "failed")
    assert (failed["job"], failed["attack"], failed["error"]) == ("2", "pgd_linf", "CUDA out of memory")
    assert failed["overrides"] == "attack=pgd_linf eps=0.1"
    assert next(r for r in records if r["status"] == "incomplete")["job"] == "10"

    markdown = (sweep / "summary.md").read_text()
    assert "| attack | clean | eps=0 | eps=0.1 |" in markdown
    assert "| fgsm | 90.00 | 90.00 | 60.00 |" in markdown
    failures = markdown.split("## Failed jobs")[1].split("## Incomplete jobs")[0]
    assert "`2`" in failures and "attack=pgd_linf eps=0.1" in failures
    assert "CUDA out of memory" in failures
    assert "`10`" in markdown.split("## Incomplete jobs")[1]
    assert (sweep / "accuracy_vs_eps.png").read_bytes().startswith(PNG_SIGNATURE)


def test_aggregate_sweep_splits_rows_by_model_and_varying_overrides(tmp_path):
    sweep = tmp_path / "multirun"
    jobs = [
        ("0", "mlp", "attack.steps=10", 0.5),
        ("1", "cnn", "attack.steps=10", 0.4),
        ("2", "cnn", "attack.steps=40", 0.3),
    ]
    for name, model, steps, accuracy in jobs:
        job = make_job(sweep, name, [f"model={model}", "attack=pgd_linf", steps, "eps=0.03"])
        write_results(job, [row("pgd_linf", 0.03, accuracy, model=model)])
    aggregate_sweep(sweep)
    markdown = (sweep / "summary.md").read_text()
    assert "| model | attack.steps | attack | clean | eps=0.03 |" in markdown
    assert "| cnn | 40 | pgd_linf | 90.00 | 30.00 |" in markdown
    assert "| mlp | 10 | pgd_linf | 90.00 | 50.00 |" in markdown


def test_aggregate_sweep_never_mixes_protocols_and_pairs_rows_from_points_files(tmp_path):
    from robustbench_cli.reporting.points import write_points

    sweep = tmp_path / "multirun"
    jobs = [("0", "robust", "fgsm", 80), ("1", "all_points", "fgsm", 95), ("2", "robust", "pgd_linf", 100)]
    for name, protocol, attack, count in jobs:
        job = make_job(sweep, name, [f"protocol={protocol}", f"attack={attack}", "eps=0.03"])
        row_, outcome = scored(attack, 0.03, count, protocol=protocol)
        write_results(job, [row_])
        write_points(job, {f"{attack}@0.03": outcome["correct"], "clean": outcome["clean"]})
    aggregate_sweep(sweep)
    markdown = (sweep / "summary.md").read_text()
    assert "| protocol | attack | clean | eps=0.03 |" in markdown
    assert "| all_points | fgsm | 90.00 | 47.50 |" in markdown
    assert "| robust | fgsm | 90.00 | 40.00 |" in markdown
    # fgsm and pgd_linf of the robust protocol are paired point by point across their jobs.
    notes = markdown.split("## Notes")[1]
    assert "[protocol=robust] fgsm at eps=0.03 is stronger than pgd_linf" in notes
    assert "all_points" not in notes


def test_aggregate_sweep_without_jobs_is_a_user_error(tmp_path):
    (tmp_path / "not_a_job").mkdir()
    with pytest.raises(UserError, match="no jobs found under"):
        aggregate_sweep(tmp_path)
    with pytest.raises(UserError, match="not found"):
        aggregate_sweep(tmp_path / "missing")


def test_aggregate_sweep_reports_unreadable_results_as_failed(tmp_path):
    job = make_job(tmp_path, "0", ["attack=fgsm"])
    (job / "results.json").write_text("[{")
    result = aggregate_sweep(tmp_path)
    assert result["rows"] == [] and "unreadable results.json" in result["failed"][0]["error"]


def test_reporting_import_stays_free_of_torch_and_matplotlib():
    code = (
        "import sys, robustbench_cli.reporting; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning', 'matplotlib')))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"
