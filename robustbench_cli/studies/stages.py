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
from robustbench_cli.studies.spec import COMMANDS, REFERENCE, Stage

FINISHED = {"train": "metrics.json"}  # every other command's last file is run.json
STAGE_RECORD = "stage.json"
# config keys that do not change what a stage computes (where it is logged, what it also saves)
UNHASHED = ("progress", "resume", "results", "logger", "save_adversarial")
# A stage must name the checkpoints it starts from: one a command picks at run time (the
# newest under paths.output_dir) would not be part of its hash.
PINNED = {command: "ckpt_path" for command in COMMANDS if command not in ("train", "transfer")}
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


def command_words(command: str) -> tuple[str, list[str]]:
    """(config name, the overrides the command adds): `analyze gradients` composes the analyze
    config with analysis=gradients."""
    name, *rest = command.split()
    return name, [f"analysis={rest[0]}"] if rest else []


def stage_hash(command: str, overrides: list[str]) -> str:
    """The hash that names a stage's folder (see the module docstring). Files are hashed by
    content, not path, so moving the outputs folder keeps every stage cached."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from robustbench_cli.commands.hydra_app import one_line

    try:
        config_name, implied = command_words(command)
        with initialize_config_module("robustbench_cli.conf", version_base=None):
            cfg = compose(config_name, overrides=[*overrides, *implied])
        config = OmegaConf.to_container(cfg, resolve=True)
        if "attack" in config:  # attack=[a,b] composes into one merged node: hash each attack's own
            from robustbench_cli.config import attack_configs

            config["attack"] = attack_configs(cfg, [*overrides, *implied])
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise UserError(one_line(error)) from None
    _check_pinned(command, config)
    for key in UNHASHED:
        config.pop(key, None)
    config.get("paths", {}).pop("output_dir", None)
    config.get("dataset", {}).pop("num_workers", None)
    identity = {"command": command, "config": _by_content(_without_nulls(config), input_hashes(overrides))}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_pinned(command: str, config: dict) -> None:
    from robustbench_cli.defenses.registry import defense

    key = PINNED.get(command)
    if command == "train":
        classifier_key = defense(config["defense"]["name"]).classifier_key
        key = classifier_key and f"defense.{classifier_key}"
    if key and not _get(config, key):
        raise UserError(f"{command} needs {key}=${{stages.NAME.ckpt}} (or a path): a checkpoint "
                        "picked at run time (the newest) cannot be cached")


def _get(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _without_nulls(value):
    """The config without its null keys: a key added to the tool with a null default (a feature
    left off) must not change the hash of every stage that ran before it existed."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _by_content(value, hashes: dict[str, str]):
    """`value` with every path of a hashed file replaced by its SHA-256 (lists too)."""
    if isinstance(value, dict):
        return {k: _by_content(v, hashes) for k, v in value.items()}
    if isinstance(value, list):
        return [_by_content(v, hashes) for v in value]
    if isinstance(value, str) and value and Path(value).is_file():
        return f"sha256:{hashes.get(str(Path(value).resolve()), value)}"
    return value


def input_hashes(overrides: list[str]) -> dict[str, str]:
    """SHA-256 of every existing file an override names (checkpoints, lists of them)."""
    from robustbench_cli.provenance import file_sha256

    hashes = {}
    for override in overrides:
        _, _, value = override.partition("=")
        for item in value.strip("[]").split(","):
            path = Path(item.strip().strip("'\""))
            if item.strip() and path.is_file():
                hashes[str(path.resolve())] = file_sha256(path)
    return hashes


def is_finished(command: str, folder: Path) -> bool:
    return (folder / FINISHED.get(command, "run.json")).is_file()


def resume_overrides(command: str, folder: Path, overrides: list[str]) -> list[str] | None:
    """What makes the command continue an interrupted stage in its folder (None: start over)."""
    if command in ("eval", "detect") and (folder / "results.json").is_file():
        return ["resume=true"]
    last = folder / "checkpoints" / "last.ckpt"
    if command == "train" and last.is_file() and not any(o.startswith("ckpt_path=") for o in overrides):
        return [f"ckpt_path={last}"]
    return None


def run_stage(stage: Stage, overrides: list[str], folder: Path, output_dir: Path) -> Outcome:
    """Run (or resume) the stage's command into `folder`, holding its lock (two studies sharing
    a stage never run it at once); a failure stops the study."""
    import fcntl

    from robustbench_cli.provenance import git_revision

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"stage {stage.name} is running in another process ({folder})") from None
        if is_finished(stage.command, folder):  # the other process finished it meanwhile
            return Outcome(stage, folder, "cached", overrides=overrides)
        return _run_locked(stage, overrides, folder, output_dir, git_revision())


def _run_locked(stage: Stage, overrides: list[str], folder: Path, output_dir: Path, revision) -> Outcome:
    resume = resume_overrides(stage.command, folder, overrides)
    command = [sys.executable, "-m", "robustbench_cli.cli", *stage.command.split(), *overrides,
               *(resume or []), f"hydra.run.dir={folder}", f"paths.output_dir={output_dir}"]
    status = "resumed" if resume else "ran"
    print(f"stage {stage.name} ({stage.command}): {'resuming' if resume else 'running'} in {folder}",
          flush=True)
    started = time.perf_counter()
    code = subprocess.run(command).returncode
    seconds = time.perf_counter() - started
    if code != 0 or not is_finished(stage.command, folder):
        log = folder / f"{stage.command.split()[0]}.log"
        raise StageFailed(Outcome(stage, folder, "failed", seconds, overrides),
                          f"stage {stage.name} failed (exit {code}); its log: {log}")
    outcome = Outcome(stage, folder, status, seconds, overrides)
    record = {**outcome.record(), "stage": stage.name, "git_revision": revision,
              "inputs": input_hashes(overrides), "outputs": outputs(outcome)}
    from robustbench_cli.reporting import atomic_write_text

    atomic_write_text(folder / STAGE_RECORD, json.dumps(record, indent=2) + "\n")
    return outcome


class StageFailed(UserError):
    def __init__(self, outcome: Outcome, message: str):
        super().__init__(message)
        self.outcome = outcome


def stage_folder(study_out: Path, stage: Stage, overrides: list[str]) -> Path:
    return study_out / f"{stage.name}-{stage_hash(stage.command, overrides)[:HASH_CHARS]}"


def recorded_revision(folder: Path) -> str | None:
    """The code revision a finished stage ran with (its stage.json), if recorded."""
    try:
        return json.loads((folder / STAGE_RECORD).read_text()).get("git_revision")
    except (OSError, ValueError):
        return None
