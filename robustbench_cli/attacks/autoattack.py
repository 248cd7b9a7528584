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
- fast (ours, not the reference's): standard without FAB-T; cheaper on a CPU.

`attack.eot_samples` (any version; > 1 overrides rand's 20) sets every gradient member's
EOT; `attack.bpda=true` passes the gradients of every member straight through a
non-differentiable preprocessing.

When the evaluation reports top-5, a misclassified point goes on to the next members until
its true class leaves the top 5; a member's output replaces a point's only if it gets
further, so top-1 fooling is never undone. The row gets one `fooled_by_<attack>` count per
member (the points it was the first to misclassify), as AutoAttack logs them, beside the
members' gradient passes and queries, and a member with restarts (plus) its per-restart counts
(`<member>_fooled_by_restart_<r>`, for the restart check of the notes). Every
member draws its randomness per point (seed, point index), so the ensemble's outcome for a
point does not depend on the batch.
"""

import torch

from robustbench_cli import attacks, checks
from robustbench_cli.attacks.base import Attack, fooling_level
from robustbench_cli.attacks.params import NORMS

VERSIONS = ("standard", "plus", "rand", "fast")


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
        # A member with restarts also reports its per-restart counts.
        restart_counts = (f"{column}_fooled_by_restart_{r}" for column, _, params in self.plan
                          if params.get("restarts", 1) > 1
                          for r in range(1, params["restarts"] + 1))
        self.stat_names = ("gradient_passes", "queries",
                           *(f"fooled_by_{column}" for column, _, _ in self.plan), *restart_counts)
        super().__init__(model, eps=eps)
        self._members: dict[int, list] = {}  # class count -> built members

    def _built(self, classes: int) -> list:
        """The members for a model with `classes` outputs: at most classes - 1 targets, and no
        APGD-T below 4 classes (its targeted DLR loss reads the 4 largest logits)."""
        if classes not in self._members:
            built = []
            for column, name, params in self.plan:
                if "target_classes" in params:
                    if name == "apgd" and classes < 4:
                        continue
                    params = {**params, "target_classes": min(params["target_classes"], classes - 1)}
                if self.eot_samples > 1 and attacks.attack_class(name).uses_gradients:
                    params = {**params, "eot_samples": self.eot_samples}
                attack = attacks.build(name, self.model, eps=self.eps, norm=self.norm,
                                       seed=self.seed, **params)
                built.append((column, attack))
            self._members[classes] = built
        return self._members[classes]

    def _levels(self, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per point: 0 correct, 1 misclassified, 2 also out of the stopping top-k (when the
        evaluation reports top-5, a member may push a misclassified point further)."""
        with torch.no_grad():
            return fooling_level(self.model(x_adv), y, self._top_k)

    @property
    def _top_k(self) -> int:
        return self.stop_top_k or 1

    def _perturb(self, x, y):
        with torch.no_grad():
            classes = self.model(x[:1]).shape[1]
        done = 2 if self._top_k > 1 else 1
        x_adv = x.clone()
        levels = self._levels(x, y)
        for column, attack in self._built(classes):
            todo = (levels < done).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            attack.stop_at(self._top_k)
            candidate = attack(x[todo], y[todo], index=self.index[todo.cpu()])
            for key, value in attack.stats.items():
                if key in ("gradient_passes", "queries"):
                    self.stats[key] += value
                elif key.startswith("fooled_by_restart_"):
                    self.stats[f"{column}_{key}"] += value
            reached = self._levels(candidate, y[todo])
            # A member's output replaces the point's only if it gets further: a later member
            # that fails (FAB returns x, Square its best-loss image) never undoes a fooling.
            better = reached > levels[todo]
            self.stats[f"fooled_by_{column}"] += int(((levels[todo] == 0) & (reached > 0)).sum())
            x_adv[todo[better]] = candidate[better]
            levels[todo[better]] = reached[better]
        return x_adv
