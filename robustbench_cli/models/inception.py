"""torchvision's Inception-v3, optionally with its ImageNet weights."""

from torch import nn
from torchvision.models import Inception_V3_Weights, inception_v3

from robustbench_cli.errors import UserError
from robustbench_cli.models.options import ArchOptions

MIN_INPUT_PX = 75  # smaller maps shrink to nothing before the final pooling
IMAGENET_CLASSES = 1000


def build_inception_v3(cfg, info, options: ArchOptions) -> nn.Module:
    if options.width != 1.0 or options.activation != "relu":
        raise UserError(
            "inception_v3 has a fixed architecture: use model.width=1.0 and model.activation=relu"
        )
    if info.channels != 3:
        raise UserError(f"inception_v3 needs 3-channel images, got {info.channels}")
    if min(info.height, info.width) < MIN_INPUT_PX:
        raise UserError(
            f"inception_v3 needs inputs of at least {MIN_INPUT_PX}x{MIN_INPUT_PX} px, "
            f"got {info.height}x{info.width}"
        )
    pretrained = cfg.get("pretrained", False)
    if not isinstance(pretrained, bool):
        raise UserError(f"model.pretrained must be true or false, got {pretrained!r}")
    if not pretrained:
        return inception_v3(
            weights=None,
            aux_logits=False,
            init_weights=True,
            num_classes=info.num_classes,
            transform_input=False,
        )
    return _pretrained(info.num_classes)


def _pretrained(num_classes: int) -> nn.Module:
    if num_classes != IMAGENET_CLASSES:
        raise UserError(
            f"model.pretrained=true needs the {IMAGENET_CLASSES} ImageNet classes, "
            f"the dataset has {num_classes}"
        )
    # The weights were trained on ImageNet-normalised inputs remapped by transform_input.
    # torchvision insists on aux_logits=True when loading them, so the aux head is dropped after.
    try:
        model = inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1, transform_input=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise UserError(
            f"could not download Inception-v3 ImageNet weights (offline?): {reason}; "
            "set model.pretrained=false or put the file in TORCH_HOME/hub/checkpoints"
        ) from exc
    model.aux_logits = False
    model.AuxLogits = None
    return model
