"""The files of `robust transfer`: source x target matrices of the transfer rate and the error
rate, one per attack and eps, as csv, markdown, a long-format results.json and a heatmap.

The rows come from evaluation/transfer_matrix.py, one per (source, attack, eps, target); the
csv keeps one line per (attack, eps, source) with a column per target, so it reads as the
matrices stacked and still loads as one table.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from robustbench_cli.reporting.atomic import atomic_write_text
from robustbench_cli.reporting.formatting import (
    csv_text,
    csv_value,
    format_eps,
    format_percent,
    format_with_interval,
    markdown_table,
)
from robustbench_cli.reporting.rows import eps_key, series_name
from robustbench_cli.reporting.run_files import RESULTS_JSON
from robustbench_cli.reporting.transfer_plot import plot_transfer

TRANSFER_PNG = "transfer.png"
RATES = {  # file stem -> (row key, heading, what the number is)
    "transfer_rate": ("transfer_rate", "Transfer rate",
                      "among the test points the source classifies correctly and whose adversarial "
                      "version it misclassifies (n), the share the target misclassifies "
                      "(Kurakin et al. 2017, Table 4)"),
    "error_rate": ("error_rate", "Error rate",
                   "the target's error on the adversarial images of every test point, not "
                   "prefiltered (Kurakin et al. 2017, Table 6); last row: its error on the clean images"),
}


@dataclass
class Block:
    """One matrix: the rows of one attack (series) at one eps."""

    attack: str
    eps: float
    sources: list[str]
    targets: list[str]
    cells: dict  # (source, target) -> row

    @property
    def title(self) -> str:
        return f"{self.attack}, eps={format_eps(self.eps)}"

    def values(self, key: str) -> list[list]:
        """The matrix of `key` (None where it is undefined), sources down, targets across."""
        return [[self.cells[s, t].get(key) if (s, t) in self.cells else None for t in self.targets]
                for s in self.sources]


def transfer_blocks(rows) -> list[Block]:
    """The rows as matrices, in first-seen order of attack and eps, sources and targets."""
    grouped = defaultdict(list)
    for row in rows:
        grouped[series_name(row), eps_key(row["eps"])].append(row)
    blocks = []
    for (attack, _), group in grouped.items():
        sources = list(dict.fromkeys(row["source"] for row in group))
        targets = list(dict.fromkeys(row["target"] for row in group))
        cells = {(row["source"], row["target"]): row for row in group}
        blocks.append(Block(attack, float(group[0]["eps"]), sources, targets, cells))
    return blocks


def matrix_csv(rows, key: str) -> str:
    """attack, eps, source, then one column per target: `key` as a fraction (empty: undefined)."""
    blocks = transfer_blocks(rows)
    targets = list(dict.fromkeys(t for block in blocks for t in block.targets))
    body = [[block.attack, block.eps, source,
             *(csv_value(block.cells[source, t].get(key)) if (source, t) in block.cells else ""
               for t in targets)]
            for block in blocks for source in block.sources]
    return csv_text(["attack", "eps", "source", *targets], body)


def matrix_markdown(rows, stem: str, title: str = "") -> str:
    """One titled table per attack and eps (percent, ± half the 95% Wilson interval), then
    the checkpoints the labels stand for."""
    key, heading, meaning = RATES[stem]
    text = f"# {heading} (%)\n\n" + (f"{title}\n\n" if title else "")
    text += f"{heading}: {meaning}. Rows: the source the images were crafted on; columns: the target.\n"
    for block in transfer_blocks(rows):
        text += f"\n## {block.title}\n\n" + _block_table(block, key)
    return text + "\n## Checkpoints\n\n" + _checkpoint_table(rows)


def _block_table(block: Block, key: str) -> str:
    prefix = key.split("_")[0]  # transfer_ci_low, error_ci_low
    headers = ["source \\ target", *block.targets]
    body = []
    for source in block.sources:
        line = [source]
        for target in block.targets:
            row = block.cells.get((source, target), {})
            line.append(format_with_interval(row.get(key), row.get(f"{prefix}_ci_low"),
                                             row.get(f"{prefix}_ci_high")))
        if key == "transfer_rate":
            any_row = block.cells[source, block.targets[0]]
            line.append(f"{any_row['transfer_n']} / {any_row['n']}")
        body.append(line)
    if key == "transfer_rate":
        headers.append("n (source right, then fooled)")
    else:
        clean = {t: row["target_clean_accuracy"] for (_, t), row in block.cells.items()}
        body.append(["clean images", *(format_percent(1 - clean[t]) for t in block.targets)])
    return markdown_table(headers, body, right_aligned=range(1, len(headers)))


def _checkpoint_table(rows) -> str:
    seen = {}
    for row in rows:
        for side in ("source", "target"):
            seen.setdefault(row[side], [row[side], row[f"{side}_model"],
                                        format_percent(row[f"{side}_clean_accuracy"]),
                                        row[f"{side}_sha256"][:8], row[f"{side}_checkpoint"]])
    headers = ["label", "model", "clean accuracy (%)", "sha256", "checkpoint"]
    return markdown_table(headers, list(seen.values()), right_aligned=(2,))


def write_transfer_report(run_dir, rows, title: str = "") -> None:
    """transfer_rate.csv/md, error_rate.csv/md, results.json (the rows) and transfer.png."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    atomic_write_text(run_dir / RESULTS_JSON, json.dumps(rows, indent=2, default=str) + "\n")
    for stem, (key, _, _) in RATES.items():
        atomic_write_text(run_dir / f"{stem}.csv", matrix_csv(rows, key))
        atomic_write_text(run_dir / f"{stem}.md", matrix_markdown(rows, stem, title))
    blocks = transfer_blocks(rows)
    panels = [(block.title, block.sources, block.targets, block.values("transfer_rate"))
              for block in blocks]
    eps_count = len({eps_key(block.eps) for block in blocks})
    plot_transfer(panels, run_dir / TRANSFER_PNG, title, columns=eps_count)
