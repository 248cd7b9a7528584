"""`robust eval`: attack a trained classifier at each eps and write accuracy tables."""

import sys


def evaluate(cfg) -> list[dict]:
    import json
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from robustbench_cli.checkpoints import (
        META_KEY,
        build_classifier,
        classifier_state,
        file_sha256,
        newest_train_checkpoint,
        read_checkpoint,
    )
    from robustbench_cli.config import (
        attack_configs,
        check_positive_int,
        check_seed,
        explicit_choices,
        load_group_option,
        parse_eps,
    )
    from robustbench_cli.data import RobustDataModule
    from robustbench_cli.errors import UserError
    from robustbench_cli.evaluation.runner import AttackSpec, evaluate
    from robustbench_cli.provenance import git_revision
    from robustbench_cli.reporting import (
        atomic_write_text,
        print_results,
        table_notes,
        write_results,
    )

    check_seed(cfg)
    check_positive_int(cfg.batch_size, "batch_size")
    eps_list = parse_eps(cfg.eps)
    overrides = list(HydraConfig.get().overrides.task)
    specs = [AttackSpec(c.pop("name"), c) for c in attack_configs(cfg, overrides)]
    worst_case = len(specs) > 1  # over the attacks the user listed (and fgsm_pred, if added)
    if any(s.name == "fgsm" and str(s.params.get("label")).lower() == "true" for s in specs) and \
            not any(s.name == "fgsm_pred" for s in specs):
        pred = load_group_option("attack", "fgsm_pred")  # label-leaking check, Kurakin et al.
        specs.append(AttackSpec(pred.pop("name"), pred))
    explicit = explicit_choices(overrides)

    if cfg.ckpt_path:
        ckpt = Path(cfg.ckpt_path)
    else:
        ckpt = newest_train_checkpoint(cfg.paths.output_dir, cfg.model.name, cfg.dataset.name)
        print(f"using the newest matching checkpoint: {ckpt}")
    content = read_checkpoint(ckpt)
    meta = content[META_KEY]
    trained = meta["model"]["name"]
    if "model" in explicit and explicit["model"] != trained:
        raise UserError(f"checkpoint {ckpt} holds model {trained}, not {explicit['model']} "
                        f"(drop model= or pass model={trained})")

    dataset_cfg = _dataset_config(cfg, meta, explicit, overrides)
    data = RobustDataModule(dataset_cfg, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    _check_fits(data.info.to_dict(), meta["info"], ckpt)
    test_set = data.test_dataset()
    if len(test_set) == 0:
        raise UserError(f"the {dataset_cfg.name} test split is empty")
    model = build_classifier(meta, classifier_state(content), ckpt)

    rows = evaluate(model, test_set, specs, eps_list, batch_size=cfg.batch_size,
                    num_workers=dataset_cfg.num_workers, device=cfg.device, progress=cfg.progress,
                    worst_case=worst_case)
    defense = dict(meta.get("defense", {"name": "none"}))
    identity = {"model": trained, "dataset": dataset_cfg.name, "defense": defense.pop("name"),
                "defense_params": defense,
                "checkpoint": str(ckpt.resolve()), "checkpoint_sha256": file_sha256(ckpt),
                "seed": cfg.seed}
    rows = [{**row, **identity} for row in rows]
    notes = table_notes(rows)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    write_results(run_dir, rows, notes)
    run_record = {**identity, "git_revision": git_revision(),
                  "config": OmegaConf.to_container(cfg, resolve=True),
                  "trained_with": {k: meta[k] for k in ("model", "dataset", "defense", "seed")
                                   if k in meta}}
    atomic_write_text(run_dir / "run.json", json.dumps(run_record, indent=2) + "\n")
    print_results(rows, notes)
    print(f"results in {run_dir}")
    return rows


def _dataset_config(cfg, meta: dict, explicit: dict, overrides: list[str]):
    """The dataset to evaluate on: the config's if the user chose one, else the checkpoint's
    (with the user's dataset.* overrides on top); a null root falls back to the trained one."""
    from omegaconf import OmegaConf

    if "dataset" in explicit:
        dataset = cfg.dataset.copy()
    else:
        dataset = OmegaConf.create(meta["dataset"])
        for override in overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key.startswith("dataset."):
                OmegaConf.update(dataset, key[len("dataset."):], OmegaConf.select(cfg, key))
    if dataset.get("root") is None and dataset.name == meta["dataset"].get("name"):
        dataset.root = meta["dataset"].get("root")
    return dataset


def _check_fits(info: dict, trained: dict, ckpt) -> None:
    from robustbench_cli.errors import UserError

    for key in ("num_classes", "channels", "height", "width"):
        if info[key] != trained[key]:
            raise UserError(f"checkpoint {ckpt} was trained with {key}={trained[key]} but the "
                            f"{info['name']} data has {key}={info[key]}")


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("eval", "eval", evaluate)


if __name__ == "__main__":
    sys.exit(main())
