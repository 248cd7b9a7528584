"""build_model: check the config and the dataset shape, pick the architecture, wrap it."""

from collections.abc import Callable

from torch import nn

from robustbench_cli.errors import UserError
from robustbench_cli.models import MODEL_NAMES
from robustbench_cli.models.classifier import Classifier, Normalize
from robustbench_cli.models.cnn import build_cnn
from robustbench_cli.models.inception import build_inception_v3
from robustbench_cli.models.mlp import build_mlp
from robustbench_cli.models.options import read_arch_options
from robustbench_cli.models.vgg import LAYOUT_BY_MODEL, build_vgg

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    **{name: build_vgg for name in LAYOUT_BY_MODEL},
    "inception_v3": build_inception_v3,
}


def build_model(cfg, info) -> Classifier:
    name = cfg.get("name")
    if not isinstance(name, str) or name not in BUILDERS:
        raise UserError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    _check_info(info)
    options = read_arch_options(cfg)
    net = BUILDERS[name](cfg, info, options)
    return Classifier(Normalize(info.mean, info.std), net)


def _check_info(info) -> None:
    """The dataset description must be a shape a network can take."""
    for field in ("channels", "height", "width", "num_classes"):
        value = getattr(info, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"dataset {field} must be a positive integer, got {value!r}")
    for field in ("mean", "std"):
        if len(getattr(info, field)) != info.channels:
            raise UserError(
                f"dataset {field} needs one value per channel ({info.channels}), "
                f"got {list(getattr(info, field))}"
            )
    if any(value <= 0 for value in info.std):
        raise UserError(f"dataset std must be > 0, got {list(info.std)}")
