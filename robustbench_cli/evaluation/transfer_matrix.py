"""Transfer matrices (Kurakin et al. 2017, section 4.4 and appendix C, document 004): adversarial
examples crafted on each source model, classified by each target model.

- transfer rate (their Table 4): among the points the source classifies correctly clean and
  whose adversarial version it misclassifies, the share the target misclassifies;
- error rate (their Table 6): the target's error on every crafted image, not prefiltered.

Every point is attacked, with the attack's own config (its label mode, steps and early
stopping as configured), and gets its dataset index, so per-point seeds hold. Each crafted
batch is classified by the source and every target as soon as it exists: no adversarial
image is kept, and a checkpoint that is both source and target is one model, so its
diagonal cell is the white-box case, exactly.
"""

import time
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from robustbench_cli import attacks
from robustbench_cli.evaluation.runner import AttackSpec, progress_bar, resolve_device
from robustbench_cli.evaluation.transfer_models import Checkpoint, distinct
from robustbench_cli.reporting.stats import interval_fields


def transfer_matrix(sources: Sequence[Checkpoint], targets: Sequence[Checkpoint], dataset,
                    specs: Sequence[AttackSpec], eps_list: Sequence[float], *, batch_size: int = 256,
                    num_workers: int = 0, device: str = "auto", progress: bool = True) -> list[dict]:
    """One row per (source, attack, eps, target), in that order: rates, their counts and
    Wilson intervals, and both models' clean accuracies."""
    device = resolve_device(device)
    models = distinct([*sources, *targets])
    for checkpoint in models:
        checkpoint.model.eval().to(device)
    # Built before any pass, so a bad attack parameter stops the run at once.
    jobs = [(source, spec, eps, attacks.build(spec.name, source.model, eps=eps, **spec.params))
            for source in sources for spec in specs for eps in eps_list]
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    rows = []
    with progress_bar(progress, len(loader) * (1 + len(jobs))) as advance:
        labels, clean = _clean_predictions(models, loader, device, advance)
        for source, spec, eps, attack in jobs:
            start = time.perf_counter()
            adversarial = _adversarial_predictions(attack, distinct([source, *targets]), loader,
                                                   device, advance)
            seconds = round(time.perf_counter() - start, 4)
            for target in targets:
                row = {"attack": spec.name, "eps": eps, **_row(source, target, labels, clean, adversarial),
                       "seconds": seconds, "params": spec.params}
                if "label" in spec.params:
                    row["label"] = attack.label  # fgsm with label=pred is its own series
                rows.append(row)
    return rows


def _clean_predictions(models, loader, device, advance) -> tuple[torch.Tensor, dict]:
    """The true labels and each model's clean top-1 prediction, per point."""
    labels, predictions = [], {id(c): [] for c in models}
    with torch.inference_mode():
        for x, y in loader:
            x = x.to(device)
            labels.append(y)
            for checkpoint in models:
                predictions[id(checkpoint)].append(checkpoint.model(x).argmax(1).cpu())
            advance()
    return torch.cat(labels), {key: torch.cat(value) for key, value in predictions.items()}


def _adversarial_predictions(attack, models, loader, device, advance) -> dict:
    """Each model's top-1 prediction on the attack's images, per point (every point attacked)."""
    predictions = {id(c): [] for c in models}
    offset = 0
    for x, y in loader:
        positions = torch.arange(offset, offset + len(y))  # dataset indices: per-point seeds
        offset += len(y)
        x_adv = attack(x.to(device), y.to(device), index=positions)
        with torch.inference_mode():
            for checkpoint in models:
                predictions[id(checkpoint)].append(checkpoint.model(x_adv).argmax(1).cpu())
        advance()
    return {key: torch.cat(value) for key, value in predictions.items()}


def _row(source: Checkpoint, target: Checkpoint, labels, clean: dict, adversarial: dict) -> dict:
    n = len(labels)
    source_correct = clean[id(source)] == labels
    fooled = source_correct & (adversarial[id(source)] != labels)  # the transfer rate's points
    target_wrong = adversarial[id(target)] != labels
    transfer_n, transferred = int(fooled.sum()), int((fooled & target_wrong).sum())
    errors = int(target_wrong.sum())
    return {
        "source": source.label, "target": target.label,
        "transfer_rate": transferred / transfer_n if transfer_n else None,
        **interval_fields(transferred, transfer_n, "transfer_"),
        "transferred": transferred, "transfer_n": transfer_n,
        "error_rate": errors / n, **interval_fields(errors, n, "error_"), "errors": errors, "n": n,
        "source_clean_accuracy": int(source_correct.sum()) / n,
        "target_clean_accuracy": int((clean[id(target)] == labels).sum()) / n,
        "source_sha256": source.sha256, "target_sha256": target.sha256,
        "source_checkpoint": str(source.path.resolve()), "target_checkpoint": str(target.path.resolve()),
        "source_model": source.meta["model"]["name"], "target_model": target.meta["model"]["name"],
    }
