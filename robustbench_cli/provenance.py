"""What a run records about itself so its results can be traced: code revision, config,
file hashes. No torch: studies hash checkpoints before anything heavy loads."""

import hashlib
import subprocess
from pathlib import Path

import robustbench_cli


def git_revision() -> str:
    """The tool's git commit (with '+dirty' for local changes), or its version if not a checkout."""
    source = Path(robustbench_cli.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"robustbench_cli {robustbench_cli.__version__}"
    return commit + ("+dirty" if dirty else "")


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_run_record(run_dir, cfg, record: dict) -> None:
    """run.json in `run_dir`: the command that wrote it (the results index reads only eval's
    and detect's), `record` (identity and results summary), the code revision and the
    resolved config, written atomically."""
    import json

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from robustbench_cli.reporting import atomic_write_text

    command = HydraConfig.get().job.name if HydraConfig.initialized() else None
    full = {"command": command, **record, "git_revision": git_revision(),
            "config": OmegaConf.to_container(cfg, resolve=True)}
    atomic_write_text(Path(run_dir) / "run.json", json.dumps(full, indent=2, default=str) + "\n")
