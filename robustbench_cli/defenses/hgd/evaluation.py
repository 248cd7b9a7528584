"""`robust eval defense=hgd`: denoiser(s) -> classifier under a threat model (`defense.threat`).

full:      attacks differentiate through denoiser and classifier (the adaptive attack).
oblivious: attacks are crafted on the bare classifier, then evaluated through the denoiser
           (the paper's white-box set); iterative attacks run without early stopping, as
           the transfer attack's do, unless attack.early_stop is set.
transfer:  the attacks are transfer attacks from a holdout model (the paper's black-box set):
           attack=transfer attack.source_ckpt=HOLDOUT.
The runner's protocol (robust or all_points) applies unchanged, with clean correctness
judged on the defended model.
"""

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from robustbench_cli import attacks
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.view import EvalView


class Denoised(nn.Module):
    """Each denoiser, then the classifier; an ensemble averages the paths' logits. `gain`
    scales the predicted noise removal: x + gain * (denoiser(x) - x) (Liao et al. Table 8's
    pixel-guided denoiser "x2" is gain 2). `heads`, one per denoiser, pairs them instead:
    denoiser i feeds classifier i (the members of an ensemble `classifier`), as in Liao et
    al.'s best ensemble, (LGD1 -> IncV3) & (LGD2 -> ensV3). `average_images` averages the
    denoised images and classifies that one image (their "LGD1&LGD2 -> IncV3&ensV3")."""

    def __init__(self, denoisers, classifier: nn.Module, gain: float = 1.0, heads=None,
                 average_images: bool = False):
        super().__init__()
        self.denoisers = nn.ModuleList(denoisers)
        self.classifier = classifier  # what an oblivious attack sees
        self.average_images = average_images
        self.heads = nn.ModuleList([classifier] if average_images
                                   else heads or [classifier] * len(denoisers))
        self.gain = gain

    def denoise(self, denoiser, x):
        out = denoiser(x)
        return out if self.gain == 1 else x + self.gain * (out - x)

    def outputs(self, x) -> list[torch.Tensor]:
        """The denoised image(s) the heads classify, one per head."""
        images = [self.denoise(d, x) for d in self.denoisers]
        return [torch.stack(images).mean(0)] if self.average_images else images

    def forward(self, x):
        return torch.stack([head(image) for image, head in zip(self.outputs(x), self.heads)]).mean(0)

    def denoise_l1(self, noisy, clean, images=None) -> torch.Tensor:
        """Per example: mean |denoised - clean|, averaged over the denoised images
        (`images`: outputs(noisy), when the caller has them already)."""
        images = self.outputs(noisy) if images is None else images
        return torch.stack([(image - clean).abs().flatten(1).mean(1) for image in images]).mean(0)

    def slope_terms(self, noisy, clean, images=None) -> tuple[float, float]:
        """The sums of a least-squares line through the origin, predicted = k * true, over
        every pixel (Liao et al.'s Figure 7): true = noisy - clean, the perturbation;
        predicted = noisy - denoised, what the denoiser removed (averaged over the denoisers).
        Returns (sum true * predicted, sum true^2); k is their ratio."""
        images = self.outputs(noisy) if images is None else images
        true = noisy - clean
        predicted = noisy - torch.stack(images).mean(0)
        return float((true * predicted).sum()), float(true.square().sum())


class Oblivious(nn.Module):
    """The defended model for evaluation, the bare classifier for attacks.

    The runner evaluates (clean and adversarial predictions) under torch.inference_mode, and
    every attack runs outside it (Attack.__call__ leaves inference mode to take gradients or
    query outputs), so inference mode tells the two callers apart."""

    def __init__(self, defended: Denoised):
        super().__init__()
        self.defended = defended

    def forward(self, x):
        if torch.is_inference_mode_enabled():
            return self.defended(x)
        return self.defended.classifier(x)


class HGDView(EvalView):
    """Denoiser(s) -> classifier; rows gain denoise_l1 (mean L1 between denoised adversarial
    and clean images over all n points, the paper's Table 2), denoise_slope (the slope k of
    removed against true perturbation, the paper's Figure 7: 1 removes it all, below 1 part
    of it, above 1 more than was added; none on clean images) and a denoising table."""

    def __init__(self, model, specs, identity, denoised: Denoised, dataset, batch_size: int,
                 device: str, denoise_loss: bool):
        super().__init__(model, specs, identity)
        self.denoised, self.dataset, self.batch_size = denoised, dataset, batch_size
        self.device, self.denoise_loss = device, denoise_loss

    def annotate(self, finished):
        row = finished.row
        spec = next((s for s in self.specs if s.name == row["attack"]), None)
        if self.denoise_loss and spec is not None and row.get("denoise_l1") is None \
                and not row.get("check"):
            row["denoise_l1"], row["denoise_slope"] = self._denoising(spec, row["eps"])
        return finished

    def report(self, rows) -> None:
        """The denoising loss beside the accuracy table (it is in results.json/csv too)."""
        rows = [r for r in rows if r.get("denoise_l1") is not None]
        if not rows:
            return
        from rich.console import Console
        from rich.table import Table

        from robustbench_cli.reporting.formatting import format_eps, format_percent

        table = Table(title=f"Denoising loss (threat {self.identity['threat']}): mean |denoised - clean|")
        for header in ("attack", "eps", "accuracy (%)", "denoise L1", "slope removed/true"):
            table.add_column(header, justify="left" if header == "attack" else "right")
        for row in rows:
            slope = row.get("denoise_slope")
            table.add_row(row["attack"], format_eps(row["eps"]), format_percent(row["accuracy"]),
                          f"{row['denoise_l1']:.4f}", "-" if slope is None else f"{slope:.3f}")
        Console().print(table)

    def _denoising(self, spec, eps: float) -> tuple[float, float | None]:
        """Another pass of the attack over the test set: (mean denoise L1, slope or None when
        nothing was perturbed)."""
        from robustbench_cli.evaluation.runner import resolve_device

        device = resolve_device(self.device)
        attack = attacks.build(spec.name, self.model, eps=eps, **spec.params)
        total, n, cross, square = 0.0, 0, 0.0, 0.0
        for x, y in DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False):
            x, y = x.to(device), y.to(device)
            x_adv = attack(x, y) if eps > 0 and spec.name != "none" else x
            with torch.inference_mode():
                images = self.denoised.outputs(x_adv)  # one denoising pass for both measures
                total += float(self.denoised.denoise_l1(x_adv, x, images).sum())
                terms = self.denoised.slope_terms(x_adv, x, images)
            cross, square, n = cross + terms[0], square + terms[1], n + len(x)
        return total / n, (cross / square if square > 0 else None)


def hgd_view(cfg, target, specs, overrides) -> HGDView:
    """Denoiser(s) `defense.ckpt` in front of the target classifier, attacked under
    `defense.threat`."""
    from robustbench_cli.checkpoints import file_sha256
    from robustbench_cli.defenses.hgd.checkpoint import check_shape, load_denoiser
    from robustbench_cli.defenses.hgd.settings import eval_settings
    from robustbench_cli.evaluation.runner import AttackSpec

    settings = eval_settings(cfg)
    threat = settings.threat
    denoisers, records = [], []
    # By default, as many denoisers as ensemble members: denoiser i feeds member i; else each
    # feeds the classifier (or the whole ensemble).
    members = len(target.members)
    combine = settings.combine or (
        "pairs" if members > 1 and len(settings.ckpts) == members else "paths")
    if combine == "pairs" and len(settings.ckpts) != members:
        raise UserError(f"defense.combine=pairs feeds denoiser i to classifier i: give as many "
                        f"denoisers (defense.ckpt, {len(settings.ckpts)}) as classifiers "
                        f"(ckpt_path, {members})")
    paired = combine == "pairs"
    shas = [file_sha256(ckpt) for ckpt in target.checkpoints]
    for i, path in enumerate(settings.ckpts):
        denoiser, meta = load_denoiser(path)
        check_shape(meta, target.meta["info"], path)
        guided = meta["target"]["sha256"]
        if (guided != shas[i]) if paired else (guided not in shas):
            print(f"note: denoiser {path} was trained for another classifier "
                  f"({meta['target']['checkpoint']}): evaluating its transfer to "
                  f"{target.checkpoints[i] if paired else ','.join(map(str, target.checkpoints))}")
        denoisers.append(denoiser)
        records.append({"checkpoint": str(Path(path).resolve()), "sha256": file_sha256(path),
                        "denoiser": meta["denoiser"]["name"], "guide": meta["guide"]["name"],
                        "guided_classifier_sha256": guided})
    if paired:
        print(f"denoiser i feeds classifier i of the ensemble ({len(denoisers)} pairs), logits averaged")
    defended = Denoised(denoisers, target.model, settings.noise_gain,
                        heads=target.members if paired else None,
                        average_images=combine == "images").eval()
    model = defended
    if threat == "oblivious":
        model = Oblivious(defended)
        if not any(o.lstrip("+").startswith("attack.early_stop=") for o in overrides):
            specs = [AttackSpec(s.name, {**s.params, "early_stop": False} if "early_stop" in s.params
                                else s.params) for s in specs]
    if threat == "transfer" and any(s.name not in ("transfer", "none") for s in specs):
        raise UserError("defense.threat=transfer evaluates transfer attacks from a holdout model: "
                        "attack=transfer attack.source_ckpt=HOLDOUT attack.source_attack=ATTACK")
    classifier_defense = dict(target.meta.get("defense", {"name": "none"}))
    identity = {"defense": "hgd", "threat": threat,
                "defense_params": {"denoisers": records, "classifier_defense": classifier_defense,
                                   "noise_gain": settings.noise_gain,
                                   **({"paired": True} if paired else {}),
                                   **({"average_images": True} if combine == "images" else {})}}
    return HGDView(model, specs, identity, defended, target.test_set, cfg.batch_size, cfg.device,
                   settings.denoise_loss)
