"""One-step gradient attacks: FGSM (Goodfellow et al. 2015), its least-likely and random
class variants (Kurakin et al. 2017, appendix A), the entropy step and the fast gradient
method scaled to the L2 or L-inf ball."""

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack, LabelledAttack, cross_entropy, per_example_norm


class FGSM(LabelledAttack):
    """x + eps * sign(grad CE(f(x), label))."""

    name = "fgsm"

    def _perturb(self, x, y):
        labels = self._loss_labels(x, y)
        _, grad = self._input_gradient(x, lambda logits: cross_entropy(logits, labels))
        return x + self.eps * grad.sign()


class FGSMPred(FGSM):
    """FGSM against the model's own prediction, which removes label leaking."""

    name = "fgsm_pred"

    def __init__(self, model, *, eps, label="pred"):
        super().__init__(model, eps=eps, label=label)


class StepLL(Attack):
    """One step toward the least-likely class: x - eps * sign(grad CE(f(x), y_ll))."""

    name = "step_ll"

    def _perturb(self, x, y):
        def toward_least_likely(logits):
            return -cross_entropy(logits, logits.detach().argmin(1))

        _, grad = self._input_gradient(x, toward_least_likely)
        return x + self.eps * grad.sign()


class StepRnd(Attack):
    """One step toward a class drawn uniformly among those other than the true label, drawn
    per point from (seed, the point's index)."""

    name = "step_rnd"

    def __init__(self, model, *, eps, seed=0):
        super().__init__(model, eps=eps)
        self.seed = checks.non_negative_int("seed", seed)

    def _perturb(self, x, y):
        def toward_random_class(logits):
            classes = logits.shape[1]
            # Per point from (seed, its index), on a CPU generator: the same on any device.
            shift = self._random((), "class", kind="randint", low=1, high=classes)
            return -cross_entropy(logits, (y + shift.to(y.device)) % classes)

        _, grad = self._input_gradient(x, toward_random_class)
        return x + self.eps * grad.sign()


class FastEntropy(Attack):
    """One step that maximises the entropy of the softmax prediction (no label needed)."""

    name = "fast_entropy"

    def _perturb(self, x, y):
        def entropy(logits):
            log_p = logits.log_softmax(1)
            return -(log_p.exp() * log_p).sum()

        _, grad = self._input_gradient(x, entropy)
        return x + self.eps * grad.sign()


class FastGradL2(LabelledAttack):
    """x + eps * g / ||g||_2: the fast gradient method in the L2 ball (eps is the L2 norm)."""

    name = "fast_grad_l2"
    norm = "l2"

    def _perturb(self, x, y):
        labels = self._loss_labels(x, y)
        _, grad = self._input_gradient(x, lambda logits: cross_entropy(logits, labels))
        return x + self.eps * grad / per_example_norm(grad, 2).clamp_min(1e-12)


class FastGradLinf(LabelledAttack):
    """x + eps * g / ||g||_inf: keeps the gradient's shape, scaled to reach the L-inf ball."""

    name = "fast_grad_linf"

    def _perturb(self, x, y):
        labels = self._loss_labels(x, y)
        _, grad = self._input_gradient(x, lambda logits: cross_entropy(logits, labels))
        return x + self.eps * grad / per_example_norm(grad, float("inf")).clamp_min(1e-12)
