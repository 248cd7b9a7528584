"""Staged studies: stage selection by table, the stage cache, resuming, tables with the
document's numbers beside ours; on a real two-stage study (train, then eval) on Fashion-MNIST."""

import json
import textwrap

import pytest
from helpers import FASHION, ok, robust

from robustbench_cli.errors import UserError
from robustbench_cli.studies.spec import load_study

STUDY = textwrap.dedent(f"""
    title: Two stages
    common:
      all: [dataset=fashion_mnist, dataset.root={FASHION}, dataset.limit_test=200]
    stages:
      classifier:
        command: train
        overrides: [dataset.limit_train=1000, trainer.max_epochs=1, seed=3]
      attacked:
        command: eval
        overrides: ["ckpt_path=${{stages.classifier.ckpt}}", attack=fgsm, "eps=[0,0.1]",
                    sanity=false, progress=false]
    tables:
      clean:
        title: Clean accuracy
        stages: [classifier]
        rows: model
        cols: dataset
        value: test_accuracy
        paper: {{mlp: {{fashion_mnist: 89.0}}}}
      fgsm:
        title: FGSM
        stages: [attacked]
        rows: series
        cols: eps
        value: accuracy
        where: {{attack: fgsm}}
        paper: {{fgsm: {{0.1: 20.5}}}}
        effect: FGSM lowers accuracy
        expect:
          - {{more: [fgsm, 0], than: [fgsm, 1/10], says: accuracy falls under FGSM}}
          - {{more: [fgsm, 0.1], than: [fgsm, 0], says: a check that fails}}
          - {{more: [fgsm, 0.3], than: [fgsm, 0], says: a cell not measured}}
          - {{more: [fgsm, 0], than: 0.05, says: clean accuracy is above 5%}}
        plot: true
    """)


def write_study(folder, text=STUDY):
    path = folder / "two_stages.yaml"
    path.write_text(text)
    return str(path)


def stage_record(work):
    return json.loads((work / "outputs" / "studies" / "two_stages" / "study.json").read_text())


def statuses(work):
    return {name: stage["status"] for name, stage in stage_record(work)["stages"].items()}


def folders(work):
    return sorted(p.name for p in (work / "outputs" / "studies" / "two_stages").iterdir() if p.is_dir())


def test_a_study_runs_its_tables_stages_reuses_them_and_resumes(tmp_path):
    study = write_study(tmp_path)
    # tables=[clean] needs only the classifier
    ok(robust("study", study, "tables=[clean]", cwd=tmp_path))
    assert statuses(tmp_path) == {"classifier": "ran"}
    [classifier] = folders(tmp_path)[:1]
    # the whole study: the classifier is reused, the eval runs; tables beside the paper's numbers
    ok(robust("study", study, "report_dir=published", cwd=tmp_path))
    assert statuses(tmp_path) == {"classifier": "cached", "attacked": "ran"}
    attacked = stage_record(tmp_path)["stages"]["attacked"]["dir"]
    rows = json.loads((tmp_path / attacked / "results.json").read_text())
    at_01 = next(r for r in rows if r["attack"] == "fgsm" and r["eps"] == 0.1)
    table = (tmp_path / "outputs" / "studies" / "two_stages" / "tables" / "fgsm.md").read_text()
    assert f"| fgsm | {100 * rows[0]['accuracy']:.1f} / - | {100 * at_01['accuracy']:.1f} / 20.5 |" in table
    report = (tmp_path / "outputs" / "studies" / "two_stages" / "report.md").read_text()
    assert "## clean: Clean accuracy" in report and "## fgsm: FGSM" in report
    assert "- accuracy falls under FGSM: reproduced (" in report
    assert "- a check that fails: NOT reproduced (" in report
    assert "- a cell not measured: not measured: no cell (fgsm; 0.3)" in report
    assert f"- clean accuracy is above 5%: reproduced ({100 * rows[0]['accuracy']:.1f} vs 5.0)" in report
    assert (tmp_path / "published" / "report.md").read_text() == report
    assert (tmp_path / "published" / "tables" / "fgsm.png").stat().st_size > 0
    before = folders(tmp_path)
    checkpoint = tmp_path / "outputs" / "studies" / "two_stages" / classifier / "checkpoints" / "best.ckpt"
    stamp = checkpoint.stat().st_mtime_ns

    # a second run starts no fit and no attack, and makes no new folder
    again = ok(robust("study", study, cwd=tmp_path))
    assert set(statuses(tmp_path).values()) == {"cached"}
    assert "Epoch" not in again.stdout + again.stderr and "results in" not in again.stdout
    assert folders(tmp_path) == before and checkpoint.stat().st_mtime_ns == stamp

    # interrupted while attacking (run.json, written last, missing; one row not yet done):
    # the eval resumes in its folder, keeping the finished row
    run_dir = tmp_path / attacked
    (run_dir / "run.json").unlink()
    (run_dir / "results.json").write_text(json.dumps(
        [r for r in rows if r["attack"] == "fgsm" and r["eps"] == 0], indent=2))
    resumed = ok(robust("study", study, cwd=tmp_path))
    assert "finished row(s) kept" in resumed.stdout
    assert statuses(tmp_path) == {"classifier": "cached", "attacked": "resumed"}
    assert folders(tmp_path) == before
    redone = json.loads((run_dir / "results.json").read_text())
    assert next(r for r in redone if r["attack"] == "fgsm" and r["eps"] == 0.1)["correct"] == at_01["correct"]

    # a changed stage config is a new stage folder; the unchanged classifier stays cached
    ok(robust("study", study, "tables=[fgsm]", "dataset.limit_test=100", "dry_run=true", cwd=tmp_path))
    assert folders(tmp_path) == before


def test_a_failing_stage_stops_the_study_with_one_line(tmp_path):
    study = write_study(tmp_path, STUDY.replace("attack=fgsm", "attack=fgsm attack.steps=-1").replace(
        "trainer.max_epochs=1", "trainer.max_epochs=0"))
    result = robust("study", study, cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("robust study: error: stage classifier failed (exit 2)")
    assert stage_record(tmp_path)["status"] == "failed"


@pytest.mark.parametrize("change, message", [
    (("${{stages.classifier.ckpt}}", "${{stages.attacked.ckpt}}"), "attacked is a later stage"),
    (("${{stages.classifier.ckpt}}", "${{stages.nowhere.ckpt}}"), "nowhere is no stage"),
    (("${{stages.classifier.ckpt}}", "${{stages.classifier.weights}}"), "a stage gives ckpt, dir"),
    (("command: eval", "command: attack"), "command must be one of train, eval, detect, transfer"),
    (("stages: [attacked]", "stages: [attackd]"), "unknown stage 'attackd'"),
    (("value: accuracy", "value: 3"), "tables.fgsm.value must name a row field"),
    (("title: Two stages", "titel: Two stages"), "unknown key(s) titel"),
    (("than: [fgsm, 1/10]", "than: [fgsm]"), "(one value per cols field) or a number"),
    (("[fgsm, 0], than: 0.05", "0.5, than: 0.05"), "compare a cell, not two numbers"),
])
def test_study_file_mistakes_are_one_line_errors(tmp_path, change, message):
    old, new = (part.replace("{{", "{").replace("}}", "}") for part in change)
    assert old in STUDY
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        load_study(write_study(tmp_path, STUDY.replace(old, new)))
    assert "\n" not in str(caught.value)


def test_tables_select_their_stages_and_those_they_use(tmp_path):
    study = load_study(write_study(tmp_path))
    assert [s.name for s in study.stages_for(["fgsm"])] == ["classifier", "attacked"]
    assert [s.name for s in study.stages_for(["clean"])] == ["classifier"]
    with pytest.raises(UserError, match="unknown table"):
        study.stages_for(["table9"])


def test_a_transfer_stage_uses_train_stages_and_is_hashed_by_its_config(tmp_path):
    from robustbench_cli.studies.stages import fill_references, stage_hash

    text = STUDY.replace("tables:", textwrap.dedent("""\
          crossed:
            command: transfer
            overrides: ["sources=[${stages.classifier.ckpt}]", "targets=[${stages.classifier.ckpt}]"]
        tables:"""), 1)
    stage = load_study(write_study(tmp_path, text)).stages["crossed"]
    assert stage.needs == ["classifier"]
    overrides = fill_references(stage, {"classifier": {"ckpt": "/runs/a.ckpt", "dir": "/runs"}})
    assert "sources=[/runs/a.ckpt]" in overrides
    assert stage_hash("transfer", overrides) != stage_hash("transfer", [*overrides, "eps=0.1"])
    # a list of attacks composes into one merged node: each attack still counts
    eval_stage = ["ckpt_path=/runs/a.ckpt", "eps=0.1"]
    hashes = {stage_hash("eval", [*eval_stage, attack]) for attack in
              ("attack=bim", "attack=[fgsm,bim]", "attack=[step_ll,iter_ll,bim]", "attack=[bim,fgsm]")}
    assert len(hashes) == 4


def test_where_a_stage_logs_or_what_it_also_saves_keeps_its_hash():
    """Keys that do not change what a stage computes stay out of its hash, so adding such a
    key to the tool does not invalidate every cached stage of every study."""
    from robustbench_cli.studies.stages import stage_hash

    train = ["model=mlp", "dataset=fashion_mnist"]
    assert stage_hash("train", train) == stage_hash("train", [*train, "logger=tensorboard",
                                                              "progress=false"])
    evaluation = ["ckpt_path=/runs/a.ckpt", "eps=0.1", "attack=fgsm"]
    assert stage_hash("eval", evaluation) == stage_hash("eval", [*evaluation, "logger=mlflow",
                                                                 "save_adversarial=true"])
    assert stage_hash("eval", evaluation) != stage_hash("eval", [*evaluation, "trainer=cpu",
                                                                 "trainer.precision=bf16-mixed"])


def test_scale_full_adds_its_overrides_and_shipped_studies_load():
    from robustbench_cli.studies.spec import available

    assert "quickstart" in available()
    small, full = load_study("quickstart"), load_study("quickstart", "full")
    assert "trainer.max_epochs=20" in full.stages["classifier"].overrides
    assert "trainer.max_epochs=20" not in small.stages["classifier"].overrides
    for name in available():
        for scale in ("small", "full"):
            assert load_study(name, scale).stages


def test_bad_study_command_lines_exit_2_with_one_line(tmp_path):
    for args in (["nosuch"], ["quickstart", "tabels=[x]"], ["quickstart", "scale=huge"],
                 ["quickstart", "tables=[nosuch]"]):
        result = robust("study", *args, cwd=tmp_path)
        assert result.returncode == 2, args
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("robust study: error: ")


def test_a_stage_must_name_the_checkpoints_it_starts_from():
    from robustbench_cli.studies.stages import stage_hash

    for command, overrides, key in (("eval", ["attack=fgsm"], "ckpt_path"),
                                    ("detect", [], "ckpt_path"),
                                    ("train", ["defense=hgd"], "defense.target_ckpt"),
                                    ("train", ["defense=prune"], "defense.source_ckpt"),
                                    ("analyze gradients", [], "ckpt_path")):
        with pytest.raises(UserError, match=f"needs {key}="):
            stage_hash(command, overrides)
    assert stage_hash("train", ["defense=prune", "defense.source_ckpt=/runs/a.ckpt"])
    # an analysis is its own command: `analyze gradients` and `analyze layers` differ
    assert stage_hash("analyze gradients", ["ckpt_path=/runs/a.ckpt"]) != stage_hash(
        "analyze layers", ["ckpt_path=/runs/a.ckpt"])


def test_a_table_naming_a_field_its_rows_lack_is_an_error(tmp_path):
    from robustbench_cli.studies.tables import pivot

    table = load_study(write_study(tmp_path)).tables["fgsm"]
    rows = [{"attack": "fgsm", "series": "fgsm", "eps": 0.1, "accuracy": 0.5}]
    assert pivot(table, rows).cells == {("fgsm", "0.1"): 0.5}
    table.value = "acuracy"
    with pytest.raises(UserError, match="have no field acuracy"):
        pivot(table, rows)


def test_a_verdict_on_cells_that_round_alike_shows_their_difference():
    from robustbench_cli.studies.spec import Expect, Table
    from robustbench_cli.studies.tables import Pivot, verdicts

    table = Table("t", "t", ["a", "b"], "stage", ["eps"], "accuracy", expect=[
        Expect(("a", "0.1"), ("b", "0.1"), "a beats b"), Expect(("a", "0"), ("b", "0"), "clean")])
    cells = {("a", "0.1"): 0.218, ("b", "0.1"): 0.2175, ("a", "0"): 0.6, ("b", "0"): 0.5}
    result = Pivot(["a", "b"], ["0", "0.1"], cells, {key: {} for key in cells})
    assert verdicts(table, result) == [("a beats b", "reproduced (21.800 vs 21.750)"),
                                       ("clean", "reproduced (60.0 vs 50.0)")]
