"""robustbench_cli: the `robust` command for adversarial-robustness experiments.

Importing the package is cheap (no torch) so `robust --help` answers fast.
"""

__version__ = "0.1.0"


def load_classifier(ckpt_path):
    """Rebuild the classifier saved in a `robust train` checkpoint, in eval mode.

    The model takes images in [0, 1] (NCHW) and returns logits. Only tensor-only files
    are accepted: a checkpoint carrying pickled code is refused and the code never runs.
    """
    from robustbench_cli.checkpoints import load_classifier as _load

    return _load(ckpt_path)
