"""Denoiser checkpoints, and telling them apart from classifier checkpoints.

A denoiser checkpoint is a tensor-only Lightning checkpoint like a classifier's; its
"robust" entry has kind "hgd_denoiser", the denoiser config, the input shape (info), the
guide, and the guiding classifier's path and SHA-256. The classifier's weights are not in
it: at test time the denoiser goes in front of whichever classifier `ckpt_path` names.
"""

import torch

from robustbench_cli.checkpoints import META_KEY, build_classifier, classifier_state, read_checkpoint
from robustbench_cli.checks import checkpoint_paths
from robustbench_cli.defenses.hgd.networks import build_denoiser
from robustbench_cli.errors import UserError

KIND = "hgd_denoiser"
DENOISER_PREFIX = "denoiser."  # the denoiser's attribute name in the LightningModule


def is_denoiser(content: dict) -> bool:
    return content[META_KEY].get("kind") == KIND


def read_classifier(path, what: str) -> tuple[torch.nn.Module, dict]:
    """(classifier in eval mode, its metadata) from a classifier checkpoint; a denoiser
    checkpoint given where a classifier belongs is a one-line error naming the option."""
    content = read_checkpoint(path)
    if is_denoiser(content):
        raise UserError(f"{what}={path} is an HGD denoiser checkpoint, not a classifier "
                        "(denoisers go in defense.ckpt)")
    meta = content[META_KEY]
    return build_classifier(meta, classifier_state(content), path), meta


def refuse_denoiser(paths, what: str) -> None:
    """One-line error when `paths` (one path or a list) hold a denoiser where a classifier
    is expected."""
    if not paths:
        return
    for path in checkpoint_paths(what, paths):
        if path.is_file() and is_denoiser(read_checkpoint(path)):
            raise UserError(f"{what}={path} is an HGD denoiser checkpoint, not a classifier "
                            "(pass it as defense.ckpt with defense=hgd, the classifier as ckpt_path)")


def load_denoiser(path) -> tuple[torch.nn.Module, dict]:
    """(denoiser in eval mode, its metadata)."""
    content = read_checkpoint(path)
    meta = content[META_KEY]
    if not is_denoiser(content):
        raise UserError(f"defense.ckpt={path} is a classifier checkpoint, not an HGD denoiser "
                        "(train one with `robust train defense=hgd`; classifiers go in ckpt_path)")
    state = {k[len(DENOISER_PREFIX):]: v for k, v in content["state_dict"].items()
             if k.startswith(DENOISER_PREFIX)}
    denoiser = build_denoiser(meta["denoiser"])
    try:
        denoiser.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"denoiser checkpoint {path} does not fit its recorded network "
                        f"{meta['denoiser']}: {str(error).splitlines()[0]}") from None
    return denoiser.eval(), meta


def check_shape(meta: dict, info: dict, path) -> None:
    """The denoiser must take the data's images (channels, height, width)."""
    from robustbench_cli.checkpoints import check_fits

    check_fits(meta["info"], info, f"denoiser {path}", keys=("channels", "height", "width"))
