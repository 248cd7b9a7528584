"""Mixed precision in attacks: bf16 autocast on the CPU, float16 loss scaling, bad settings."""

import pytest
import torch
from test_attacks import fashion_test, trained_mlp  # noqa: F401
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_cli.attacks import build
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec, evaluate
from robustbench_cli.models.precision import check_precision


def test_bf16_pgd_is_within_a_point_of_float32(trained_mlp, fashion_test):  # noqa: F811
    data = TensorDataset(*fashion_test)
    spec = AttackSpec("pgd_linf", {"steps": 10, "step_ratio": 0.25})

    def rows(precision):
        return evaluate(trained_mlp, data, [spec], [0.05, 0.1], top5="false", progress=False,
                        precision=precision)

    full, bf16 = rows("32"), rows("bf16-mixed")
    for a, b in zip(full, bf16):
        assert a["eps"] == b["eps"]
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.01, (a, b)
    assert bf16[0]["accuracy"] > bf16[1]["accuracy"]  # the attack still works


def test_float16_gradients_are_loss_scaled_not_flushed_to_zero(trained_mlp, fashion_test):  # noqa: F811
    """A loss ten million times smaller (as a very confident model's): its input gradients lie
    below float16's smallest subnormal (~6e-8). Without loss scaling float16 autocast makes
    them 0, and an attack stepping along sign(0) stalls (the model looks robust)."""
    x, y = fashion_test[0][:100], fashion_test[1][:100]

    def tiny_loss(logits):
        return 1e-7 * nn.functional.cross_entropy(logits.float(), y, reduction="sum")

    attack = build("pgd_linf", trained_mlp, eps=0.1)
    _, full = attack._input_gradient(x, tiny_loss)
    with torch.autocast("cpu", dtype=torch.float16):
        xg = x.clone().requires_grad_(True)
        (unscaled,) = torch.autograd.grad(tiny_loss(trained_mlp(xg)), xg)
        _, half = attack._input_gradient(x, tiny_loss)
    assert (unscaled == 0).float().mean() > 0.9  # float16 flushes them
    moved = full.abs() > 1e-3 * full.abs().max()  # not a near-cancellation
    assert (half[moved].sign() == full[moved].sign()).float().mean() > 0.99  # scaled: float32's


@pytest.mark.parametrize(("value", "accelerator", "message"), [
    ("16-mixed", "cpu", r"16-mixed \(float16\) needs a GPU; on the CPU use trainer.precision=bf16-mixed"),
    ("8-bit", "cpu", "trainer.precision must be one of 32, bf16-mixed, 16-mixed"),
])
def test_bad_precisions_are_one_line_errors(value, accelerator, message):
    with pytest.raises(UserError, match=message):
        check_precision(value, accelerator)
    assert check_precision("32-true", "cpu") == "32" and check_precision(16 * 2, "gpu") == "32"
