"""Adversarial sets on disk: `robust eval save_adversarial=true` keeps each attack row's
images, and `attack=saved attack.path=FILE` (attacks/saved.py, which reads them) shows them to any model.

A set is one safetensors file per (attack, eps) row, adversarial/<series>_eps<eps>.safetensors
(with save_adversarial=per_class, one per true class: <series>_eps<eps>_class<k>.safetensors):

- images: what the row showed the model, per evaluated point: the adversarial image where
  the protocol attacked the point, else the clean one (float32, as attacked: no rounding);
- labels, predictions (the model's on that image), attacked (bool), index (the point's
  index in the evaluated dataset);
- metadata: the row's attack, eps, norm, protocol, params, model, dataset and the source
  checkpoint's sha256.

Beside it, examples_<series>_eps<eps>.png: the first images of the row, clean, adversarial
and the perturbation (scaled to the eps range), with true and predicted classes.
"""

import json
from pathlib import Path

import torch

from robustbench_cli.errors import UserError
from robustbench_cli.reporting.atomic import atomic_write_bytes
from robustbench_cli.reporting.formatting import format_eps
from robustbench_cli.reporting.rows import series_name

FOLDER = "adversarial"
MODES = ("false", "true", "per_class")
EXAMPLES = 8  # images per PNG grid
METADATA = ("attack", "eps", "protocol", "model", "dataset", "checkpoint_sha256")


def check_mode(value) -> str:
    """save_adversarial: false, true or per_class (YAML reads the first two as bools)."""
    mode = str(value).lower()
    if mode not in MODES:
        raise UserError(f"save_adversarial must be one of {', '.join(MODES)}, got {value!r}")
    return mode


def set_name(row: dict) -> str:
    return f"{series_name(row)}_eps{format_eps(row['eps'])}"


def write_set(run_dir: Path, row: dict, images, mode: str, dataset) -> list[Path]:
    """The row's set file(s) (`images`: the row's runner.Images) and its example grid, whose
    clean images come from the evaluated `dataset`; returns the set files written."""
    from safetensors.torch import save

    folder = Path(run_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {key: json.dumps(row.get(key)) for key in METADATA}
    metadata.update(params=json.dumps(row.get("params", {})), norm=json.dumps(images.norm))
    tensors = {"images": images.images.float().contiguous(), "labels": images.labels.long(),
               "predictions": images.predictions.long(), "attacked": images.attacked.bool(),
               "index": torch.arange(len(images.labels))}
    parts = {"": slice(None)} if mode == "true" else {
        f"_class{int(k)}": images.labels == k for k in images.labels.unique()}
    written = []
    for suffix, chosen in parts.items():
        path = folder / f"{set_name(row)}{suffix}.safetensors"
        atomic_write_bytes(path, save({k: v[chosen].contiguous() for k, v in tensors.items()},
                                      metadata=metadata))
        written.append(path)
    _write_examples(Path(run_dir) / f"examples_{set_name(row)}.png", row, images, dataset)
    return written


def _write_examples(path: Path, row: dict, images, dataset) -> None:
    from io import BytesIO

    from matplotlib.figure import Figure

    order = images.attacked.nonzero().squeeze(1)[:EXAMPLES]
    if len(order) == 0:
        return
    adversarial = images.images[order].float()
    clean = torch.stack([dataset[int(i)][0] for i in order]).float()
    eps = float(row["eps"]) or 1.0
    rows = (("clean", clean), ("adversarial", adversarial),
            ("perturbation", ((adversarial - clean) / (2 * eps) + 0.5).clamp(0, 1)))
    figure = Figure(figsize=(1.4 * len(order), 4.6))
    axes = figure.subplots(3, len(order), squeeze=False)
    for r, (title, batch) in enumerate(rows):
        for c, image in enumerate(batch):
            ax = axes[r][c]
            picture = image.permute(1, 2, 0).numpy() if image.dim() == 3 else image.numpy()
            ax.imshow(picture.squeeze(), cmap="gray" if picture.shape[-1] == 1 else None,
                      vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
            if r == 1:
                point = order[c]
                ax.set_title(f"y={int(images.labels[point])} pred={int(images.predictions[point])}",
                             fontsize=7)
    figure.suptitle(f"{series_name(row)} eps {format_eps(row['eps'])}", fontsize=9)
    figure.tight_layout()
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
