"""The AutoAttack ensemble (Croce & Hein 2020): fixed, diverse, parameter-free attacks, each
run only on the points every earlier one failed to fool.

A point is robust only if it survives all of them (the worst case), so the order only
changes the cost: the cheap, strong white-box attacks go first and the expensive ones see
few points. Versions (`version=`):

- standard: APGD-CE, APGD-T (targeted DLR over the `target_classes` most likely other
  classes), FAB-T (the same targets), Square (`queries`); one restart each, as the
  reference's standard version.
- plus: APGD-CE and APGD-DLR with 5 restarts, FAB with 5 restarts, Square, APGD-T, FAB-T.
- rand: APGD-CE and APGD-DLR, each gradient averaged over 20 passes (EOT), for randomized
  defenses.

`attack.eot_samples` (any version) sets every gradient member's EOT; `attack.bpda=true`
passes the gradients of every member straight through a non-differentiable preprocessing.
- fast (ours, not the reference's): standard without FAB-T, which the reference also drops
  when the other three leave it nothing to do; cheaper on a CPU.

The row gets one `fooled_by_<attack>` count per member (the points it was the first to
fool), as AutoAttack logs them, beside the members' gradient passes and queries. Every
member draws its randomness per point (seed, point index), so the ensemble's outcome for a
point does not depend on the batch.
"""

import torch

from robustbench_cli import attacks, checks
from robustbench_cli.attacks.base import Attack, in_top_k

VERSIONS = ("standard", "plus", "rand", "fast")
NORMS = ("linf", "l2")


def members(version: str, steps: int, queries: int, targets: int) -> list[tuple[str, str, dict]]:
    """(column name, attack name, parameters) of each member, in the order they run."""
    apgd = {"steps": steps}
    fab = {"steps": steps}
    square = ("square", "square", {"queries": queries})
    apgd_t = ("apgd_t", "apgd", {**apgd, "loss": "dlr", "target_classes": targets})
    fab_t = ("fab_t", "fab", {**fab, "target_classes": targets})
    if version == "standard":
        return [("apgd_ce", "apgd", apgd), apgd_t, fab_t, square]
    if version == "fast":
        return [("apgd_ce", "apgd", apgd), apgd_t, square]
    if version == "plus":
        return [("apgd_ce", "apgd", {**apgd, "restarts": 5}),
                ("apgd_dlr", "apgd", {**apgd, "loss": "dlr", "restarts": 5}),
                ("fab", "fab", {**fab, "restarts": 5}), square, apgd_t, fab_t]
    return [("apgd_ce", "apgd", {**apgd, "eot_samples": 20}),
            ("apgd_dlr", "apgd", {**apgd, "loss": "dlr", "eot_samples": 20})]


class AutoAttack(Attack):
    name = "autoattack"
    iterative = True  # its white-box members step to the boundary: the sanity check applies

    def __init__(self, model, *, eps, norm="linf", version="standard", steps=100, queries=5000,
                 target_classes=9, seed=0):
        self.norm = checks.choice("norm", norm, NORMS)
        self.version = checks.choice("version", version, VERSIONS)
        self.steps = checks.positive_int("steps", steps)
        self.queries = checks.positive_int("queries", queries)
        self.target_classes = checks.positive_int("target_classes", target_classes)
        self.seed = checks.non_negative_int("seed", seed)
        self.plan = members(self.version, self.steps, self.queries, self.target_classes)
        self.stat_names = ("gradient_passes", "queries",
                           *(f"fooled_by_{column}" for column, _, _ in self.plan))
        super().__init__(model, eps=eps)
        self._members: dict[int, list] = {}  # class count -> built members

    def _built(self, classes: int) -> list:
        """The members for a model with `classes` outputs: at most classes - 1 targets (and
        none of the targeted members when there is no other class to aim at)."""
        if classes not in self._members:
            built = []
            for column, name, params in self.plan:
                if "target_classes" in params:
                    if classes < 4:  # targeted DLR needs 4 logits
                        continue
                    params = {**params, "target_classes": min(params["target_classes"], classes - 1)}
                if self.eot_samples > 1 and attacks.attack_class(name).uses_gradients:
                    params = {**params, "eot_samples": self.eot_samples}  # the user's EOT wins
                attack = attacks.build(name, self.model, eps=self.eps, norm=self.norm,
                                       seed=self.seed, **params)
                built.append((column, attack))
            self._members[classes] = built
        return self._members[classes]

    def _still_robust(self, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return in_top_k(self.model(x_adv), y, self.stop_top_k or 1)

    def _perturb(self, x, y):
        with torch.no_grad():
            classes = self.model(x[:1]).shape[1]
        x_adv = x.clone()
        robust = self._still_robust(x, y).nonzero().squeeze(1)
        for column, attack in self._built(classes):
            if len(robust) == 0:
                break
            attack.stop_at(self.stop_top_k or 1)
            x_adv[robust] = attack(x[robust], y[robust], index=self.index[robust.cpu()])
            for key in ("gradient_passes", "queries"):
                self.stats[key] += attack.stats.get(key, 0)
            survivors = self._still_robust(x_adv[robust], y[robust])
            self.stats[f"fooled_by_{column}"] += int((~survivors).sum())
            robust = robust[survivors]
        return x_adv
