"""`robust transfer`: craft adversarial examples on each source checkpoint, classify them with
each target checkpoint, and write the transfer-rate and error-rate matrices."""

import sys

# Attacks that craft nothing on a source: no perturbation, or a source of their own.
NOT_CRAFTED_ON_SOURCE = {
    "none": "attack=none crafts no adversarial examples: name an attack, e.g. attack=fgsm",
    "transfer": "attack=transfer crafts on its own source_ckpt: name the attack to run on each "
                "of sources=, e.g. attack=fgsm",
}


def checkpoint_list(key: str, value) -> list:
    """A non-empty list of checkpoint paths (one path alone is a list of one)."""
    from robustbench_cli.checks import checkpoint_paths, plain
    from robustbench_cli.errors import UserError

    if plain(value) in ([], None, ""):
        raise UserError(f"{key} is empty: name checkpoints of `robust train`, {key}=[CKPT,...]")
    return checkpoint_paths(key, value)


def transfer_specs(cfg, overrides: list[str]) -> list:
    """The attacks named (one, or a list), each with its config; an iterative attack runs
    every iteration (early_stop=false, as Kurakin et al. and attack=transfer do: examples
    pushed past the source's boundary transfer better) unless attack.early_stop is typed."""
    from robustbench_cli.config import attack_configs
    from robustbench_cli.errors import UserError

    configs = attack_configs(cfg, overrides)
    typed = any(o.split("=", 1)[0].lstrip("+") == "attack.early_stop" for o in overrides)
    for config in configs:
        if config["name"] in NOT_CRAFTED_ON_SOURCE:
            raise UserError(NOT_CRAFTED_ON_SOURCE[config["name"]])
        if "early_stop" in config and not typed:
            config["early_stop"] = False
    from robustbench_cli.evaluation.runner import AttackSpec  # torch: only for a run that goes on

    return [AttackSpec(c.pop("name"), c) for c in configs]


def transfer(cfg) -> list[dict]:
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from robustbench_cli.checks import flag, non_negative_int, positive_int
    from robustbench_cli.config import parse_eps
    from robustbench_cli.errors import UserError
    from robustbench_cli.evaluation.transfer_matrix import transfer_matrix
    from robustbench_cli.evaluation.transfer_models import load_transfer_inputs
    from robustbench_cli.provenance import write_run_record
    from robustbench_cli.reporting.transfer import matrix_markdown, write_transfer_report

    if cfg.ckpt_path:
        raise UserError("robust transfer takes sources=[CKPT,...] and targets=[CKPT,...], not ckpt_path")
    non_negative_int("seed", cfg.seed)
    positive_int("batch_size", cfg.batch_size)
    progress = flag("progress", cfg.progress)
    eps_list = parse_eps(cfg.eps)
    sources = checkpoint_list("sources", cfg.sources)
    targets = checkpoint_list("targets", cfg.targets)
    overrides = list(HydraConfig.get().overrides.task)
    specs = transfer_specs(cfg, overrides)
    inputs = load_transfer_inputs(cfg, overrides, sources, targets)

    rows = transfer_matrix(inputs.sources, inputs.targets, inputs.test_set, specs, eps_list,
                           batch_size=cfg.batch_size, num_workers=inputs.dataset_cfg.num_workers,
                           device=cfg.device, progress=progress)
    dataset, n = inputs.dataset_cfg.name, len(inputs.test_set)
    for row in rows:
        row["dataset"] = dataset
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    title = f"dataset {dataset}, n={n}"
    write_transfer_report(run_dir, rows, title)
    write_run_record(run_dir, cfg, {
        "command": "transfer", "dataset": dataset, "n": n, "eps": eps_list,
        "attacks": [{"name": s.name, **s.params} for s in specs],
        "sources": [c.identity() for c in inputs.sources],
        "targets": [c.identity() for c in inputs.targets]})
    print(matrix_markdown(rows, "transfer_rate", title))
    print(f"results in {run_dir}")
    return rows


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("transfer", "transfer", transfer)


if __name__ == "__main__":
    sys.exit(main())
