"""`robust analyze layers`: how a perturbation grows along a classifier's layers, for
adversarial, Gaussian-noise and denoised inputs (Liao et al. 2018, Figure 5).
`robust analyze gradients`: how large a classifier's input gradients are (what defensive
distillation shrinks, Papernot et al. 2016)."""

import sys

ANALYSES = ("layers", "gradients")
USAGE = ("usage: robust analyze layers ckpt_path=CLASSIFIER [defense.ckpt=[DENOISER,...]] "
         "[attack=fgsm] [eps=8/255] [dataset.limit_test=N]\n"
         "       robust analyze gradients ckpt_path=CLASSIFIER [defense=input_noise|bit_depth|hgd "
         "defense.ckpt=DENOISER] [dataset.limit_test=N]")


def _denoiser_labels(metas: list[dict]) -> list[str]:
    """"<guide>-denoised" per denoiser, numbered where two share a guide."""
    labels = []
    for meta in metas:
        label = f"{meta['guide']['name']}-denoised"
        labels.append(label if label not in labels else f"{label} #{len(labels) + 1}")
    return labels


def analyze_layers(cfg, overrides: list[str], run_dir) -> dict:
    """Compute and write the layer table; returns {"layers": [...], "levels": {kind: [...]}}."""
    from pathlib import Path

    from rich.console import Console

    from robustbench_cli import attacks
    from robustbench_cli.checks import checkpoint_paths, non_negative_int, positive_int
    from robustbench_cli.config import attack_configs, parse_eps
    from robustbench_cli.defenses.hgd.checkpoint import check_shape, load_denoiser, refuse_denoiser
    from robustbench_cli.defenses.hgd.layer_report import layer_table, write_layer_report
    from robustbench_cli.defenses.hgd.perturbation import perturbation_levels
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.errors import UserError
    from robustbench_cli.evaluation.runner import resolve_device
    from robustbench_cli.evaluation.target import load_target
    from robustbench_cli.provenance import write_run_record

    non_negative_int("seed", cfg.seed)
    positive_int("batch_size", cfg.batch_size)
    eps = parse_eps(cfg.eps)
    if len(eps) != 1:
        raise UserError(f"robust analyze layers takes one eps, got {len(eps)}")
    configs = attack_configs(cfg, overrides)
    if len(configs) != 1:
        raise UserError("robust analyze layers takes one attack")
    refuse_denoiser(cfg.ckpt_path, "ckpt_path")
    chosen = defense(cfg.defense.name)
    if chosen.wraps and chosen.name != "hgd":
        raise UserError(f"robust analyze layers measures the classifier and HGD denoisers "
                        f"(defense.ckpt); defense={chosen.name} is not measured there: "
                        f"robust analyze gradients measures what it does to the gradients")
    target = load_target(cfg, overrides, chosen.trained_with)
    paths = [] if not cfg.defense.get("ckpt") else checkpoint_paths("defense.ckpt", cfg.defense.ckpt)
    loaded = [load_denoiser(path) for path in paths]
    for path, (_, meta) in zip(paths, loaded):
        check_shape(meta, target.meta["info"], path)
    denoisers = dict(zip(_denoiser_labels([meta for _, meta in loaded]), (d for d, _ in loaded)))
    config = configs[0]
    name = config.pop("name")
    attack = attacks.build(name, target.model, eps=eps[0], **config)
    layers, levels = perturbation_levels(target.model, denoisers, attack, target.test_set, eps[0],
                                         cfg.batch_size, resolve_device(cfg.device))
    run_dir = Path(run_dir)
    title = (f"Perturbation level by layer: {target.meta['model']['name']} on {target.dataset_cfg.name}, "
             f"{name} eps={eps[0]:.4g}, n={len(target.test_set)}")
    write_layer_report(run_dir, layers, levels, title)
    write_run_record(run_dir, cfg, {
        **target.identity(), "attack": name, "eps": eps[0], "n": len(target.test_set),
        "denoisers": {label: str(Path(p).resolve()) for label, p in zip(denoisers, paths)}})
    Console().print(layer_table(layers, levels, title))
    print(f"results in {run_dir}")
    return {"layers": layers, "levels": levels}


def analyze_gradients(cfg, overrides: list[str], run_dir) -> list[dict]:
    """One row of input-gradient amplitudes (evaluation/gradients.py) in results.json."""
    import json
    from pathlib import Path

    from robustbench_cli.checks import non_negative_int, positive_int
    from robustbench_cli.defenses import trained_temperature
    from robustbench_cli.defenses.hgd.checkpoint import refuse_denoiser
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.evaluation.gradients import gradient_amplitudes
    from robustbench_cli.evaluation.runner import resolve_device
    from robustbench_cli.evaluation.target import load_target
    from robustbench_cli.provenance import write_run_record
    from robustbench_cli.reporting import atomic_write_text

    non_negative_int("seed", cfg.seed)
    positive_int("batch_size", cfg.batch_size)
    refuse_denoiser(cfg.ckpt_path, "ckpt_path")
    chosen = defense(cfg.defense.name)
    if chosen.name == "hgd" and not cfg.defense.get("ckpt"):
        chosen = defense("none")  # the config's default group, with no denoiser named
    target = load_target(cfg, overrides, chosen.trained_with)
    # The gradients an attack would see: those of the defended model (eval-time defenses:
    # bit_depth's are zero almost everywhere, input_noise's one noise draw's).
    view = chosen.eval_view(cfg, target, [], overrides)
    amplitudes = gradient_amplitudes(view.model, target.test_set, cfg.batch_size,
                                     resolve_device(cfg.device))
    row = {**amplitudes, **target.identity(), **view.identity,
           "temperature": trained_temperature(target.meta)}
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "results.json", json.dumps([row], indent=2) + "\n")
    write_run_record(run_dir, cfg, target.identity())
    print(f"input gradients of {target.meta['model']['name']} (trained at T={row['temperature']}) on "
          f"{amplitudes['n']} points: mean |d loss/dx| {amplitudes['loss_grad_mean_abs']:.3e}, "
          f"mean |d p_y/dx| {amplitudes['prob_grad_mean_abs']:.3e}, median L1 of d loss/dx "
          f"{amplitudes['loss_grad_median_l1']:.3e}, zero loss gradient on "
          f"{100 * amplitudes['zero_grad_fraction']:.1f}% of points")
    print(f"results in {run_dir}")
    return [row]


def analyze(cfg) -> dict:
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    chosen = analyze_gradients if cfg.analysis == "gradients" else analyze_layers
    return chosen(cfg, list(hydra.overrides.task), hydra.runtime.output_dir)


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    args = sys.argv[1:]
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not args or args[0] not in ANALYSES:
        print(f"robust analyze: error: name the analysis ({', '.join(ANALYSES)}); {USAGE}",
              file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0], *args[1:], f"analysis={args[0]}"]
    return run("analyze", "analyze", analyze)


if __name__ == "__main__":
    sys.exit(main())
