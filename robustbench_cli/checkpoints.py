"""Checkpoints: tensor-only loading, the metadata that says what a checkpoint holds, lookup.

A `robust train` checkpoint is Lightning's .ckpt with an extra "robust" entry (plain
dicts: model config, dataset config and shape, defense). It is always read with
`torch.load(weights_only=True)`, which refuses pickled code instead of running it.
"""

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import torch

from robustbench_cli.errors import UserError
from robustbench_cli.provenance import file_sha256  # noqa: F401 - checkpoints.file_sha256 for callers

META_KEY = "robust"
MODEL_PREFIX = "model."  # the classifier's attribute name inside the LightningModule


def weights_sha256(state_dict: dict) -> str:
    """A hash of the classifier's weights (names and raw bytes), recorded in the checkpoint so
    that a corrupted or altered file is noticed when it is loaded."""
    digest = hashlib.sha256()
    for key in sorted(k for k in state_dict if k.startswith(MODEL_PREFIX)):
        tensor = state_dict[key].detach().cpu().contiguous().reshape(-1)
        digest.update(key.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_checkpoint(path) -> dict:
    """The checkpoint's contents, loaded tensors-only; any refusal is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [ln.strip() for ln in str(error).splitlines() if "Unsupported" in ln]
        reason = lines[0] if lines else "it holds pickled objects"
        raise UserError(f"refusing to load {path}: it is not a tensor-only file ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:  # KeyError: not a torch file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(content, dict) or META_KEY not in content or "state_dict" not in content:
        raise UserError(f"{path} is not a `robust train` checkpoint (no '{META_KEY}' metadata)")
    recorded = content[META_KEY].get("weights_sha256")
    if recorded and recorded != weights_sha256(content["state_dict"]):
        raise UserError(f"checkpoint {path} is corrupted or was altered: its weights do not match "
                        "the hash recorded when it was saved")
    return content


def classifier_state(content: dict) -> dict:
    """The classifier's weights, without the LightningModule's attribute prefix."""
    return {k[len(MODEL_PREFIX):]: v for k, v in content["state_dict"].items()
            if k.startswith(MODEL_PREFIX)}


def build_classifier(meta: dict, state: dict, path) -> torch.nn.Module:
    from robustbench_cli.data import DatasetInfo
    from robustbench_cli.models import build_model

    if "model" not in meta:
        raise UserError(f"{path} is not a classifier checkpoint (a denoiser's? pass it as defense.ckpt)")
    info = DatasetInfo(**meta["info"])
    model = build_model(meta["model"], info)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"checkpoint {path} does not fit model {meta['model'].get('name')}: "
                        f"{str(error).splitlines()[0]}") from None
    return model.eval()


def load_classifier(path) -> torch.nn.Module:
    """The classifier of a `robust train` checkpoint, eval mode, [0, 1] inputs -> logits."""
    content = read_checkpoint(path)
    return build_classifier(content[META_KEY], classifier_state(content), path)


def newest_train_checkpoint(output_dir, model: str, dataset: str, defense: str | None = None) -> Path:
    """The newest finished `robust train` run under output_dir for this model and dataset
    (and training defense, when one is named)."""
    runs = []
    for metrics_file in Path(output_dir).glob("train*/**/metrics.json"):
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, ValueError):
            continue
        checkpoint = metrics_file.parent / metrics.get("checkpoint", "")  # relative to the run
        matches = metrics.get("model") == model and metrics.get("dataset") == dataset and (
            defense is None or metrics.get("defense") == defense)
        if matches and checkpoint.is_file():
            runs.append((metrics_file.stat().st_mtime, checkpoint))
    if not runs:
        which = f"model={model} dataset={dataset}" + (f" defense={defense}" if defense else "")
        raise UserError(f"no `robust train` checkpoint for {which} under {output_dir}: "
                        "train one first or pass ckpt_path=...")
    return max(runs)[1]


def newest_unfinished_run(output_dir, model: str, dataset: str, defense: str) -> Path:
    """The newest `robust train` run folder for this model, dataset and defense that has a
    last.ckpt but no metrics.json: one that was interrupted."""
    from omegaconf import OmegaConf

    runs = []
    for last in Path(output_dir).glob("train*/**/checkpoints/last.ckpt"):
        run = last.parent.parent
        config_file = run / ".hydra" / "config.yaml"
        if (run / "metrics.json").exists() or not config_file.is_file():
            continue
        config = OmegaConf.load(config_file)
        if (config.model.name, config.dataset.name, config.defense.name) == (model, dataset, defense):
            runs.append((last.stat().st_mtime, run))
    if not runs:
        raise UserError(f"resume=true: no interrupted `robust train` run of model={model} "
                        f"dataset={dataset} defense={defense} under {output_dir}")
    return max(runs)[1]


def resume_point(cfg, run_dir) -> tuple[Path | None, Path]:
    """(checkpoint to continue from or None, folder to write into): the one resume rule of
    every fit, as eval's and detect's. `ckpt_path=LAST` continues that checkpoint in this
    run's folder; `resume=true` continues the interrupted run in this run's folder when it
    holds one (`hydra.run.dir=DIR`), else the newest interrupted run of the same model,
    dataset and defense under paths.output_dir, in its own folder."""
    run_dir = Path(run_dir)
    if cfg.ckpt_path:
        return Path(cfg.ckpt_path), run_dir
    if not cfg.resume:
        return None, run_dir
    last = run_dir / "checkpoints" / "last.ckpt"
    if (run_dir / "metrics.json").exists():
        raise UserError(f"resume=true: the run in {run_dir} has finished (its metrics.json exists)")
    if not last.is_file():
        run_dir = newest_unfinished_run(cfg.paths.output_dir, cfg.model.name, cfg.dataset.name,
                                        cfg.defense.name).resolve()
        last = run_dir / "checkpoints" / "last.ckpt"
    print(f"resuming {run_dir} from its last checkpoint")
    return last, run_dir


SHAPE_KEYS = ("num_classes", "channels", "height", "width")


def check_fits(trained: dict, data: dict, what: str, keys=SHAPE_KEYS) -> None:
    """`what` (a checkpoint, named in the message) was trained on data of this shape and
    class count: `trained` and `data` are dataset descriptions (DatasetInfo.to_dict())."""
    for key in keys:
        if trained[key] != data[key]:
            raise UserError(f"{what} was trained with {key}={trained[key]}, the "
                            f"{data.get('name', 'evaluated')} data has {key}={data[key]}")


def check_resumable(path, model: str, info: dict) -> Path:
    """A checkpoint that training can continue from: ours, same model and data shape."""
    meta = read_checkpoint(path)[META_KEY]
    trained = meta["model"]["name"]
    if trained != model:
        raise UserError(f"cannot continue from {path}: it holds model {trained}, not {model}")
    check_fits(meta["info"], info, f"cannot continue from {path}: it")
    return Path(path)
