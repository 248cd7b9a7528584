"""`robust analyze gradients`: the input-gradient amplitudes defensive distillation shrinks."""

import json

import pytest
import torch
from helpers import ok, robust

from robustbench_cli.checkpoints import load_classifier
from robustbench_cli.data import RobustDataModule
from robustbench_cli.evaluation.gradients import gradient_amplitudes


class Scaled(torch.nn.Module):
    """Logits times T: how a classifier distilled at temperature T behaves at T = 1."""

    def __init__(self, model, factor):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x):
        return self.factor * self.model(x)


def test_scaled_logits_saturate_the_softmax_and_shrink_the_gradients(trained, fashion_root):
    work, metrics, run_dir = trained
    model = load_classifier(run_dir / metrics["checkpoint"])
    data = RobustDataModule({"name": "fashion_mnist", "root": str(fashion_root), "limit_test": 300},
                            data_dir="data").test_dataset()
    plain = gradient_amplitudes(model, data, 100, torch.device("cpu"))
    hot = gradient_amplitudes(Scaled(model, 100.0), data, 100, torch.device("cpu"))
    assert plain["n"] == hot["n"] == 300
    assert hot["loss_grad_median_l1"] < 0.01 * plain["loss_grad_median_l1"]
    assert hot["prob_grad_mean_abs"] < 0.5 * plain["prob_grad_mean_abs"]  # mean: boundary points dominate
    assert hot["zero_grad_fraction"] > plain["zero_grad_fraction"]

    # the command writes the same numbers as one results.json row, with the model's identity
    ok(robust("analyze", "gradients", f"ckpt_path={run_dir / metrics['checkpoint']}",
              "dataset.limit_test=300", "hydra.run.dir=grads", cwd=work))
    [row] = json.loads((work / "grads" / "results.json").read_text())
    assert row["temperature"] == 1.0 and row["model"] == "mlp"
    assert row["loss_grad_mean_abs"] == pytest.approx(plain["loss_grad_mean_abs"], rel=1e-5)
    assert json.loads((work / "grads" / "run.json").read_text())["command"] == "analyze"


def test_bit_depth_zeroes_the_gradients_the_command_measures(trained):
    work, metrics, run_dir = trained
    ckpt = f"ckpt_path={run_dir / metrics['checkpoint']}"
    ok(robust("analyze", "gradients", ckpt, "defense=bit_depth", "dataset.limit_test=200",
              "hydra.run.dir=squeezed", cwd=work))
    [row] = json.loads((work / "squeezed" / "results.json").read_text())
    assert row["defense"] == "bit_depth" and row["defense_params"]["bits"] == 3
    assert row["zero_grad_fraction"] == 1.0  # round() passes no gradient: the masking BPDA undoes
    refused = robust("analyze", "layers", ckpt, "defense=bit_depth", "dataset.limit_test=50", cwd=work)
    assert refused.returncode != 0 and "defense=bit_depth is not measured there" in refused.stderr
