"""Training-time defenses: each turns the `defense` config into what training needs.

`plan_training` returns the model to fit, its training objective, extra Lightning callbacks
and the number of epochs. Distillation trains its teacher first through `fit_stage`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from robustbench_cli.config import check_positive_int, parse_number
from robustbench_cli.errors import UserError

DEFENSE_NAMES = ("none", "adv_train", "pgd_train", "distillation", "noise_train", "prune")


@dataclass
class TrainingPlan:
    model: object  # torch.nn.Module
    model_cfg: dict
    objective: Callable
    max_epochs: int
    callbacks: list = field(default_factory=list)
    extra_metrics: dict = field(default_factory=dict)


def plan_training(cfg, data, run_dir: Path, fit_stage: Callable) -> TrainingPlan:
    """What `robust train` fits for `cfg.defense`. fit_stage(model, objective, model_cfg,
    stage_dir, epochs, defense=...) -> metrics trains an extra stage (the distillation teacher)."""
    from robustbench_cli.lit.classifier import plain_objective
    from robustbench_cli.models import build_model

    defense = OmegaConf.to_container(cfg.defense, resolve=True)
    name = defense.get("name")
    if name not in DEFENSE_NAMES:
        raise UserError(f"unknown defense {name!r}; known: {', '.join(DEFENSE_NAMES)}")
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    epochs = cfg.trainer.max_epochs
    if name == "prune":
        return _prune_plan(defense, data)
    model = build_model(model_cfg, data.info)
    if name == "none":
        return TrainingPlan(model, model_cfg, plain_objective, epochs)
    if name == "noise_train":
        from robustbench_cli.defenses.noise import noise_objective

        return TrainingPlan(model, model_cfg, noise_objective(_fraction(defense, "sigma")), epochs)
    if name in ("adv_train", "pgd_train"):
        return TrainingPlan(model, model_cfg, _adversarial_objective(defense, cfg), epochs)
    return _distillation_plan(defense, cfg, model, model_cfg, data, run_dir, fit_stage)


def _fraction(defense: dict, key: str, allow_zero: bool = True) -> float:
    value = parse_number(defense.get(key), f"defense.{key}")
    if not (0 <= value <= 1) or (value == 0 and not allow_zero):
        raise UserError(f"defense.{key} must be in {'[0' if allow_zero else '(0'}, 1], got {value}")
    return value


def _adversarial_objective(defense: dict, cfg):
    from robustbench_cli import attacks
    from robustbench_cli.defenses.adversarial import AdversarialObjective

    attack = defense["attack"]
    if attack not in attacks.ATTACK_NAMES or attack == "none":
        raise UserError(f"defense.attack must be an attack name, got {attack!r}")
    k = defense.get("k")
    if k is not None:
        check_positive_int(k, "defense.k")
        if k > cfg.dataset.batch_size:
            raise UserError(f"defense.k={k} exceeds the batch size {cfg.dataset.batch_size} (k <= m)")
    lam = parse_number(defense["lam"], "defense.lam")
    if lam < 0:
        raise UserError(f"defense.lam must be >= 0, got {lam}")
    eps_sigma = defense.get("eps_sigma")
    eps_sigma = None if eps_sigma is None else parse_number(eps_sigma, "defense.eps_sigma")
    if eps_sigma is not None and eps_sigma <= 0:
        raise UserError(f"defense.eps_sigma must be > 0 or null, got {eps_sigma}")
    delay = defense.get("delay", 0)
    if delay != 0:
        check_positive_int(delay, "defense.delay")
    return AdversarialObjective(
        attack, defense.get("attack_params") or {}, k=k,
        adv_fraction=_fraction(defense, "adv_fraction"), lam=lam,
        eps_max=_fraction(defense, "eps_max", allow_zero=False), eps_sigma=eps_sigma,
        eps_levels=check_positive_int(defense.get("eps_levels", 16), "defense.eps_levels"),
        delay=delay, seed=cfg.seed)


def _distillation_plan(defense, cfg, student, model_cfg, data, run_dir, fit_stage) -> TrainingPlan:
    from robustbench_cli.checkpoints import load_classifier
    from robustbench_cli.defenses.distillation import SoftLabelObjective, temperature_objective
    from robustbench_cli.models import build_model

    if model_cfg.get("head", "sce") != "sce":
        raise UserError("defense=distillation needs model.head=sce (soft labels are softmax outputs)")
    temperature = parse_number(defense["temperature"], "defense.temperature")
    if temperature <= 0:
        raise UserError(f"defense.temperature must be > 0, got {temperature}")
    extra = {"temperature": temperature}
    if defense.get("teacher_ckpt"):
        teacher = load_classifier(defense["teacher_ckpt"])
        extra["teacher_checkpoint"] = str(Path(defense["teacher_ckpt"]).resolve())
    else:
        epochs = defense.get("teacher_epochs") or cfg.trainer.max_epochs
        teacher_model = build_model(model_cfg, data.info)
        metrics = fit_stage(teacher_model, temperature_objective(temperature), model_cfg,
                            run_dir / "teacher", check_positive_int(epochs, "defense.teacher_epochs"),
                            defense={**defense, "stage": "teacher"})
        teacher = teacher_model.eval()
        extra["teacher_checkpoint"] = str(run_dir / "teacher" / metrics["checkpoint"])
        extra["teacher_test_accuracy"] = metrics["test_accuracy"]
    return TrainingPlan(student, model_cfg, SoftLabelObjective(teacher, temperature),
                        cfg.trainer.max_epochs, extra_metrics=extra)


def _prune_plan(defense: dict, data) -> TrainingPlan:
    from robustbench_cli.checkpoints import build_classifier, classifier_state, read_checkpoint
    from robustbench_cli.defenses.pruning import KeepPruned, prune
    from robustbench_cli.lit.classifier import plain_objective

    source = defense.get("source_ckpt")
    if not source:
        raise UserError("defense=prune needs defense.source_ckpt=PATH (the trained model to prune)")
    content = read_checkpoint(source)
    meta = content["robust"]
    info = data.info.to_dict()
    for key in ("num_classes", "channels", "height", "width"):
        if info[key] != meta["info"][key]:
            raise UserError(f"defense.source_ckpt was trained with {key}={meta['info'][key]}, "
                            f"the {info['name']} data has {key}={info[key]}")
    model = build_classifier(meta, classifier_state(content), source)
    ratio = _fraction(defense, "ratio")
    epochs = defense.get("finetune_epochs", 0)
    if epochs != 0:
        check_positive_int(epochs, "defense.finetune_epochs")
    loader = data.statistics_dataloader()
    masks = prune(model, defense.get("layers"), ratio, loader)
    pruned = {name: int((mask == 0).sum()) for name, mask in masks.items()}
    return TrainingPlan(model.train(), meta["model"], plain_objective, epochs,
                        callbacks=[KeepPruned(masks)],
                        extra_metrics={"source_checkpoint": str(Path(source).resolve()),
                                       "pruned_weights": pruned})
