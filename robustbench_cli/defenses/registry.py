"""Every defense, and what it does at train time and at eval time.

A defense is one of two kinds:

- a training recipe for the classifier (`none`, `adv_train`, `pgd_train`, `distillation`,
  `noise_train`, `prune`): `robust train` fits the classifier with it, and at eval time it
  only says which checkpoint to evaluate (one trained with it); the classifier is then
  evaluated as it is;
- a model put in front of a trained classifier (`hgd`): `robust train` fits that model
  (a denoiser) for a given classifier, and at eval time it wraps the classifier, attacked
  under the threat model `defense.threat`;
- a preprocessing put in front of any trained classifier at eval time, with nothing to
  train (`input_noise`, `bit_depth`): `robust train` refuses it, and every attack sees the
  whole defended model.

Cheap to import (no torch): the commands consult it before any model loads.
"""

from dataclasses import dataclass
from importlib import import_module

from robustbench_cli.errors import UserError


@dataclass(frozen=True)
class Defense:
    name: str
    wraps: bool = False  # True: wraps the classifier at eval time (and trains a model for it, if `trains`)
    # "module:function" under robustbench_cli.defenses building the eval-time view
    # (cfg, target, specs, overrides) -> EvalView; only for defenses that wrap.
    view: str | None = None
    # The defense key naming the trained classifier it starts from (hgd: the one its denoiser
    # guards; prune: the one it prunes). Left empty, `robust train` uses the newest undefended
    # classifier of the same model and dataset, or trains one first.
    classifier_key: str | None = None
    trains: bool = True  # False: an eval-time wrapper with nothing to train

    def check_trainable(self) -> None:
        """For `robust train`: a one-line UserError for a defense with nothing to train."""
        if not self.trains:
            raise UserError(f"defense={self.name} is an eval-time defense with nothing to train: "
                            f"train the classifier with defense=none (or noise_train), then "
                            f"robust eval ckpt_path=CLASSIFIER defense={self.name}")

    @property
    def trained_with(self) -> str | None:
        """At eval time: the recipe the evaluated classifier must have been trained with
        (None: any classifier)."""
        return None if self.wraps or self.name == "none" else self.name

    def eval_view(self, cfg, target, specs, overrides):
        """What `robust eval` runs: the classifier as it is, or wrapped by this defense."""
        if self.view is None:
            from robustbench_cli.evaluation.view import EvalView

            return EvalView(target.model, specs)
        module, function = self.view.split(":")
        build = getattr(import_module(f"robustbench_cli.defenses.{module}"), function)
        return build(cfg, target, specs, overrides)


_DEFENSES = {
    "none": Defense("none"),
    "adv_train": Defense("adv_train"),
    "pgd_train": Defense("pgd_train"),
    "distillation": Defense("distillation"),
    "noise_train": Defense("noise_train"),
    "prune": Defense("prune", classifier_key="source_ckpt"),
    "hgd": Defense("hgd", wraps=True, view="hgd.evaluation:hgd_view", classifier_key="target_ckpt"),
    "input_noise": Defense("input_noise", wraps=True, view="preprocessing:input_noise_view", trains=False),
    "bit_depth": Defense("bit_depth", wraps=True, view="preprocessing:bit_depth_view", trains=False),
}
DEFENSE_NAMES = tuple(_DEFENSES)


def defense(name) -> Defense:
    """The registered defense `name` (a one-line UserError names the known ones)."""
    if name not in _DEFENSES:
        raise UserError(f"unknown defense {name!r}; known: {', '.join(DEFENSE_NAMES)}")
    return _DEFENSES[name]
