"""build_model: check the config and the dataset shape, pick the architecture, wrap it."""

from collections.abc import Callable

from torch import nn

from robustbench_cli.errors import UserError
from robustbench_cli.models import MODEL_NAMES
from robustbench_cli.models.classifier import Classifier, Normalize, resolve_layer
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
    model = Classifier(Normalize(info.mean, info.std), net)
    model.guide_layer = _guide_layer(cfg, name, model)
    return model


def _guide_layer(cfg, name: str, model: Classifier) -> str | None:
    """model.guide_layer resolved against the built model; a config recorded before the key
    existed (an older checkpoint) gets the shipped conf/model/NAME.yaml value."""
    layer = cfg.get("guide_layer") if "guide_layer" in cfg else _shipped_guide_layer(name)
    if layer is None:
        return None
    resolved = resolve_layer(model, layer)
    if resolved is None:
        raise UserError(f"model.guide_layer {layer!r} is not a layer of model {name} (name one "
                        "from named_modules(), e.g. net.features; a negative index counts from the end)")
    return resolved


def _shipped_guide_layer(name: str) -> str | None:
    from importlib.resources import files

    from omegaconf import OmegaConf

    shipped = files("robustbench_cli.conf").joinpath("model", f"{name}.yaml")
    return OmegaConf.create(shipped.read_text()).get("guide_layer") if shipped.is_file() else None


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
