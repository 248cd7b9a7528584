"""The results index (`robust results`) on real `robust eval` runs of an MLP trained on
Fashion-MNIST: a single run indexes itself, multirun jobs never do, `ingest` is idempotent,
one pivot joins a single run and a sweep, and the newest of two identical runs wins."""

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import FASHION, compose, ok, robust, robust_many

from robustbench_cli.errors import UserError
from robustbench_cli.results import index_run, ingest
from robustbench_cli.results.fields import row_fields
from robustbench_cli.results.pivot import pivot
from robustbench_cli.results.query import Record


def indexed_runs(db: Path) -> dict:
    """run folder -> number of rows the index holds for it."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT run_dir, count(*) FROM results GROUP BY run_dir"))


def results_of(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def runs(trained, tmp_path_factory):
    """Three real CLI calls: an eval at eps 0 and 0.1, a 2-job sweep over eps 0.2 and 0.3,
    and a rerun of the first call (same identity). The index as they left it is copied."""
    _, _, train_dir = trained
    work = tmp_path_factory.mktemp("results_index")
    base = ["eval", f"ckpt_path={train_dir / 'checkpoints' / 'best.ckpt'}", "dataset=fashion_mnist",
            f"dataset.root={FASHION}", "dataset.limit_test=200", "progress=false", "sanity=false",
            "attack=fgsm"]
    single = [*base, "eps=[0,0.1]"]
    sweep = ["eval", "-m", *base[1:], "eps=0.2,0.3"]
    for process in robust_many([single, sweep, single], work):
        ok(process)
    db = work / "outputs" / "results.sqlite"
    shutil.copy(db, work / "before.sqlite")  # before any `robust results` call
    singles = sorted((work / "outputs" / "eval").iterdir(), key=lambda d: (d / "run.json").stat().st_mtime)
    [sweep] = (work / "outputs" / "eval-multirun").iterdir()
    jobs = sorted(d for d in sweep.iterdir() if (d / "results.json").is_file())
    return work, singles, jobs


def test_single_runs_index_themselves_and_sweep_jobs_do_not(runs):
    work, singles, jobs = runs
    assert len(singles) == 2 and len(jobs) == 2
    before = indexed_runs(work / "before.sqlite")
    assert before == {str(run_dir.resolve()): len(results_of(run_dir)) for run_dir in singles}
    assert all(len(results_of(job)) == 2 for job in jobs)  # fgsm and fgsm_pred at one eps


def test_ingest_adds_the_sweep_once(runs, tmp_path):
    work, singles, jobs = runs
    db = tmp_path / "index.sqlite"
    shutil.copy(work / "before.sqlite", db)
    out = ok(robust("results", "ingest", "outputs/eval-multirun", f"db={db}", cwd=work)).stdout
    assert "added 4 row(s) from 2 run folder(s)" in out
    again = ok(robust("results", "ingest", "outputs/eval-multirun", "outputs", f"db={db}", cwd=work))
    assert "added 0 row(s) from 0 run folder(s)" in again.stdout
    assert indexed_runs(db) == {str(d.resolve()): len(results_of(d)) for d in [*singles, *jobs]}


def test_pivot_joins_the_single_run_and_the_sweep(runs):
    work, singles, jobs = runs
    out = ok(robust("results", "rows=attack", "cols=eps", "format=csv", cwd=work)).stdout
    table = {line["attack"]: line for line in csv.DictReader(io.StringIO(out))}
    assert set(table) == {"fgsm", "fgsm_pred"}
    expected = [row for run_dir in [singles[-1], *jobs] for row in results_of(run_dir)]
    assert len(expected) == 8
    for row in expected:
        column = f"{row['eps']:g}"
        cell = table[row["attack"]]
        assert float(cell[column]) == row["accuracy"]
        assert float(cell[f"{column} ci_low"]) == row["ci_low"] < row["accuracy"]
        assert float(cell[f"{column} ci_high"]) == row["ci_high"]
    # No arguments: every row (8 identities), accuracy with its interval, markdown when piped.
    listing = ok(robust("results", cwd=work)).stdout
    assert listing.count("±") == 8 and "| fgsm_pred | 0.3 |" in listing


def test_newest_run_wins_and_dedup_false_shows_both(runs):
    work, singles, _ = runs
    query = ["results", "attack=fgsm", "eps=0.1", "format=json"]
    [newest] = json.loads(ok(robust(*query, cwd=work)).stdout)
    assert newest["run_dir"] == str(singles[-1].resolve())
    assert newest["accuracy"] == results_of(singles[-1])[1]["accuracy"]
    both = json.loads(ok(robust(*query, "dedup=false", cwd=work)).stdout)
    assert sorted(item["run_dir"] for item in both) == sorted(str(d.resolve()) for d in singles)
    clash = robust("results", "rows=attack", "cols=eps", "dedup=false", cwd=work)
    assert clash.returncode == 2 and "dedup=false" in clash.stderr


@pytest.mark.parametrize("args", [["colour=red"], ["format=xml"], ["dedup=maybe"],
                                  ["rows=colour", "cols=eps"], ["root=no/such/dir"]])
def test_bad_input_is_one_line_and_exit_2(runs, args):
    work, _, _ = runs
    process = robust("results", *args, cwd=work)
    assert process.returncode == 2
    [line] = process.stderr.strip().splitlines()
    assert line.startswith("robust results: error: ")


def test_changed_or_corrupt_results_json(runs, tmp_path):
    """A resumed run (more rows) replaces its rows; a corrupt file or a failed job is skipped."""
    _, singles, _ = runs
    run_dir = tmp_path / "outputs" / "eval" / "resumed"
    shutil.copytree(singles[0], run_dir)
    rows = results_of(singles[0])
    (run_dir / "results.json").write_text(json.dumps(rows[:2]))
    db = tmp_path / "index" / "results.sqlite"
    assert ingest(db, [tmp_path]) == 2 and ingest(db, [tmp_path]) == 0
    (run_dir / "results.json").write_text(json.dumps(rows))
    assert ingest(db, [tmp_path]) == len(rows)
    assert indexed_runs(db) == {str(run_dir.resolve()): len(rows)}

    broken = tmp_path / "outputs" / "eval" / "broken"
    shutil.copytree(singles[0], broken)
    (broken / "results.json").write_text('[{"attack": "fgsm", ')
    failed = tmp_path / "outputs" / "eval-multirun" / "x" / "0"
    failed.mkdir(parents=True)
    (failed / "error.json").write_text('{"error": "boom"}')
    warnings = []
    assert ingest(db, [tmp_path], on_warning=warnings.append) == 0
    assert len(warnings) == 1 and str(broken.resolve()) in warnings[0]
    assert indexed_runs(db) == {str(run_dir.resolve()): len(rows)}


def test_index_run_follows_the_config_and_only_warns_on_failure(runs, tmp_path, capsys):
    _, singles, _ = runs
    db = tmp_path / "a" / "results.sqlite"
    index_run(compose("eval", f"results.db={db}", "results.index=false"), singles[0])
    assert not db.exists()
    index_run(compose("eval", f"results.db={db}"), singles[0])
    assert indexed_runs(db) == {str(singles[0].resolve()): len(results_of(singles[0]))}
    index_run(compose("eval", f"results.db={tmp_path}"), singles[0])  # a folder: cannot open
    assert "results not indexed" in capsys.readouterr().err


def record(**fields) -> Record:
    row = {"attack": "fgsm", "eps": 0.1, "model": "mlp", "accuracy": 0.5, **fields}
    return Record(row_fields(row, "abc"), row, "/runs/x", 0.0, "abc")


def test_pivot_names_the_field_that_still_varies():
    records = [record(), record(model="cnn"), record(eps=0.2)]
    with pytest.raises(UserError, match=r"differ in model \(cnn, mlp\).*model=cnn"):
        pivot(records, ["attack"], ["eps"], "accuracy")
    table = pivot(records, ["model", "attack"], ["eps"], "accuracy")
    assert table.row_keys == [("cnn", "fgsm"), ("mlp", "fgsm")] and table.col_keys == [(0.1,), (0.2,)]
