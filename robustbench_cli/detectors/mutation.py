"""Mutation-testing detector (Wang et al., ICSE 2019): adversarial inputs are more sensitive to
small random changes of the model than normal ones.

Calibration draws mutants (seeded) with the chosen operators until `max_mutants` of them keep
at least `min_accuracy_ratio` of the original's accuracy on the clean calibration data (up to
3 tries per mutant). An input's sensitivity (the paper's label change rate, LCR) is the share
of mutants whose label differs from the original model's. The normal LCR is measured on the
calibration inputs the model classifies correctly (`normal_inputs`), and the threshold is
`rho` times the upper bound of the `confidence` interval of their mean LCR (mean + z std /
sqrt(n), as the authors' code), or `margin` times the mean (`threshold_rule`), or `threshold`.
Deciding runs the SPRT per input: every still-undecided input of the batch meets the next
mutant, until all have decided or the mutants run out; an input still undecided then is
counted as `undecided` says (the authors' code: normal). Score = measured sensitivity
(label changes / mutants drawn for that input).
"""

import math
from statistics import NormalDist

import torch

from robustbench_cli.checks import (
    choice,
    fraction,
    number,
    open_fraction,
    optional,
    positive_int,
    positive_number,
)
from robustbench_cli.detectors.base import Decisions, Detector
from robustbench_cli.detectors.mutants import NEURON_SIDES, OPERATORS, SELECTIONS, MutantModel
from robustbench_cli.detectors.sprt import SPRT
from robustbench_cli.errors import UserError

ATTEMPTS_PER_MUTANT = 3
NORMAL_INPUTS = ("correct", "all")
THRESHOLD_RULES = ("confidence_bound", "margin")
UNDECIDED = ("normal", "adversarial", "threshold")


def operator_list(value) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    unknown = [name for name in names if name not in OPERATORS]
    if not names or unknown:
        raise UserError(f"operators must be a non-empty list of {', '.join(OPERATORS)}, got {value!r}")
    return names


def confidence_bound(sensitivities: torch.Tensor, confidence: float) -> float:
    """Upper end of the two-sided `confidence` interval of the mean: mean + z std / sqrt(n),
    with the population std (numpy's default, as the authors' code; z = 2.58 at 0.99)."""
    values = sensitivities.double()
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    return float(values.mean() + z * values.std(unbiased=False) / math.sqrt(len(values)))


class MutationDetector(Detector):
    name = "mutation"
    score_label = "sensitivity (share of drawn mutants that change the label)"

    def __init__(self, model, *, operators=("nai",), rate=0.05, selection="global",
                 neuron_side="incoming", max_mutants=500, min_accuracy_ratio=0.9,
                 normal_inputs="correct", threshold_rule="confidence_bound", rho=1.0,
                 confidence=0.99, margin=3.0, threshold=None, alpha=0.05, beta=0.05,
                 indifference=0.1, undecided="normal", head="sce"):
        super().__init__(model, head)
        self.operators = operator_list(operators)
        self.rate = open_fraction("rate", rate)
        self.selection = choice("selection", selection, SELECTIONS)
        self.neuron_side = choice("neuron_side", neuron_side, NEURON_SIDES)
        self.max_mutants = positive_int("max_mutants", max_mutants)
        self.min_accuracy_ratio = fraction("min_accuracy_ratio", min_accuracy_ratio)
        self.normal_inputs = choice("normal_inputs", normal_inputs, NORMAL_INPUTS)
        self.threshold_rule = choice("threshold_rule", threshold_rule, THRESHOLD_RULES)
        self.rho = positive_number("rho", rho)
        self.confidence = open_fraction("confidence", confidence)
        self.margin = positive_number("margin", margin)
        self.given_threshold = optional(number)("threshold", threshold)
        self.alpha = open_fraction("alpha", alpha)
        self.beta = open_fraction("beta", beta)
        self.indifference = open_fraction("indifference", indifference)
        self.undecided = choice("undecided", undecided, UNDECIDED)
        self.mutant_model = MutantModel(model, selection=self.selection, neuron_side=self.neuron_side)
        self.mutants = []
        self.attempts = 0
        self.normal_sensitivity = None
        self.normal_bound = None
        self.n_normal = None
        self.test = None

    def calibrate(self, loader, device, seed) -> None:
        generator = torch.Generator().manual_seed(seed)
        labels, original = [], []
        with torch.no_grad():
            for x, y in loader:
                labels.append(y)
                original.append(self.model(x.to(device)).argmax(1).cpu())
        labels, original = torch.cat(labels), torch.cat(original)
        normal = (original == labels if self.normal_inputs == "correct"
                  else torch.ones_like(labels, dtype=torch.bool))
        if not normal.any():
            raise UserError("mutation detector: the model gets no calibration input right, so there "
                            "is no normal sensitivity to measure (normal_inputs=correct)")
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
        sensitivities = torch.stack(changed).double().mean(0)[normal]  # per normal input: its LCR
        self.n_normal = len(sensitivities)
        self.normal_sensitivity = float(sensitivities.mean())
        self.normal_bound = confidence_bound(sensitivities, self.confidence)
        threshold = self.given_threshold
        if threshold is None and self.threshold_rule == "confidence_bound":
            threshold = self.rho * self.normal_bound
        elif threshold is None:
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
        adversarial[~decided] = self.undecided_verdict(sensitivity[~decided])
        return Decisions(sensitivity, adversarial, drawn.long())

    def undecided_verdict(self, sensitivity: torch.Tensor) -> torch.Tensor | bool:
        """The verdict for inputs the SPRT left undecided when the mutants ran out."""
        if self.undecided == "threshold":
            return sensitivity > self.test.threshold
        return self.undecided == "adversarial"

    def summary(self) -> dict:
        if self.given_threshold is not None:
            source = "given"
        elif self.threshold_rule == "confidence_bound":
            source = f"rho={self.rho:g} x {self.confidence:g} upper bound of the normal sensitivity"
        else:
            source = f"margin={self.margin:g} x normal sensitivity"
        return {"threshold": self.test.threshold, "threshold_from": source,
                "normal_sensitivity": self.normal_sensitivity,
                "normal_sensitivity_bound": self.normal_bound, "n_normal": self.n_normal,
                "mutants": len(self.mutants), "mutant_attempts": self.attempts}
