"""Layer-wise perturbation level (the paper's error amplification, Figure 5):

    E_l(x') = |f_l(x') - f_l(x)|_1 / |f_l(x)|_1

averaged over the test images, at every conv and linear layer of the classifier (in the
order the forward pass runs them), for adversarial inputs x' (crafted on the bare
classifier), Gaussian noise of sigma = eps, and each denoiser's output on the adversarial
inputs. Small adversarial noise grows along the layers; a good high-level guided denoiser
keeps the top layers close to the clean ones even where its pixel error is not small.
"""

import torch
from torch.utils.data import DataLoader

from robustbench_cli import attacks
from robustbench_cli.defenses.hgd.layers import tapped, weight_layers


def _relative_change(changed: dict, clean: dict) -> dict[str, torch.Tensor]:
    """Per layer, per example: |changed - clean|_1 / |clean|_1."""
    return {name: (changed[name] - value).flatten(1).abs().sum(1)
            / value.flatten(1).abs().sum(1).clamp_min(1e-12)
            for name, value in clean.items()}


def perturbation_levels(classifier, denoisers: dict, attack, dataset, eps: float,
                        batch_size: int, device) -> tuple[list[str], dict[str, list[float]]]:
    """(layer names in forward order, {input kind: mean E_l per layer}); `denoisers` maps a
    label (e.g. "lgd-denoised") to a denoiser; `attack` is built on `classifier`."""
    classifier.eval().to(device)
    for denoiser in denoisers.values():
        denoiser.eval().to(device)
    noise = attacks.build("gaussian", classifier, eps=eps)
    names = weight_layers(classifier)
    sums: dict[str, dict[str, float]] = {}
    order: list[str] = []
    n = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        x_adv, x_noisy = attack(x, y), noise(x, y)
        with torch.inference_mode(), tapped(classifier, names) as outputs:
            classifier(x)
            clean = dict(outputs)
            order = order or list(clean)
            inputs = {"adversarial": x_adv, "gaussian noise": x_noisy,
                      **{label: denoiser(x_adv) for label, denoiser in denoisers.items()}}
            for kind, changed in inputs.items():
                classifier(changed)
                levels = _relative_change(outputs, clean)
                totals = sums.setdefault(kind, dict.fromkeys(order, 0.0))
                for name in order:
                    totals[name] += float(levels[name].sum())
        n += len(x)
    return order, {kind: [totals[name] / n for name in order] for kind, totals in sums.items()}
