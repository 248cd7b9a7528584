"""The `defense=hgd` config, typed and checked early (one-line UserError on bad input)."""

from dataclasses import dataclass
from pathlib import Path

from robustbench_cli.checks import (
    checkpoint_paths,
    choice,
    flag,
    non_negative_number,
    number,
    optional,
    plain,
    positive_int,
)
from robustbench_cli.defenses.hgd import COMBINES, THREATS
from robustbench_cli.errors import UserError

# Attacks that cannot make training pairs: no perturbation, or crafted on other checkpoints.
NOT_GENERATORS = ("none", "transfer")


@dataclass
class TrainSettings:
    target_ckpt: Path
    denoiser: str
    widths: list | None
    guide: str
    guide_layer: str | None
    attacks: list[dict]  # each {"name": ..., other attack parameters}
    eps_range: tuple[float, float]
    eps_levels: int
    source_ckpts: list[Path] | None
    online: bool


@dataclass
class EvalSettings:
    ckpts: list[Path]
    threat: str
    denoise_loss: bool
    noise_gain: float
    combine: str | None  # pairs | paths | images; None: pairs when the counts match, else paths


def train_settings(cfg) -> TrainSettings:
    defense = cfg.defense
    if not defense.get("target_ckpt"):
        raise UserError("defense=hgd needs defense.target_ckpt=PATH: the trained classifier "
                        "checkpoint that guides the denoiser (robust train writes checkpoints/best.ckpt)")
    if cfg.get("resume"):
        raise UserError("resume=true does not apply to defense=hgd: pass ckpt_path=.../last.ckpt "
                        "of the interrupted denoiser run")
    for key in ("lr_final", "lr_patience"):  # the learning-rate drop moved to optim.schedule=plateau
        if key in defense:
            from robustbench_cli.config import renamed_key

            raise UserError(renamed_key(f"defense.{key}", defense[key]))
    eps_range = plain(defense.eps_range)
    if not isinstance(eps_range, list) or len(eps_range) != 2:
        raise UserError(f"defense.eps_range must be [low, high], got {eps_range!r}")
    low, high = (number("defense.eps_range", v) for v in eps_range)
    if not 0 < low <= high <= 1:
        raise UserError(f"defense.eps_range must satisfy 0 < low <= high <= 1, got [{low}, {high}]")
    source = defense.get("source_ckpts")
    return TrainSettings(
        target_ckpt=Path(defense.target_ckpt),
        denoiser=defense.denoiser,
        widths=plain(defense.get("widths")),
        guide=defense.guide,
        guide_layer=defense.get("guide_layer"),
        attacks=_attack_list(defense.get("attacks")),
        eps_range=(low, high),
        eps_levels=positive_int("defense.eps_levels", defense.eps_levels),
        source_ckpts=optional(checkpoint_paths)("defense.source_ckpts", source),
        online=flag("defense.online", defense.online),
    )


def _attack_list(value) -> list[dict]:
    from robustbench_cli.attacks import ATTACK_NAMES

    value = plain(value)
    if not isinstance(value, list) or not value:
        raise UserError(f"defense.attacks must be a non-empty list like [{{name: fgsm}}, "
                        f"{{name: bim, steps: 2}}], got {value!r}")
    entries = []
    for entry in value:
        entry = {"name": entry} if isinstance(entry, str) else entry
        name = entry.get("name") if isinstance(entry, dict) else None
        if name not in ATTACK_NAMES or name in NOT_GENERATORS:
            raise UserError(f"defense.attacks: each entry needs name: ATTACK (not "
                            f"{' or '.join(NOT_GENERATORS)}), got {entry!r}")
        entries.append(dict(entry))
    return entries


def eval_settings(cfg) -> EvalSettings:
    defense = cfg.defense
    threat = choice("defense.threat", defense.get("threat", "full"), THREATS)
    if not defense.get("ckpt"):
        raise UserError("defense=hgd needs defense.ckpt=PATH: a denoiser checkpoint from "
                        "`robust train defense=hgd` (or a list [a,b] for an ensemble)")
    return EvalSettings(ckpts=checkpoint_paths("defense.ckpt", defense.ckpt), threat=threat,
                        denoise_loss=flag("defense.denoise_loss", defense.denoise_loss),
                        noise_gain=non_negative_number("defense.noise_gain", defense.get("noise_gain", 1.0)),
                        combine=optional(choice)("defense.combine", defense.get("combine"), COMBINES))
