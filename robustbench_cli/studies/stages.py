"""Running a study's stages: each one is the `robust` command it names, in a folder of its own
named by what it computes, so a finished stage is found again instead of rerun.

A stage's identity is its command, its config as Hydra composes and resolves it (the same
config the command will run, minus keys that do not change results: progress bars, resume,
the output and index locations) and the SHA-256 of every file its overrides name (the
checkpoints of the stages it uses). Its folder is STUDY_DIR/STAGE-HASH. A stage is finished
when its command wrote its last file there (train: metrics.json; eval, detect, transfer:
run.json); a folder without it is an interrupted stage, which resumes in place.
"""

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from robustbench_cli.errors import UserError
from robustbench_cli.studies.spec import REFERENCE, Stage

FINISHED = {"train": "metrics.json", "eval": "run.json", "detect": "run.json", "transfer": "run.json"}
STAGE_RECORD = "stage.json"
UNHASHED = ("progress", "resume", "results")  # config keys that do not change what a stage computes
HASH_CHARS = 12


@dataclass
class Outcome:
    """What became of a stage in this study run."""

    stage: Stage
    dir: Path
    status: str  # cached | ran | resumed | failed | planned
    seconds: float = 0.0
    overrides: list[str] | None = None

    def record(self) -> dict:
        return {"command": self.stage.command, "status": self.status, "dir": str(self.dir),
                "seconds": round(self.seconds, 3), "overrides": self.overrides}


def outputs(outcome: Outcome) -> dict[str, str]:
    """What later stages can use: its folder and, for a train stage, its best checkpoint."""
    found = {"dir": str(outcome.dir)}
    metrics = outcome.dir / "metrics.json"
    if outcome.stage.command == "train" and metrics.is_file():
        found["ckpt"] = str(outcome.dir / json.loads(metrics.read_text())["checkpoint"])
    return found


def fill_references(stage: Stage, done: dict[str, dict]) -> list[str]:
    """The stage's overrides with ${stages.NAME.ckpt|dir} replaced by those stages' outputs."""
    def value(match) -> str:
        name, key = match.groups()
        if name not in done or key not in done[name]:
            raise UserError(f"stage {stage.name}: ${{stages.{name}.{key}}} is not available "
                            f"(stage {name} has not finished)")
        return done[name][key]

    return [REFERENCE.sub(value, override) for override in stage.overrides]


def stage_hash(command: str, overrides: list[str]) -> str:
    """The hash that names a stage's folder (see the module docstring)."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from robustbench_cli.commands.hydra_app import one_line

    try:
        with initialize_config_module("robustbench_cli.conf", version_base=None):
            cfg = compose(command, overrides=overrides)
        config = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise UserError(one_line(error)) from None
    for key in UNHASHED:
        config.pop(key, None)
    config.get("paths", {}).pop("output_dir", None)
    identity = {"command": command, "config": config, "inputs": input_hashes(overrides)}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def input_hashes(overrides: list[str]) -> dict[str, str]:
    """SHA-256 of every existing file an override names (checkpoints, lists of them)."""
    from robustbench_cli.checkpoints import file_sha256

    hashes = {}
    for override in overrides:
        _, _, value = override.partition("=")
        for item in value.strip("[]").split(","):
            path = Path(item.strip().strip("'\""))
            if item.strip() and path.is_file():
                hashes[str(path.resolve())] = file_sha256(path)
    return hashes


def is_finished(command: str, folder: Path) -> bool:
    return (folder / FINISHED[command]).is_file()


def resume_overrides(command: str, folder: Path, overrides: list[str]) -> list[str] | None:
    """What makes the command continue an interrupted stage in its folder (None: start over)."""
    if command in ("eval", "detect") and (folder / "results.json").is_file():
        return ["resume=true"]
    last = folder / "checkpoints" / "last.ckpt"
    if command == "train" and last.is_file() and not any(o.startswith("ckpt_path=") for o in overrides):
        return [f"ckpt_path={last}"]
    return None


def run_stage(stage: Stage, overrides: list[str], folder: Path, output_dir: Path) -> Outcome:
    """Run (or resume) the stage's command into `folder`; a failure stops the study."""
    resume = resume_overrides(stage.command, folder, overrides) if folder.is_dir() else None
    command = [sys.executable, "-m", "robustbench_cli.cli", stage.command, *overrides,
               *(resume or []), f"hydra.run.dir={folder}", f"paths.output_dir={output_dir}"]
    status = "resumed" if resume else "ran"
    print(f"stage {stage.name} ({stage.command}): {'resuming' if resume else 'running'} in {folder}",
          flush=True)
    started = time.perf_counter()
    code = subprocess.run(command).returncode
    seconds = time.perf_counter() - started
    if code != 0 or not is_finished(stage.command, folder):
        log = folder / f"{stage.command}.log"
        raise StageFailed(Outcome(stage, folder, "failed", seconds, overrides),
                          f"stage {stage.name} failed (exit {code}); its log: {log}")
    outcome = Outcome(stage, folder, status, seconds, overrides)
    record = {**outcome.record(), "stage": stage.name, "inputs": input_hashes(overrides),
              "outputs": outputs(outcome)}
    from robustbench_cli.reporting import atomic_write_text

    atomic_write_text(folder / STAGE_RECORD, json.dumps(record, indent=2) + "\n")
    return outcome


class StageFailed(UserError):
    def __init__(self, outcome: Outcome, message: str):
        super().__init__(message)
        self.outcome = outcome


def stage_folder(study_dir: Path, stage: Stage, overrides: list[str]) -> Path:
    return study_dir / f"{stage.name}-{stage_hash(stage.command, overrides)[:HASH_CHARS]}"
