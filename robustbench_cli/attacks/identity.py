"""`attack=none`: the clean input, so the sweep runner reports clean accuracy."""

from robustbench_cli.attacks.base import Attack


class NoAttack(Attack):
    name = "none"
    norm = None

    def __init__(self, model, *, eps=0.0):
        super().__init__(model, eps=eps)

    def _perturb(self, x, y):
        return x
