"""`robust` dispatcher: `robust SUBCOMMAND [hydra overrides]` runs that subcommand's Hydra app.

Hydra has no subcommands, so this reads the first argument, points `sys.argv[0]` at the
subcommand's own script and hands the rest to its app. Lightning's DDP relaunches
`sys.argv[0]` for ranks > 0, so they land in the same subcommand. No torch import here:
`robust --help` answers fast.
"""

import importlib
import sys

COMMANDS = {
    "train": "train a classifier (model, dataset, defense, trainer groups), then test it",
    "eval": "attack a trained classifier over eps values and write accuracy tables",
    "detect": "measure an adversarial-input detector (confidence ratio, mutation) under attack",
    "aggregate": "rebuild summary.csv/md/png of a multirun folder: robust aggregate SWEEP_DIR",
    "analyze": "layer-wise perturbation of adversarial, noisy and denoised inputs: robust analyze layers ...",
    "transfer": "transfer and error-rate matrices: robust transfer sources=[CKPT,...] targets=[CKPT,...]",
    "study": "run a staged study (experiments/studies/NAME.yaml), reusing finished stages: robust study NAME",
    "results": "query the results index: robust results [FIELD=VALUE...] [rows=F cols=F] [format=md|csv]",
}

USAGE = """usage: robust COMMAND [overrides...]

Config-driven adversarial-robustness experiments for image classifiers.

commands:
{commands}

Each command takes Hydra overrides (key=value, group=option, -m for sweeps);
`robust COMMAND --help` shows its config groups and options.

examples:
  robust train model=cnn dataset=fashion_mnist dataset.root=/usr/share/datasets/fashion-mnist
  robust eval attack=pgd_linf eps=0.03
  robust eval -m attack=fgsm,pgd_linf eps=0,0.01,0.03
"""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = "\n".join(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items())
    return USAGE.format(commands=lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"robust: error: unknown command '{name}' (choose from: {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 2
    command = importlib.import_module(f"robustbench_cli.commands.{name}")
    sys.argv = [command.__file__, *args[1:]]
    return command.main()


if __name__ == "__main__":
    sys.exit(main())
