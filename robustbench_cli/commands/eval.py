"""`robust eval`: attack a trained classifier at each eps and write accuracy tables."""

import sys


def attack_specs(cfg, overrides: list[str]) -> tuple[list, bool]:
    """The attacks to run: those named, plus fgsm_pred beside a true-label fgsm (label leaking,
    Kurakin et al.; with the fgsm's other parameters, its EOT and BPDA); and whether several
    were named (then a worst-case row is due)."""
    from robustbench_cli.config import attack_configs, load_group_option
    from robustbench_cli.evaluation.runner import AttackSpec

    configs = attack_configs(cfg, overrides)
    specs = [AttackSpec(c.pop("name"), c) for c in configs]
    names = {s.name for s in specs}
    fgsm = next((s for s in specs if s.name == "fgsm" and str(s.params.get("label")).lower() == "true"),
                None)
    if "fgsm_pred" not in names and fgsm is not None:
        pred = load_group_option("attack", "fgsm_pred")
        pred.update({k: v for k, v in fgsm.params.items() if k != "label"})
        specs.append(AttackSpec(pred.pop("name"), pred))
    return specs, len(names) > 1


def evaluate(cfg) -> list[dict]:
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from robustbench_cli.checks import flag, non_negative_int, positive_int
    from robustbench_cli.config import parse_eps
    from robustbench_cli.defenses.hgd.checkpoint import refuse_denoiser
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.errors import UserError
    from robustbench_cli.evaluation.adversarial_sets import check_mode, write_set
    from robustbench_cli.evaluation.curve import write_minimal_eps
    from robustbench_cli.evaluation.row_store import RowStore
    from robustbench_cli.evaluation.runner import check_curve, check_protocol, check_top5, evaluate
    from robustbench_cli.evaluation.shard import NEAR_TIE, launch
    from robustbench_cli.evaluation.target import load_target
    from robustbench_cli.models.precision import run_precision
    from robustbench_cli.provenance import write_run_record
    from robustbench_cli.reporting import print_results
    from robustbench_cli.reporting.notes import sanity_failures
    from robustbench_cli.reporting.points import row_outcomes
    from robustbench_cli.results import index_run
    from robustbench_cli.trackers.loggers import check_logger
    from robustbench_cli.trackers.results import track_results

    non_negative_int("seed", cfg.seed)
    check_logger(cfg.logger)  # a missing tracker package fails now, not after the sweep
    protocol, top5 = check_protocol(cfg.protocol), check_top5(cfg.top5)
    check_curve(cfg.curve, protocol, top5)  # before any model loads
    sanity = flag("sanity", cfg.sanity)
    progress = flag("progress", cfg.progress)
    precision = run_precision(cfg)
    keep = check_mode(cfg.save_adversarial)
    if keep != "false" and cfg.curve == "minimal":
        raise UserError("save_adversarial needs the row-by-row sweep (curve=null): curve=minimal "
                        "attacks each point at a few of the eps values only")
    positive_int("batch_size", cfg.batch_size)
    eps_list = parse_eps(cfg.eps)
    overrides = list(HydraConfig.get().overrides.task)
    specs, several = attack_specs(cfg, overrides)
    chosen = defense(cfg.defense.name)
    refuse_denoiser(cfg.ckpt_path, "ckpt_path")
    target = load_target(cfg, overrides, chosen.trained_with)
    view = chosen.eval_view(cfg, target, specs, overrides)  # the classifier, or a defense around it

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    identity = {**target.identity(), **view.identity, "n": len(target.test_set), "protocol": protocol,
                **({"precision": precision} if precision != "32" else {})}
    store = RowStore(run_dir, identity)
    finished = store.load() if cfg.resume else {}
    shard = launch(cfg.get("trainer"))  # from here on, one copy of this per process
    if finished and shard.is_main:
        print(f"resuming in {run_dir}: {len(finished)} finished row(s) kept")
    clean = {}

    def save(finished):
        finished = view.annotate(finished)
        store.save(finished)
        if finished.images is not None:
            write_set(run_dir, {**finished.row, **identity}, finished.images, keep, target.test_set)
            finished.images = None  # written: free the memory

    rows = evaluate(view.model, target.test_set, view.specs, eps_list, protocol=protocol,
                    top5=top5, sanity=sanity, batch_size=cfg.batch_size,
                    num_workers=target.dataset_cfg.num_workers, device=cfg.device,
                    progress=progress, worst_case=several, curve=cfg.curve,
                    finished=finished, shard=shard, precision=precision,
                    keep_images=keep != "false",
                    on_clean=lambda outcomes: clean.update(near_ties=outcomes.near_ties),
                    on_row=save if shard.is_main else None)
    if not shard.is_main:
        return rows  # the main process writes the results
    rows = store.rows
    notes = store.notes()
    write_minimal_eps(run_dir, rows, row_outcomes(rows, store.points))
    write_run_record(run_dir, cfg, {**identity, "trained_with": target.trained_with(),
                                    "sanity": {"checked": sanity, "failed": sanity_failures(rows)},
                                    "processes": shard.world_size, **clean})
    print_results(rows, notes)
    if shard.world_size > 1 and clean["near_ties"]:
        print(f"{clean['near_ties']} point(s) have clean top-2 logits within {NEAR_TIE:g}: float "
              f"reduction order over {shard.world_size} processes may change their outcomes")
    view.report(rows)
    print(f"results in {run_dir}")
    track_results(cfg, run_dir, rows, "eval")
    index_run(cfg, run_dir)
    return rows


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("eval", "eval", evaluate)


if __name__ == "__main__":
    sys.exit(main())
