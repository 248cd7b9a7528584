"""Mutation-testing detector (Wang et al. 2019): adversarial inputs are more sensitive to
small random changes of the model than normal ones.

Calibration draws mutants (seeded) with the chosen operators until `max_mutants` of them keep
at least `min_accuracy_ratio` of the original's accuracy on the clean calibration data (up to
3 tries per mutant); the normal sensitivity is the mean, over those clean inputs, of the share
of mutants that change the label, and the threshold is `margin` times it (or `threshold`).
Deciding runs the SPRT per input: every still-undecided input of the batch meets the next
mutant, until all have decided or the mutants run out; an input still undecided then is
adversarial if its measured sensitivity is above the threshold. Score = measured sensitivity
(label changes / mutants drawn for that input).
"""

import torch

from robustbench_cli.attacks.params import number, positive_int
from robustbench_cli.detectors.base import Decisions, Detector
from robustbench_cli.detectors.mutants import OPERATORS, MutantModel
from robustbench_cli.detectors.params import open_fraction, optional_number
from robustbench_cli.detectors.sprt import SPRT
from robustbench_cli.errors import UserError

ATTEMPTS_PER_MUTANT = 3


def operator_list(value) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    unknown = [name for name in names if name not in OPERATORS]
    if not names or unknown:
        raise UserError(f"operators must be a non-empty list of {', '.join(OPERATORS)}, got {value!r}")
    return names


class MutationDetector(Detector):
    name = "mutation"
    score_label = "sensitivity (share of drawn mutants that change the label)"

    def __init__(self, model, *, operators=("nai",), rate=0.01, max_mutants=100,
                 min_accuracy_ratio=0.9, margin=3.0, threshold=None, alpha=0.05, beta=0.05,
                 indifference=0.5, head="sce"):
        super().__init__(model, head)
        self.operators = operator_list(operators)
        self.rate = open_fraction("rate", rate)
        self.max_mutants = positive_int("max_mutants", max_mutants)
        self.min_accuracy_ratio = number("min_accuracy_ratio", min_accuracy_ratio)
        if not 0 <= self.min_accuracy_ratio <= 1:
            raise UserError(f"min_accuracy_ratio must be in [0, 1], got {self.min_accuracy_ratio}")
        self.margin = number("margin", margin)
        if self.margin <= 0:
            raise UserError(f"margin must be > 0, got {self.margin}")
        self.given_threshold = optional_number("threshold", threshold)
        self.alpha = open_fraction("alpha", alpha)
        self.beta = open_fraction("beta", beta)
        self.indifference = open_fraction("indifference", indifference)
        self.mutant_model = MutantModel(model)
        self.mutants = []
        self.attempts = 0
        self.normal_sensitivity = None
        self.test = None

    def calibrate(self, loader, device, seed) -> None:
        generator = torch.Generator().manual_seed(seed)
        labels, original = [], []
        with torch.no_grad():
            for x, y in loader:
                labels.append(y)
                original.append(self.model(x.to(device)).argmax(1).cpu())
        labels, original = torch.cat(labels), torch.cat(original)
        floor = self.min_accuracy_ratio * float((original == labels).double().mean())
        changed = []  # per kept mutant: which calibration inputs it relabels
        while len(self.mutants) < self.max_mutants:
            tries = min(self.max_mutants - len(self.mutants),
                        ATTEMPTS_PER_MUTANT * self.max_mutants - self.attempts)
            if tries == 0:
                raise UserError(
                    f"mutation detector: only {len(self.mutants)} of {self.attempts} mutants kept "
                    f"{self.min_accuracy_ratio:g} x the original accuracy on the calibration data, "
                    f"{self.max_mutants} are needed: lower detector.rate")
            candidates = [self.mutant_model.draw(self._operator(self.attempts + i), self.rate, generator)
                          for i in range(tries)]
            self.attempts += tries
            for mutant, predicted in zip(candidates, self._predictions(candidates, loader, device)):
                if float((predicted == labels).double().mean()) >= floor:
                    self.mutants.append(mutant)
                    changed.append(predicted != original)
        self.normal_sensitivity = float(torch.stack(changed).double().mean())
        threshold = self.given_threshold
        if threshold is None:
            threshold = self.margin * self.normal_sensitivity
        self.test = SPRT(threshold, self.alpha, self.beta, self.indifference)

    def _operator(self, attempt: int) -> str:
        return self.operators[attempt % len(self.operators)]  # in turn, so a list mixes evenly

    def _predictions(self, mutants, loader, device) -> list[torch.Tensor]:
        """Each mutant's labels for the whole loader, reading the data once."""
        labels = [[] for _ in mutants]
        for x, _ in loader:
            x = x.to(device)
            for mutant, collected in zip(mutants, labels):
                with self.mutant_model.applied(mutant) as mutated, torch.no_grad():
                    collected.append(mutated(x).argmax(1).cpu())
        return [torch.cat(collected) for collected in labels]

    def decide(self, x) -> Decisions:
        with torch.no_grad():
            original = self.model(x).argmax(1)
        n = len(x)
        changed = torch.zeros(n, device=x.device)
        drawn = torch.zeros(n, device=x.device)
        decided = torch.zeros(n, dtype=torch.bool, device=x.device)
        adversarial = torch.zeros(n, dtype=torch.bool, device=x.device)
        for mutant in self.mutants:
            active = (~decided).nonzero().squeeze(1)
            if len(active) == 0:
                break
            with self.mutant_model.applied(mutant) as mutated, torch.no_grad():
                labels = mutated(x[active]).argmax(1)
            changed[active] += (labels != original[active]).float()
            drawn[active] += 1
            says_adversarial, says_normal = self.test.verdicts(changed[active], drawn[active])
            adversarial[active] = says_adversarial
            decided[active] = says_adversarial | says_normal
        sensitivity = (changed / drawn).to(torch.float64)
        undecided = ~decided
        adversarial[undecided] = sensitivity[undecided] > self.test.threshold
        return Decisions(sensitivity, adversarial, drawn.long())

    def summary(self) -> dict:
        return {"threshold": self.test.threshold,
                "threshold_from": ("given" if self.given_threshold is not None
                                   else f"margin={self.margin:g} x normal sensitivity"),
                "normal_sensitivity": self.normal_sensitivity,
                "mutants": len(self.mutants), "mutant_attempts": self.attempts}
