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
from robustbench_cli.studies.tables import pivot, stage_rows, table_csv, table_markdown

RECORD = "study.json"
REPORT = "report.md"


def study_folder(study: Study, output_dir: Path) -> Path:
    suffix = "" if study.scale == "small" else f"-{study.scale}"
    return Path(output_dir).resolve() / "studies" / f"{study.name}{suffix}"


def run_study(study: Study, table_ids: list[str] | None, output_dir: Path, dry_run: bool = False) -> dict:
    """Run (or, dry_run, only plan) the stages; returns the study record."""
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
    return _write_record(folder, record, outcomes, status="finished")


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
        result = pivot(table, rows)
        markdown = table_markdown(table, result)
        atomic_write_text(folder / "tables" / f"{table.id}.md", f"# {table.title}\n\n{markdown}")
        atomic_write_text(folder / "tables" / f"{table.id}.csv", table_csv(table, result))
        stages = ", ".join(f"`{name}`: {outcomes[name].dir.name}" for name in table.stages)
        sections.append(f"## {table.id}: {table.title}\n\n{table.note + chr(10) * 2 if table.note else ''}"
                        f"{markdown}\nStages: {stages}.\n")
        print(f"\n{table.title}\n{markdown}")
    atomic_write_text(folder / REPORT, _report_head(study, table_ids) + "\n".join(sections))
    print(f"study {study.name}: report in {folder / REPORT}")


def _report_head(study: Study, table_ids) -> str:
    from robustbench_cli.provenance import git_revision

    tables = f" tables=[{','.join(table_ids)}]" if table_ids else ""
    scale = "" if study.scale == "small" else f" scale={study.scale}"
    lines = [f"# {study.title}", ""]
    if study.document:
        lines += [f"Document: {study.document}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [f"Produced by `robust study {study.name}{tables}{scale}` at commit {git_revision()}.", ""]
    if study.scale_note:
        lines += [f"Scale ({study.scale}): {study.scale_note.strip()}", ""]
    if study.stand_ins:
        lines += ["Stand-ins for what the tool lacks:", "", *[f"- {s}" for s in study.stand_ins], ""]
    return "\n".join(lines) + "\n"
