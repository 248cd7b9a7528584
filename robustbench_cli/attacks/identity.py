"""`attack=none`: the clean input, so the sweep runner reports clean accuracy."""

from robustbench_cli.attacks.base import Attack


class NoAttack(Attack):
    name = "none"
    norm = None

    def __init__(self, model, *, eps=0.0):
        super().__init__(model, eps=eps)

    def __call__(self, x, y):
        self.stats = {"gradient_passes": 0}
        return x.detach().clone()
