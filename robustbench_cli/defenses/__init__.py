"""Training-time defenses: each turns the `defense` config into what training needs.

`plan_training` returns the model to fit, its training objective, extra Lightning callbacks
and the number of epochs. Distillation trains its teacher first through `fit_stage`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from robustbench_cli.checks import (
    in_interval,
    non_negative_int,
    non_negative_number,
    number,
    optional,
    positive_int,
    positive_number,
)
from robustbench_cli.defenses import registry
from robustbench_cli.errors import UserError

# A finished distillation teacher: its stage metrics and T (not metrics.json, which marks a
# finished `robust train` run that checkpoint lookup would find).
TEACHER_RECORD = "teacher.json"


@dataclass
class TrainingPlan:
    model: object  # torch.nn.Module
    model_cfg: dict
    objective: Callable
    max_epochs: int
    callbacks: list = field(default_factory=list)
    extra_metrics: dict = field(default_factory=dict)


def plan_training(cfg, data, run_dir: Path, fit_stage: Callable, teacher_dir=None) -> TrainingPlan:
    """What `robust train` fits for `cfg.defense`. fit_stage(model, objective, model_cfg,
    stage_dir, epochs, defense=...) -> metrics trains an extra stage (the distillation teacher).
    teacher_dir: the run folder whose finished teacher/ a resumed distillation run reuses
    (default run_dir)."""
    from robustbench_cli.lit.classifier import plain_objective
    from robustbench_cli.models import build_model

    defense = OmegaConf.to_container(cfg.defense, resolve=True)
    name = defense.get("name")
    if registry.defense(name).wraps:
        raise UserError(f"defense={name} is not a classifier training recipe")
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
    return _distillation_plan(defense, cfg, model, model_cfg, data, run_dir, fit_stage, teacher_dir)


def _fraction(defense: dict, key: str, allow_zero: bool = True) -> float:
    return in_interval(f"defense.{key}", defense.get(key), 0, 1, low_closed=allow_zero)


def _adversarial_objective(defense: dict, cfg):
    from robustbench_cli import attacks
    from robustbench_cli.defenses.adversarial import AdversarialObjective

    attack = defense["attack"]
    if attack not in attacks.ATTACK_NAMES or attack == "none":
        raise UserError(f"defense.attack must be an attack name, got {attack!r}")
    k = defense.get("k")
    if k is not None:
        k = positive_int("defense.k", k)
        if k > cfg.dataset.batch_size:
            raise UserError(f"defense.k={k} exceeds the batch size {cfg.dataset.batch_size} (k <= m)")
    lam = non_negative_number("defense.lam", defense["lam"])
    eps_sigma = optional(positive_number)("defense.eps_sigma", defense.get("eps_sigma"))
    delay = non_negative_int("defense.delay", defense.get("delay", 0))
    return AdversarialObjective(
        attack, defense.get("attack_params") or {}, k=k,
        adv_fraction=_fraction(defense, "adv_fraction"), lam=lam,
        eps_max=_fraction(defense, "eps_max", allow_zero=False), eps_sigma=eps_sigma,
        eps_levels=_eps_levels(defense), delay=delay, seed=cfg.seed)


def _eps_levels(defense: dict) -> int | None:
    """defense.eps_levels: a positive integer, or null for unrounded eps (document 004's)."""
    levels = defense.get("eps_levels", 16)
    return optional(positive_int)("defense.eps_levels", levels)


def _distillation_plan(defense, cfg, student, model_cfg, data, run_dir, fit_stage,
                       teacher_dir=None) -> TrainingPlan:
    """Papernot et al.'s teacher is trained at the student's temperature T. In order: a given
    teacher (teacher_ckpt; refused unless trained at T), the run's own (teacher_dir/teacher/,
    a resumed run's), one trained before with the same model, data, seed, optimizer, epochs
    and T (the newest under paths.output_dir), else a new one trained into run_dir/teacher/,
    its checkpoint recording T (defense.temperature, defense.stage=teacher)."""
    import json

    from robustbench_cli.defenses.distillation import SoftLabelObjective, temperature_objective
    from robustbench_cli.models import build_model

    if model_cfg.get("head", "sce") != "sce":
        raise UserError("defense=distillation needs model.head=sce (soft labels are softmax outputs)")
    temperature = positive_number("defense.temperature", defense["temperature"])
    epochs = positive_int("defense.teacher_epochs", defense.get("teacher_epochs") or cfg.trainer.max_epochs)
    identity = _teacher_identity(cfg, model_cfg, temperature, epochs)
    extra = {"temperature": temperature}
    reused = Path(teacher_dir or run_dir) / "teacher"  # a resumed run's own, else an earlier run's
    if not (reused / TEACHER_RECORD).is_file():
        reused = None if defense.get("teacher_ckpt") else _earlier_teacher(cfg, identity)
    if defense.get("teacher_ckpt"):
        path = Path(defense["teacher_ckpt"])
        teacher = _teacher(path, "defense.teacher_ckpt", temperature, data)
    elif reused is not None:
        recorded = json.loads((reused / TEACHER_RECORD).read_text())
        path = reused / recorded["checkpoint"]
        print(f"distillation: reusing the teacher {path} (same model, data, seed, optimizer, "
              f"epochs and T={temperature:g})")
        teacher = _teacher(path, f"the kept teacher {reused}", temperature, data)
        extra["teacher_test_accuracy"] = recorded["test_accuracy"]
    else:
        teacher_model = build_model(model_cfg, data.info)
        stage_dir = Path(run_dir) / "teacher"
        metrics = fit_stage(teacher_model, temperature_objective(temperature), model_cfg,
                            stage_dir, epochs,
                            defense={**defense, "stage": "teacher", "temperature": temperature})
        if metrics.pop("is_global_zero", True):  # marks the teacher finished, for reuse
            from robustbench_cli.reporting import atomic_write_text

            record = {**metrics, "temperature": temperature, "identity": identity}
            atomic_write_text(stage_dir / TEACHER_RECORD, json.dumps(record, indent=2) + "\n")
        teacher = teacher_model.eval()
        path = stage_dir / metrics["checkpoint"]
        extra["teacher_test_accuracy"] = metrics["test_accuracy"]
    extra["teacher_checkpoint"] = str(Path(path).resolve())
    return TrainingPlan(student, model_cfg, SoftLabelObjective(teacher, temperature),
                        cfg.trainer.max_epochs, extra_metrics=extra)


def _teacher_identity(cfg, model_cfg: dict, temperature: float, epochs: int) -> dict:
    """What makes two teachers the same: everything their training depends on, as JSON."""
    import json

    from robustbench_cli.config import recorded_dataset_config

    dataset = {k: v for k, v in recorded_dataset_config(cfg.dataset).items()
               if k not in ("num_workers", "download")}
    identity = {"model": model_cfg, "dataset": dataset, "seed": cfg.seed, "epochs": epochs,
                "temperature": temperature, "optim": OmegaConf.to_container(cfg.optim, resolve=True),
                "trainer": {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
                            if k != "max_epochs"}}  # the teacher's epochs are `epochs`
    return json.loads(json.dumps(identity))  # as it reads back from teacher.json


def _earlier_teacher(cfg, identity: dict) -> Path | None:
    """The newest finished teacher/ folder under paths.output_dir with this identity."""
    import json

    found = []
    for record in Path(cfg.paths.output_dir).glob(f"train*/**/teacher/{TEACHER_RECORD}"):
        try:
            same = json.loads(record.read_text()).get("identity") == identity
        except (OSError, ValueError):
            continue
        if same:
            found.append((record.stat().st_mtime, record.parent))
    return max(found)[1] if found else None


def trained_temperature(meta: dict) -> float | None:
    """The softmax temperature a classifier checkpoint was trained at: a distillation
    teacher's (or student's) recorded defense.temperature; 1 for every other training
    (plain softmax cross-entropy); None when a distillation record lacks it."""
    defense = meta.get("defense") or {}
    if defense.get("name") != "distillation":
        return 1.0
    recorded = defense.get("temperature")
    return None if recorded is None else number("recorded temperature", recorded)


def _teacher(path: Path, what: str, temperature: float, data):
    """The teacher at `path`, refused unless trained at `temperature` on this data's shape."""
    from robustbench_cli.checkpoints import (
        META_KEY,
        build_classifier,
        check_fits,
        classifier_state,
        read_checkpoint,
    )

    content = read_checkpoint(path)
    meta = content[META_KEY]
    if "model" not in meta:
        raise UserError(f"{what} {path} is not a classifier checkpoint")
    trained_at = trained_temperature(meta)
    if trained_at != temperature:
        at = "an unrecorded temperature" if trained_at is None else f"temperature {trained_at:g}"
        raise UserError(f"{what} {path} was trained at {at}, this run distils at defense.temperature="
                        f"{temperature:g}: Papernot et al.'s teacher is trained at the student's T "
                        f"(pass a teacher trained at {temperature:g}, or teacher_ckpt=null to train one)")
    if meta["model"].get("head", "sce") != "sce":
        raise UserError(f"{what} {path} has model.head={meta['model']['head']}: soft labels need a "
                        "softmax (sce) teacher")
    check_fits(meta["info"], data.info.to_dict(), f"{what} {path}")
    return build_classifier(meta, classifier_state(content), path)


def _prune_plan(defense: dict, data) -> TrainingPlan:
    from robustbench_cli.checkpoints import build_classifier, check_fits, classifier_state, read_checkpoint
    from robustbench_cli.defenses.pruning import KeepPruned, prune
    from robustbench_cli.lit.classifier import plain_objective

    source = defense.get("source_ckpt")
    if not source:
        raise UserError("defense=prune needs defense.source_ckpt=PATH (the trained model to prune)")
    content = read_checkpoint(source)
    meta = content["robust"]
    check_fits(meta["info"], data.info.to_dict(), f"defense.source_ckpt {source}")
    model = build_classifier(meta, classifier_state(content), source)
    ratio = _fraction(defense, "ratio")
    epochs = non_negative_int("defense.finetune_epochs", defense.get("finetune_epochs", 0))
    loader = data.statistics_dataloader()
    masks = prune(model, defense.get("layers"), ratio, loader)
    pruned = {name: int((mask == 0).sum()) for name, mask in masks.items()}
    return TrainingPlan(model.train(), meta["model"], plain_objective, epochs,
                        callbacks=[KeepPruned(masks)],
                        extra_metrics={"source_checkpoint": str(Path(source).resolve()),
                                       "pruned_weights": pruned})
