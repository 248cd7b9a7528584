"""`robust study NAME`: run the stages a study's tables need (reusing finished ones), then
write its tables and report into OUTPUT_DIR/studies/NAME (NAME-full at scale=full).

study.json there records the last study run: each stage's status (cached, ran, resumed,
failed, planned), folder, overrides and time; it is rewritten after every stage, so an
interrupted study shows how far it got and the next run resumes from there.
"""

import json
import time
from pathlib import Path

from robustbench_cli.errors import UserError
from robustbench_cli.reporting import atomic_write_text
from robustbench_cli.studies.plots import plot_table
from robustbench_cli.studies.spec import Study
from robustbench_cli.studies.stages import (
    Outcome,
    StageFailed,
    fill_references,
    is_finished,
    outputs,
    recorded_revision,
    run_stage,
    stage_folder,
)
from robustbench_cli.studies.tables import pivot, stage_rows, table_csv, table_markdown, verdicts

RECORD = "study.json"
REPORT = "report.md"


def study_folder(study: Study, output_dir: Path) -> Path:
    suffix = "" if study.scale == "small" else f"-{study.scale}"
    return Path(output_dir).resolve() / "studies" / f"{study.name}{suffix}"


def run_study(study: Study, table_ids: list[str] | None, output_dir: Path, dry_run: bool = False,
              report_dir: Path | None = None) -> dict:
    """Run (or, dry_run, only plan) the stages; returns the study record. report_dir: where
    report.md and tables/ are copied too (docs/results/NAME for the published reports)."""
    from robustbench_cli.provenance import git_revision

    folder = study_folder(study, output_dir)
    record = {"study": study.name, "file": str(study.path), "scale": study.scale,
              "tables": table_ids or list(study.tables), "git_revision": git_revision(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running", "stages": {}}
    done: dict[str, dict] = {}  # stage name -> its outputs (dir, ckpt)
    outcomes: dict[str, Outcome] = {}
    try:
        for stage in study.stages_for(table_ids):
            if any(name not in done for name in stage.needs):  # only when planning
                outcomes[stage.name] = Outcome(stage, Path("?"), "planned")
                print(f"stage {stage.name} ({stage.command}): would run after {', '.join(stage.needs)}")
                continue
            overrides = fill_references(stage, done)
            try:
                stage_dir = stage_folder(folder, stage, overrides)
            except UserError as error:
                raise UserError(f"study {study.name}: stage {stage.name}: {error}") from None
            if is_finished(stage.command, stage_dir):
                outcome = Outcome(stage, stage_dir, "cached", overrides=overrides)
                ran_with = recorded_revision(stage_dir)
                print(f"stage {stage.name} ({stage.command}): cached in {stage_dir}"
                      + (f" (ran at revision {ran_with})" if ran_with and ran_with != record["git_revision"]
                         else ""))
            elif dry_run:
                outcomes[stage.name] = Outcome(stage, stage_dir, "planned", overrides=overrides)
                print(f"stage {stage.name} ({stage.command}): would "
                      f"{'resume' if stage_dir.is_dir() else 'run'} in {stage_dir}")
                continue
            else:
                outcome = run_stage(stage, overrides, stage_dir, Path(output_dir).resolve())
            outcomes[stage.name] = outcome
            done[stage.name] = outputs(outcome)
            if not dry_run:
                _write_record(folder, record, outcomes)
    except StageFailed as failure:
        outcomes[failure.outcome.stage.name] = failure.outcome
        _write_record(folder, record, outcomes, status="failed")
        raise
    if dry_run:
        return {**record, "status": "planned", "stages": {n: o.record() for n, o in outcomes.items()}}
    write_tables(study, folder, outcomes, table_ids)
    if report_dir is not None:
        _copy_report(folder, Path(report_dir))
    return _write_record(folder, record, outcomes, status="finished")


def _copy_report(folder: Path, report_dir: Path) -> None:
    """report.md and tables/ (md, csv, png) into report_dir, replacing what was there."""
    import shutil

    (report_dir / "tables").mkdir(parents=True, exist_ok=True)
    shutil.copy2(folder / REPORT, report_dir / REPORT)
    for path in (folder / "tables").iterdir():
        shutil.copy2(path, report_dir / "tables" / path.name)
    print(f"report copied to {report_dir / REPORT}")


def _write_record(folder: Path, record: dict, outcomes: dict, status: str = "running") -> dict:
    record = {**record, "status": status, "stages": {n: o.record() for n, o in outcomes.items()}}
    if status != "running":
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_text(folder / RECORD, json.dumps(record, indent=2) + "\n")
    return record


def write_tables(study: Study, folder: Path, outcomes: dict[str, Outcome], table_ids) -> None:
    """tables/ID.md and .csv for each table whose stages all finished, and report.md."""
    sections = []
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    for table in study.tables.values():
        if table_ids is not None and table.id not in table_ids:
            continue
        if any(name not in outcomes or outcomes[name].status in ("failed", "planned")
               for name in table.stages):
            continue
        rows = [row for name in table.stages for row in stage_rows(name, outcomes[name].dir)]
        try:
            result = pivot(table, rows)
        except UserError as error:
            raise UserError(f"study {study.name}: {error}") from None
        markdown = table_markdown(table, result)
        atomic_write_text(folder / "tables" / f"{table.id}.md", f"# {table.title}\n\n{markdown}")
        atomic_write_text(folder / "tables" / f"{table.id}.csv", table_csv(table, result))
        figure = table.plot and plot_table(table, result, folder / "tables" / f"{table.id}.png")
        sections.append(_section(table, result, markdown, figure, outcomes))
        print(f"\n{table.title}\n{markdown}")
    atomic_write_text(folder / REPORT, _report_head(study, table_ids) + "\n".join(sections))
    print(f"study {study.name}: report in {folder / REPORT}")


def _section(table, result, markdown: str, figure: bool, outcomes) -> str:
    """A table's part of report.md: what the document found, ours beside its numbers, whether
    each of its effects shows in ours, the figure and the stages it came from."""
    lines = [f"## {table.id}: {table.title}", ""]
    if table.effect:
        lines += [f"Document's effect: {table.effect.strip()}", ""]
    if table.note:
        lines += [table.note.strip(), ""]
    lines += [markdown]
    found = verdicts(table, result)
    if found:
        lines += ["Effect checks (ours):", "", *[f"- {says}: {outcome}" for says, outcome in found], ""]
    if figure:
        lines += [f"![{table.title}](tables/{table.id}.png)", ""]
    ran_at = {name: (recorded_revision(outcomes[name].dir) or "unrecorded")[:12] for name in table.stages}
    stages = ", ".join(f"`{n}` ({outcomes[n].dir.name}, commit {ran_at[n]})" for n in table.stages)
    return "\n".join([*lines, f"Stages (folder, the commit it ran at): {stages}.", ""])


def _report_head(study: Study, table_ids) -> str:
    from robustbench_cli.provenance import git_revision

    tables = f" tables=[{','.join(table_ids)}]" if table_ids else ""
    scale = "" if study.scale == "small" else f" scale={study.scale}"
    lines = [f"# {study.title}", ""]
    if study.document:
        lines += [f"Document: {study.document}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [f"Tables written by `robust study {study.name}{tables}{scale}` at commit {git_revision()}; "
              "under each table, its stages and the commit each ran at.", ""]
    if study.scale_note:
        lines += [f"Scale ({study.scale}): {study.scale_note.strip()}", ""]
    if study.stand_ins:
        lines += ["Stand-ins for what the tool lacks:", "", *[f"- {s}" for s in study.stand_ins], ""]
    return "\n".join(lines) + "\n"
