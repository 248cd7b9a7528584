"""The detection sweep: calibrate a detector on one part of the clean test data, then measure
it on the other part, clean and under each attack x eps.

Protocol: the evaluated test set is split (seeded) into a calibration part, used only to fit
the detector (threshold, normal sensitivity), and an evaluation part on which every reported
number is computed. Which points are attacked follows `robust eval`'s protocol:

- robust: only points classified correctly when clean are attacked (iterative attacks stop
  at the first fooling iterate); a point not attacked sends its clean image. "Fooled"
  (successful) adversarial examples are attacked points the model then gets wrong.
- all_points: every point is attacked with its label and iterative attacks run in full.
  "Fooled" counts every point whose adversarial image is misclassified, including points
  already wrong when clean; detection among those clean-wrong points is reported on its own
  (detection_rate_clean_wrong), so detection_rate minus them is comparable across protocols
  via detection_rate_clean_correct.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Subset

from robustbench_cli import attacks, detectors
from robustbench_cli.checks import open_fraction
from robustbench_cli.detectors.base import Decisions
from robustbench_cli.detectors.roc import roc_auc, roc_curve
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import check_protocol, progress_bar, resolve_device
from robustbench_cli.evaluation.shard import SINGLE, Shard
from robustbench_cli.reporting.formatting import format_eps
from robustbench_cli.reporting.stats import interval_fields

CLEAN = ("none", 0.0)


@dataclass
class _Outcome:
    """Per evaluation point, over the batches: what the point sent and what happened to it."""

    attacked: list = field(default_factory=list)
    clean_correct: list = field(default_factory=list)  # the model is right on the clean image
    correct: list = field(default_factory=list)  # the model is right on the input sent
    rejected: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    mutants: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, attacked, clean_correct, correct, decisions) -> None:
        self.attacked.append(attacked.cpu())
        self.clean_correct.append(clean_correct.cpu())
        self.correct.append(correct.cpu())
        self.rejected.append(decisions.rejected.cpu())
        self.scores.append(decisions.scores.cpu())
        if decisions.mutants_used is not None:
            self.mutants.append(decisions.mutants_used.cpu())

    def tensors(self) -> dict:
        return {key: torch.cat(getattr(self, key)) for key in
                ("attacked", "clean_correct", "correct", "rejected", "scores",
                 *(("mutants",) if self.mutants else ()))}


@dataclass
class DetectionReport:
    rows: list[dict]
    clean_scores: list[float]
    successful_scores: dict[str, list[float]]  # "attack eps=E" -> scores of successful examples
    roc_curves: dict[str, tuple]  # "attack eps=E" -> (false-positive rates, true-positive rates, auc)
    threshold: float
    score_label: str


def calibration_split(n: int, fraction, seed: int) -> tuple[list[int], list[int]]:
    """(calibration indices, evaluation indices): a seeded shuffle of range(n) cut in two."""
    fraction = open_fraction("detector.calibration_fraction", fraction)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = round(fraction * n)
    if cut == 0 or cut == n:
        raise UserError(f"detector.calibration_fraction={fraction:g} of {n} test points leaves "
                        f"{'no calibration' if cut == 0 else 'no evaluation'} points")
    return sorted(order[:cut]), sorted(order[cut:])


@dataclass
class Measured:
    """One row's per-point record over the evaluation points (see _Outcome.tensors) and the
    seconds it took; what a resumed run reads back instead of attacking again."""

    arrays: dict
    seconds: float


def run_detection(model, dataset, detector_cfg: dict, specs, eps_list, *, head: str = "sce",
                  protocol: str = "robust", seed: int = 0, batch_size: int = 256,
                  num_workers: int = 0, device: str = "auto", progress: bool = True,
                  finished: dict | None = None,
                  on_row: Callable[[dict, Measured], None] | None = None,
                  shard: Shard = SINGLE) -> DetectionReport:
    """Calibrate the detector `detector_cfg` (its config: name, calibration_fraction, params)
    and measure it clean and under each attack spec at each eps > 0, one row at a time.

    `finished` maps (attack, eps) to a Measured row of an interrupted run, which is reused;
    `on_row(row, measured)` is called as each attack row is done (computed or reused).

    With a `shard` of several processes, each calibrates the detector on the whole
    calibration part (seeded: the same detector everywhere) and measures its block of the
    evaluation part; every row is built from all processes' per-point outcomes."""
    params = dict(detector_cfg)
    name = params.pop("name")
    calibration, evaluation = calibration_split(len(dataset), params.pop("calibration_fraction"), seed)
    finished = dict(finished or {})
    device = shard.device or resolve_device(device)
    if len(evaluation) < shard.world_size:
        raise UserError(f"{len(evaluation)} evaluation point(s) cannot be shared by "
                        f"{shard.world_size} processes")
    evaluation = [evaluation[i] for i in shard.block(len(evaluation))]  # this process's points
    was_training = model.training
    model.eval().to(device)
    all_points = check_protocol(protocol) == "all_points"
    keys = [(spec, eps) for spec in specs for eps in eps_list if eps > 0 and spec.name != "none"]
    settings = {key: value for key, value in detector_cfg.items() if key != "name"}
    try:
        detector = detectors.build(name, model, head=head, **params)
        detector.calibrate(_loader(dataset, calibration, batch_size, num_workers), device, seed)
        loader = _loader(dataset, evaluation, batch_size, num_workers)
        points = torch.tensor(evaluation, dtype=torch.long)  # dataset index of each point
        todo = [key for key in keys if (key[0].name, key[1]) not in finished]
        with progress_bar(progress and shard.is_main, len(loader) * (1 + len(todo))) as advance:
            local_clean = _measure_clean(model, detector, loader, device, advance)
            clean = _gathered(local_clean, shard)
            report = _Report(clean.arrays, detector, settings, len(calibration), protocol,
                             round(clean.seconds, 4))
            for spec, eps in keys:
                key = (spec.name, eps)
                if key not in finished:
                    attack = attacks.build(spec.name, model, eps=eps, **spec.params)
                    attack.stop_at(None if all_points else 1)
                    finished[key] = _gathered(
                        _measure_attack(model, detector, attack, loader, points, local_clean.arrays,
                                        all_points, device, advance), shard)
                row = report.add(spec.name, eps, spec.params, finished[key])
                if on_row:
                    on_row(row, finished[key])
    finally:
        model.train(was_training)
    return report.result()


def _gathered(measured: Measured, shard: Shard) -> Measured:
    """All processes' per-point outcomes of a row, in order, and its wall time."""
    seconds, _ = shard.combine(measured.seconds, {})
    return Measured({key: shard.gather(value) for key, value in measured.arrays.items()}, seconds)


def _loader(dataset, indices, batch_size, num_workers) -> DataLoader:
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers)


def _measure_clean(model, detector, loader, device, advance) -> Measured:
    outcome = _Outcome()
    for x, y in loader:
        start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        outcome.add(torch.zeros_like(correct), correct, correct, detector.decide(x))
        outcome.seconds += time.perf_counter() - start
        advance()
    return Measured(outcome.tensors(), outcome.seconds)


def _measure_attack(model, detector, attack, loader, points, clean: dict, all_points, device,
                    advance) -> Measured:
    """Attack the protocol's points batch by batch; a point not attacked sends its clean image
    (and the detector's clean decision on it)."""
    outcome, offset = _Outcome(), 0
    for x, y in loader:
        start = time.perf_counter()
        batch = slice(offset, offset + len(y))
        offset += len(y)
        x, y = x.to(device), y.to(device)
        correct = clean["correct"][batch].to(device)
        sent = Decisions(clean["scores"][batch].clone(), clean["rejected"][batch].clone(),
                         clean["mutants"][batch].clone() if "mutants" in clean else None)
        attacked = torch.ones_like(correct) if all_points else correct
        index = attacked.nonzero().squeeze(1)
        still_correct = correct.clone()
        if len(index):
            x_adv = attack(x[index], y[index], index=points[batch][index.cpu()])
            with torch.no_grad():
                still_correct[index] = model(x_adv).argmax(1) == y[index]
            adversarial = detector.decide(x_adv)
            cpu_index = index.cpu()
            sent.scores[cpu_index] = adversarial.scores.cpu()
            sent.rejected[cpu_index] = adversarial.rejected.cpu()
            if sent.mutants_used is not None:
                sent.mutants_used[cpu_index] = adversarial.mutants_used.cpu()
        outcome.add(attacked, correct, still_correct, sent)
        outcome.seconds += time.perf_counter() - start
        advance()
    return Measured(outcome.tensors(), outcome.seconds)


def _share(mask: torch.Tensor, within: torch.Tensor | None = None):
    """The share of True in `mask` (over `within` where given); None over nothing."""
    if within is not None:
        mask = mask[within]
    return int(mask.sum()) / len(mask) if len(mask) else None


class _Report:
    """The rows and the score distributions of a detection run, built row by row."""

    def __init__(self, clean: dict, detector, detector_params: dict, n_calibration: int,
                 protocol: str, clean_seconds: float):
        self.clean, self.detector = clean, detector
        summary = detector.summary()
        self.threshold = summary["threshold"]
        self.shared = {"detector": detector.name, "protocol": protocol, "n": len(clean["correct"]),
                       "n_calibration": n_calibration, "clean_accuracy": _share(clean["correct"]),
                       "false_positive_rate": _share(clean["rejected"]), **summary,
                       "detector_params": detector_params}
        self.rows = [{
            "attack": CLEAN[0], "eps": CLEAN[1],
            # Clean inputs: a rejected one is lost, right or wrong.
            **_accuracy(clean["correct"] & ~clean["rejected"]),
            "accuracy_without_detector": _share(clean["correct"]),
            **_mutants(clean, None), "seconds": clean_seconds, **self.shared,
        }]
        self.successful_scores, self.curves = {}, {}

    def add(self, name: str, eps: float, params: dict, measured: Measured) -> dict:
        sent = measured.arrays
        attacked, fooled = sent["attacked"], sent["attacked"] & ~sent["correct"]
        clean_wrong = attacked & ~sent["clean_correct"]
        auc = None
        if fooled.any():
            label, fooling_scores = f"{name} eps={format_eps(eps)}", sent["scores"][fooled]
            auc = roc_auc(self.clean["scores"], fooling_scores)
            self.successful_scores[label] = fooling_scores.tolist()
            self.curves[label] = (*roc_curve(self.clean["scores"], fooling_scores), auc)
        row = {
            "attack": name, "eps": eps,
            # What an attacker sends: rejecting it is a defence, answering it must be right.
            **_accuracy(sent["rejected"] | sent["correct"]),
            "accuracy_without_detector": _share(sent["correct"]),
            "n_attacked": int(attacked.sum()), "n_successful": int(fooled.sum()),
            "detection_rate": _share(sent["rejected"], fooled),
            "detection_rate_attacked": _share(sent["rejected"], attacked),
            "detection_rate_clean_correct": _share(sent["rejected"], fooled & sent["clean_correct"]),
            "n_clean_wrong": int(clean_wrong.sum()),
            "detection_rate_clean_wrong": _share(sent["rejected"], clean_wrong),
            "roc_auc": auc,
            **_mutants(sent, attacked), "seconds": round(measured.seconds, 4), **self.shared,
            "params": params,
        }
        self.rows.append(row)
        return row

    def result(self) -> DetectionReport:
        return DetectionReport(self.rows, self.clean["scores"].tolist(), self.successful_scores,
                               self.curves, self.threshold, self.detector.score_label)


def _accuracy(counted: torch.Tensor) -> dict:
    """accuracy with its 95% Wilson interval."""
    hits = int(counted.sum())
    return {"accuracy": _share(counted), **interval_fields(hits, len(counted))}


def _mutants(outcome: dict, within) -> dict:
    """Mean mutants drawn per input (over `within` where given), for detectors that draw them."""
    if "mutants" not in outcome:
        return {}
    used = outcome["mutants"].double()
    if within is not None:
        used = used[within]
    return {"mean_mutants": float(used.mean()) if len(used) else None}
