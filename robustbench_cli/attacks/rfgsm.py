"""R+FGSM (Tramèr et al. 2018, "Ensemble adversarial training: attacks and defenses"): a
random signed step of `alpha`, then an FGSM step of eps - alpha from there. The random
step leaves the sharp curvature that one-step adversarial training builds around the data
points, where plain FGSM's gradient misleads it.
"""

from robustbench_cli import checks
from robustbench_cli.attacks.base import LabelledAttack, cross_entropy


class RFGSM(LabelledAttack):
    name = "rfgsm"

    def __init__(self, model, *, eps, alpha=None, alpha_ratio=0.5, label="true", seed=0):
        super().__init__(model, eps=eps, label=label)
        if alpha is None:
            alpha = checks.in_interval("alpha_ratio", alpha_ratio, 0, 1) * self.eps
        self.alpha = checks.in_interval("alpha", alpha, 0, self.eps)
        self.seed = checks.non_negative_int("seed", seed)

    def _perturb(self, x, y):
        labels = self._loss_labels(x, y)
        direction = self._random(x.shape[1:], "direction", kind="randn", dtype=x.dtype).sign()
        start = (x + self.alpha * direction.to(x.device)).clamp(0, 1)
        _, grad = self._input_gradient(start, lambda logits: cross_entropy(logits, labels))
        return start + (self.eps - self.alpha) * grad.sign()
