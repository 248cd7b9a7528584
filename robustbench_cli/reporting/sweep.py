"""Rebuilding a Hydra multirun's summary from what each job folder holds.

Hydra's basic sweeper skips its end-of-sweep callback when a job fails, so the summary is
rebuilt from the job folders alone: results.json (success), error.json (failure), neither
(still running or killed).
"""

import json
from collections import defaultdict
from pathlib import Path

import yaml

from robustbench_cli.errors import UserError
from robustbench_cli.reporting.atomic import atomic_write_text
from robustbench_cli.reporting.detection import format_auc, is_detection_row
from robustbench_cli.reporting.formatting import (
    csv_text,
    format_eps,
    format_percent,
    markdown_table,
)
from robustbench_cli.reporting.notes import table_notes
from robustbench_cli.reporting.plot import plot_accuracy_vs_eps
from robustbench_cli.reporting.points import read_points, row_outcomes
from robustbench_cli.reporting.result_table import identity_line
from robustbench_cli.reporting.rows import (
    IDENTITY_KEYS,
    eps_key,
    has_eps_curve,
    is_check,
    series_name,
    short_identity,
    varying_identity_keys,
)
from robustbench_cli.reporting.run_files import ERROR_JSON, PLOT_PNG, RESULTS_JSON

HYDRA_FOLDER = ".hydra"
OVERRIDES_YAML = Path(HYDRA_FOLDER) / "overrides.yaml"


def aggregate_sweep(sweep_dir) -> dict:
    """Write summary.csv, summary.md (and accuracy_vs_eps.png) at the root of a multirun folder;
    for `robust detect` sweeps the summary has one table per detection measure instead.

    Returns {"rows": result rows with a "job" key, "failed": [{"job", "overrides", "error"}],
    "incomplete": [{"job", "overrides"}]}.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep folder not found: {sweep_dir}")
    job_dirs = sorted(
        (path for path in sweep_dir.iterdir() if _is_job(path)), key=lambda path: _job_order(path.name)
    )
    if not job_dirs:
        raise UserError(f"no jobs found under {sweep_dir} (a multirun folder holds one subfolder per job)")
    rows, outcomes, failed, incomplete, settings = [], [], [], [], {}
    for job_dir in job_dirs:
        job, overrides = job_dir.name, _read_overrides(job_dir)
        settings[job] = _sweep_settings(overrides)
        outcome = _read_job(job_dir)
        if outcome is None:
            incomplete.append({"job": job, "overrides": overrides})
        elif isinstance(outcome, str):
            failed.append({"job": job, "overrides": overrides, "error": outcome})
        else:
            rows += [{**row, "job": job} for row in outcome]
            outcomes += row_outcomes(outcome, read_points(job_dir))

    if any(is_detection_row(row) for row in rows):
        summary = _DetectionSummary(rows, settings)
    else:
        summary = _Summary(rows, settings, outcomes=outcomes)
        if has_eps_curve(rows):
            plot_accuracy_vs_eps(rows, sweep_dir / PLOT_PNG)
    atomic_write_text(sweep_dir / "summary.csv", summary.csv(failed, incomplete))
    atomic_write_text(sweep_dir / "summary.md", summary.markdown(failed, incomplete))
    return {"rows": rows, "failed": failed, "incomplete": incomplete}


def _is_job(path: Path) -> bool:
    """A job folder has its outcome file, or at least the .hydra folder Hydra writes at start."""
    return (
        path.is_dir()
        and not path.name.startswith(".")
        and any((path / name).exists() for name in (RESULTS_JSON, ERROR_JSON, HYDRA_FOLDER))
    )


def _job_order(name: str):
    """Hydra numbers jobs 0, 1, ..., 10: sort numbers as numbers, other names after them."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _read_overrides(job_dir: Path) -> list[str]:
    """The job's command-line overrides, from error.json if it has them, else from Hydra."""
    error_file, overrides_file = job_dir / ERROR_JSON, job_dir / OVERRIDES_YAML
    try:
        if error_file.exists():
            recorded = json.loads(error_file.read_text(encoding="utf-8")).get("overrides")
            if isinstance(recorded, list):
                return [str(item) for item in recorded]
        if overrides_file.exists():
            listed = yaml.safe_load(overrides_file.read_text(encoding="utf-8"))
            if isinstance(listed, list):
                return [str(item) for item in listed]
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        pass  # unreadable metadata only costs the job its label; its outcome is read separately
    return []


def _read_job(job_dir: Path):
    """The job's rows (list), its error message (str), or None when it has no outcome yet."""
    results_file, error_file = job_dir / RESULTS_JSON, job_dir / ERROR_JSON
    candidates = [path for path in (results_file, error_file) if path.exists()]
    if not candidates:
        return None
    # Both files only if the folder was reused: the newer one is the last attempt's outcome.
    latest = max(candidates, key=lambda path: path.stat().st_mtime)
    try:
        content = json.loads(latest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable {latest.name}: {exc}"
    if latest == error_file:
        return str(content.get("error", "")) if isinstance(content, dict) else str(content)
    if not isinstance(content, list) or not all(_is_row(row) for row in content):
        return f"{RESULTS_JSON} is not a list of result rows"
    return content


def _is_row(row) -> bool:
    return isinstance(row, dict) and all(key in row for key in ("attack", "eps", "accuracy"))


def _sweep_settings(overrides) -> dict:
    """Override key -> value, minus attack and eps (the table's axes), the detector (a row
    label of detection tables) and identity keys (the rows record those themselves)."""
    settings = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if (sep and key not in ("attack", "detector") and key.rsplit(".", 1)[-1] != "eps"
                and key not in IDENTITY_KEYS):
            settings[key] = value
    return settings


def _overridden_attack(overrides) -> str:
    """The attack a job was asked to run ("attack=fgsm"), to label a job without rows."""
    chosen = [item.partition("=")[2] for item in overrides if item.partition("=")[0] == "attack"]
    return chosen[-1] if chosen else ""


def _attack_order(series: str):
    """Clean first, the worst case last, the attacks alphabetically between."""
    return ({"none": 0, "worst_case": 2}.get(series, 1), series)


class _Summary:
    """The attack x eps table of one measure (accuracy by default) over a sweep, one line per
    attack and distinct setting; `label_keys` are row keys shown before the attack, and the
    first value column (`clean_key`, headed `clean_header`) is read from each line's first row."""

    def __init__(self, rows, settings_by_job, measure="accuracy", label_keys=(),
                 clean_key="clean_accuracy", clean_header="clean", format_value=format_percent,
                 outcomes=None):
        self.notes = table_notes(rows, outcomes)
        rows = [row for row in rows if not is_check(row)]  # sanity rows speak through the notes
        self.measure, self.label_keys, self.format_value = measure, list(label_keys), format_value
        self.clean_header = clean_header
        self.identity_keys = varying_identity_keys(rows)
        row_settings = [settings_by_job[row["job"]] for row in rows]
        every_setting = sorted({key for settings in row_settings for key in settings})
        self.setting_keys = [
            key for key in every_setting if len({settings.get(key) for settings in row_settings}) > 1
        ]
        self.eps_values = sorted({eps_key(row["eps"]) for row in rows})
        self.accuracy, self.clean = defaultdict(dict), {}
        for row, settings in zip(rows, row_settings):
            line = (
                *(short_identity(key, row.get(key)) for key in self.identity_keys),
                *(settings.get(key, "-") for key in self.setting_keys),
                *(str(row.get(key, "-")) for key in self.label_keys),
                series_name(row),
            )
            self.accuracy[line][eps_key(row["eps"])] = row.get(measure)
            if self.clean.get(line) is None:
                self.clean[line] = row.get(clean_key)
        self.rows = rows

    def _label_headers(self):
        return [*self.identity_keys, *self.setting_keys, *self.label_keys, "attack"]

    def _value_headers(self):
        return [self.clean_header, *(f"eps={format_eps(eps)}" for eps in self.eps_values)]

    def lines(self, missing):
        ordered = sorted(self.accuracy, key=lambda line: (line[:-1], _attack_order(line[-1])))
        for line in ordered:
            cells = [self.format_value(self.accuracy[line].get(eps), missing) for eps in self.eps_values]
            yield [*line, format_percent(self.clean[line], missing), *cells]

    def headers(self) -> list[str]:
        return [*self._label_headers(), *self._value_headers()]

    def table(self) -> str:
        numeric = set(range(len(self._label_headers()), len(self.headers())))
        return markdown_table(self.headers(), list(self.lines(missing="-")), numeric)

    def csv(self, failed, incomplete) -> str:
        body = [["ok", *line] for line in self.lines(missing="")]
        return _csv_with_jobs(["status", *self.headers()], body, failed, incomplete)

    def markdown(self, failed, incomplete) -> str:
        text = _markdown_head(self.rows, failed, incomplete)
        if self.rows:
            text += "Accuracy (%) under each attack by eps; `clean` is the accuracy without attack.\n\n"
            text += self.table()
        if self.notes:
            text += "\n## Notes\n\n" + "".join(f"- {note}\n" for note in self.notes)
        return text + _markdown_jobs(failed, incomplete)


class _DetectionSummary:
    """A `robust detect` sweep: one attack x eps table per detection measure, lines labelled by
    detector and attack; the first value column is the false-positive rate on clean inputs.
    The clean rows (attack none) only have a value for the accuracy."""

    MEASURES = (
        ("detection_rate", "Detection rate (%) on successful adversarial examples", format_percent),
        ("roc_auc", "ROC AUC of the score, successful adversarial vs clean inputs", format_auc),
        ("accuracy", "Accuracy (%) of classifier + reject (a rejected adversarial input is "
                     "defended, a rejected clean one is an error)", format_percent),
    )

    def __init__(self, rows, settings_by_job):
        self.rows = rows
        attacked = [row for row in rows if row["attack"] != "none"]
        self.tables = [
            (key, title, _Summary(rows if key == "accuracy" else attacked, settings_by_job,
                                  measure=key, label_keys=("detector",),
                                  clean_key="false_positive_rate", clean_header="FPR",
                                  format_value=format_value))
            for key, title, format_value in self.MEASURES
        ]

    def csv(self, failed, incomplete) -> str:
        header = ["status", "measure", *self.tables[0][2].headers()]
        body = [["ok", key, *line] for key, _, table in self.tables for line in table.lines(missing="")]
        return _csv_with_jobs(header, body, failed, incomplete)

    def markdown(self, failed, incomplete) -> str:
        text = _markdown_head(self.rows, failed, incomplete)
        if self.rows:
            text += "`FPR` is the false-positive rate (%) on clean inputs.\n"
            for _, title, table in self.tables:
                text += f"\n## {title}\n\n" + table.table()
        return text + _markdown_jobs(failed, incomplete)


def _csv_with_jobs(header, body, failed, incomplete) -> str:
    """The summary lines, then one line per failed or incomplete job, labelled by the attack
    it was asked to run."""
    header = [*header, "job", "overrides", "error"]
    body = [[*line, "", "", ""] for line in body]
    attack_column = header.index("attack")
    for status, jobs in (("failed", failed), ("incomplete", incomplete)):
        for job in jobs:
            line = [status, *[""] * (len(header) - 4), job["job"], " ".join(job["overrides"]),
                    job.get("error", "")]
            line[attack_column] = _overridden_attack(job["overrides"])
            body.append(line)
    return csv_text(header, body)


def _markdown_head(rows, failed, incomplete) -> str:
    succeeded = len({row["job"] for row in rows})
    text = (
        "# Sweep summary\n\n"
        f"{succeeded} job(s) succeeded, {len(failed)} failed, {len(incomplete)} incomplete.\n\n"
    )
    shared = identity_line(rows)
    return text + (f"{shared}\n\n" if shared else "")


def _markdown_jobs(failed, incomplete) -> str:
    text = ""
    if failed:
        text += "\n## Failed jobs\n\n" + "".join(
            f"- `{job['job']}` ({_overrides_text(job)}): {_one_line(job['error'])}\n" for job in failed
        )
    if incomplete:
        text += "\n## Incomplete jobs\n\n" + "".join(
            f"- `{job['job']}` ({_overrides_text(job)}): no {RESULTS_JSON} or {ERROR_JSON} "
            f"(still running or killed)\n"
            for job in incomplete
        )
    return text


def _overrides_text(job) -> str:
    return f"`{' '.join(job['overrides'])}`" if job["overrides"] else "no overrides recorded"


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"
