"""Hydra's launcher plugins, the optional `launchers` extra: `hydra/launcher=joblib`,
`submitit_local` or `submitit_slurm` on a -m sweep. Their configs, with this tool's
defaults, are in conf/hydra/launcher/."""

import importlib.util

PLUGINS = {  # hydra/launcher option -> the module that provides it
    "joblib": "hydra_plugins.hydra_joblib_launcher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
}
EXTRA = "pip install 'robustbench_cli[launchers]'"


def missing_launcher(args: list[str]) -> str | None:
    """The one-line error for a `hydra/launcher=NAME` override whose plugin is not installed."""
    for arg in args:
        key, _, name = arg.partition("=")
        if key.lstrip("+") == "hydra/launcher" and name in PLUGINS and not _installed(PLUGINS[name]):
            return f"hydra/launcher={name} needs the launchers extra: {EXTRA}"
    return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # not even the hydra_plugins namespace
        return False
