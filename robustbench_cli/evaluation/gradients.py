"""How large a classifier's input gradients are: what defensive distillation shrinks
(Papernot et al. 2016, section 5) and what gradient-based attacks (FGSM, JSMA) follow.

Per test point, at the deployed temperature (the model's logits as they are):
- the gradient of the cross-entropy loss with the true label (FGSM's direction), and
- the gradient of the true class's softmax probability (the Jacobian row JSMA reads).
Reported as the mean absolute component over all points and inputs (Papernot et al.'s
"amplitude"), the median per-point L1 norm, and the share of points whose loss gradient is
exactly zero (softmax saturated in float32: the masking that stops FGSM but not attacks on
the logits).
"""

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


def gradient_amplitudes(model, dataset, batch_size: int, device) -> dict:
    model = model.to(device).eval().requires_grad_(False)
    loss_abs, prob_abs, loss_l1, zero, count, components = 0.0, 0.0, [], 0, 0, 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device).requires_grad_(True), y.to(device)
        logits = model(x)
        (loss_grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x, retain_graph=True)
        true_prob = F.softmax(logits, dim=1).gather(1, y[:, None]).sum()
        (prob_grad,) = torch.autograd.grad(true_prob, x)
        per_point = loss_grad.flatten(1).abs().sum(1)
        loss_abs += loss_grad.abs().sum().item()
        prob_abs += prob_grad.abs().sum().item()
        loss_l1.append(per_point.cpu())
        zero += int((per_point == 0).sum())
        count += len(x)
        components += loss_grad.numel()
    norms = torch.cat(loss_l1)
    return {"n": count, "loss_grad_mean_abs": loss_abs / components,
            "prob_grad_mean_abs": prob_abs / components,
            "loss_grad_median_l1": norms.median().item(), "zero_grad_fraction": zero / count}
