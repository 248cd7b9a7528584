"""`robust detect`: calibrate an adversarial-input detector on clean data, then measure it on
clean and attacked inputs (detection rates, false positives, ROC AUC, accuracy with reject)."""

import sys


def detect(cfg) -> list[dict]:
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from robustbench_cli.checks import flag, non_negative_int, positive_int
    from robustbench_cli.config import attack_configs, parse_eps
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.detectors.runner import calibration_split, run_detection
    from robustbench_cli.detectors.store import DetectionStore
    from robustbench_cli.errors import UserError
    from robustbench_cli.evaluation.runner import AttackSpec, check_protocol
    from robustbench_cli.evaluation.shard import launch
    from robustbench_cli.evaluation.target import load_target
    from robustbench_cli.provenance import write_run_record
    from robustbench_cli.reporting.detection import print_detection_results, write_detection_results
    from robustbench_cli.results import index_run
    from robustbench_cli.trackers.loggers import check_logger
    from robustbench_cli.trackers.results import track_results

    non_negative_int("seed", cfg.seed)
    check_logger(cfg.logger)  # a missing tracker package fails now, not after the sweep
    protocol = check_protocol(cfg.protocol)
    chosen = defense(cfg.defense.name)
    if chosen.wraps:
        raise UserError(f"robust detect examines a classifier as trained; defense={chosen.name} "
                        f"wraps it at eval time and is not supported here")
    positive_int("batch_size", cfg.batch_size)
    progress = flag("progress", cfg.progress)
    eps_list = parse_eps(cfg.eps)
    overrides = list(HydraConfig.get().overrides.task)
    # No fgsm_pred companion as in `robust eval`: label leaking concerns accuracy, not detection.
    specs = [AttackSpec(c.pop("name"), c) for c in attack_configs(cfg, overrides)]
    target = load_target(cfg, overrides, chosen.trained_with)

    detector_cfg = OmegaConf.to_container(cfg.detector, resolve=True)
    settings = {key: value for key, value in detector_cfg.items() if key != "name"}
    _, evaluation = calibration_split(len(target.test_set), detector_cfg.get("calibration_fraction"),
                                      cfg.seed)
    identity = {**target.identity(), "protocol": protocol, "detector": detector_cfg["name"],
                "detector_params": settings, "n": len(evaluation)}
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    store = DetectionStore(run_dir, identity)
    finished = store.load() if flag("resume", cfg.resume) else {}
    shard = launch(cfg.get("trainer"))  # from here on, one copy of this per process
    if finished and shard.is_main:
        print(f"resuming in {run_dir}: {len(finished)} finished row(s) kept")
    report = run_detection(target.model, target.test_set, detector_cfg, specs, eps_list,
                           head=target.meta["model"].get("head", "sce"), protocol=protocol,
                           seed=cfg.seed, batch_size=cfg.batch_size,
                           num_workers=target.dataset_cfg.num_workers, device=cfg.device,
                           progress=progress, finished=finished, shard=shard,
                           on_row=store.save if shard.is_main else None)
    rows = [{**row, **identity} for row in report.rows]
    if not shard.is_main:
        return rows  # the main process writes the results
    write_detection_results(run_dir, rows)
    _write_plots(run_dir, report, rows)
    write_run_record(run_dir, cfg, {**target.identity(), "trained_with": target.trained_with()})
    print_detection_results(rows)
    print(f"results in {run_dir}")
    track_results(cfg, run_dir, rows, "detect")
    index_run(cfg, run_dir)
    return rows


def _write_plots(run_dir, report, rows) -> None:
    from robustbench_cli.reporting.detection_plot import ROC_PNG, SCORE_CDF_PNG, plot_roc, plot_score_cdf

    first = rows[0]
    title = f"{first['detector']}: {first['model']} on {first['dataset']}, defense {first['defense']}"
    plot_score_cdf(report.clean_scores, report.successful_scores, report.threshold,
                   report.score_label, title, run_dir / SCORE_CDF_PNG)
    if report.roc_curves:
        plot_roc(report.roc_curves, title, run_dir / ROC_PNG)


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("detect", "detect", detect)


if __name__ == "__main__":
    sys.exit(main())
