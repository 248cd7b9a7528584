"""Model builders: every architecture on real images, options, and bad input."""

import gzip
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.error import URLError

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torchvision.io import ImageReadMode, read_image
from torchvision.models import Inception_V3_Weights
from torchvision.models.inception import Inception3
from torchvision.transforms.v2 import functional as TF

from robustbench_cli.errors import UserError
from robustbench_cli.models import MODEL_NAMES, build_model
from robustbench_cli.models.activations import ACTIVATION_NAMES, PAPER_BETAS, ReluDecay
from robustbench_cli.models.classifier import Classifier, Normalize

CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_MODELS = [name for name in MODEL_NAMES if name != "inception_v3"]


# ---- real inputs -------------------------------------------------------------------------


def mnist_images(root: Path, count: int = 4) -> torch.Tensor:
    """The first `count` MNIST test digits as (N, 1, 28, 28) floats in [0, 1]."""
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "rb") as file:
        file.read(16)  # IDX header: magic, count, rows, cols
        pixels = file.read(count * 28 * 28)
    return torch.frombuffer(bytearray(pixels), dtype=torch.uint8).view(count, 1, 28, 28) / 255


def folder_images(paths, size: int | None = None) -> torch.Tensor:
    """RGB images as (N, 3, H, W) floats in [0, 1], resized and centre cropped to `size`."""
    images = []
    for path in paths:
        image = read_image(str(path), mode=ImageReadMode.RGB)
        if size is not None:
            image = TF.center_crop(TF.resize(image, [size]), [size])
        images.append(image)
    return torch.stack(images) / 255


def cifar_images(root: Path) -> torch.Tensor:
    return folder_images(sorted((root / "test").glob("*/0000.jpg"))[:4])


def imagenet_images(root: Path) -> torch.Tensor:
    return folder_images(sorted((root / "val").glob("*/*.JPEG"))[:2], size=299)


def dataset_info(channels, size, num_classes=10, mean=None, std=None):
    return SimpleNamespace(
        channels=channels,
        height=size,
        width=size,
        num_classes=num_classes,
        mean=mean if mean is not None else (0.5,) * channels,
        std=std if std is not None else (0.25,) * channels,
    )


MNIST_INFO = dataset_info(1, 28, mean=(0.1307,), std=(0.3081,))
CIFAR_INFO = dataset_info(3, 32, mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261))


def model_cfg(name: str, **overrides):
    """The shipped conf/model/NAME.yaml with overrides, as Hydra hands it to build_model."""
    cfg = OmegaConf.load(CONF_MODEL / f"{name}.yaml")
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def fast_cfg(name: str, **overrides):
    """VGG at a quarter width keeps the tests quick."""
    if name.startswith("vgg"):
        overrides.setdefault("width", 0.25)
    return model_cfg(name, **overrides)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


# ---- every model on its natural inputs ---------------------------------------------------


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_small_models_classify_mnist_and_cifar(name, mnist_root, cifar_root):
    for info, images in (
        (MNIST_INFO, mnist_images(mnist_root)),
        (CIFAR_INFO, cifar_images(cifar_root)),
    ):
        model = build_model(fast_cfg(name), info).eval()
        assert isinstance(model, Classifier)
        assert isinstance(model.normalize, Normalize)
        with torch.no_grad():
            logits = model(images)
        assert logits.shape == (len(images), 10)
        assert torch.isfinite(logits).all()
        # Logits, not probabilities: rows do not sum to one.
        assert not torch.allclose(logits.sum(dim=1), torch.ones(len(images)))


def test_inception_v3_classifies_imagenet_images(imagenet_root):
    images = imagenet_images(imagenet_root)
    info = dataset_info(3, 299, num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    model = build_model(model_cfg("inception_v3"), info)
    assert model.net.transform_input is False
    assert model.net.AuxLogits is None

    with torch.no_grad():
        logits = model.eval()(images)
        assert type(logits) is torch.Tensor
        assert logits.shape == (2, 1000)
        assert torch.isfinite(logits).all()
        assert type(model.train()(images)) is torch.Tensor


def test_inception_v3_takes_its_smallest_input():
    model = build_model(model_cfg("inception_v3"), dataset_info(3, 75, num_classes=5)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 75, 75)).shape == (1, 5)


def test_pretrained_inception_loads_imagenet_weights_and_drops_the_aux_head(monkeypatch):
    # Offline stand-in for the download: a state dict of the same architecture.
    donor = Inception3(aux_logits=True, init_weights=False, transform_input=True)
    donor.fc.bias.data.fill_(0.125)
    monkeypatch.setattr(
        Inception_V3_Weights, "get_state_dict", lambda self, **kwargs: donor.state_dict()
    )
    info = dataset_info(3, 299, num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    model = build_model(model_cfg("inception_v3", pretrained=True), info)

    assert model.net.transform_input is True
    assert model.net.AuxLogits is None
    assert torch.equal(model.net.fc.bias, donor.fc.bias)
    with torch.no_grad():
        assert type(model.train()(torch.rand(2, 3, 299, 299))) is torch.Tensor


def test_every_model_name_has_a_shipped_config():
    assert sorted(path.stem for path in CONF_MODEL.glob("*.yaml")) == sorted(MODEL_NAMES)


# ---- heads, pooling, width ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg16"])
def test_hundred_class_head(name):
    model = build_model(fast_cfg(name), dataset_info(3, 32, num_classes=100)).eval()
    with torch.no_grad():
        assert model(torch.rand(3, 3, 32, 32)).shape == (3, 100)


@pytest.mark.parametrize("size, pools", [(28, 4), (32, 5), (8, 3)])
def test_vgg_skips_pools_that_would_empty_the_map(size, pools):
    model = build_model(fast_cfg("vgg11"), dataset_info(3, size))
    assert count(model, nn.MaxPool2d) == pools
    assert count(model, nn.Dropout) == 0
    assert model.net.classifier[-1].in_features == 128  # 512 * 0.25 channels on a 1x1 map


def test_vgg_uses_the_imagenet_head_from_64_px():
    model = build_model(fast_cfg("vgg11"), dataset_info(3, 64, num_classes=7))
    assert count(model, nn.AdaptiveAvgPool2d) == 1
    assert count(model, nn.Dropout) == 2
    assert model.net.classifier[-1].in_features == 1024  # 4096 * 0.25
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 3, 64, 64)).shape == (2, 7)


def test_vgg_initialises_like_torchvision():
    model = build_model(fast_cfg("vgg11"), CIFAR_INFO)
    first_conv = model.net.features[0]
    assert torch.all(first_conv.bias == 0)
    # kaiming_normal_, fan_out: std = sqrt(2 / (out_channels * 9)).
    expected_std = (2 / (first_conv.out_channels * 9)) ** 0.5
    assert first_conv.weight.std().item() == pytest.approx(expected_std, rel=0.25)
    assert model.net.classifier[-1].weight.std().item() == pytest.approx(0.01, rel=0.25)


def test_cnn_takes_inputs_too_small_to_pool():
    model = build_model(model_cfg("cnn", channels=[4, 4, 4]), dataset_info(1, 3)).eval()
    assert count(model, nn.MaxPool2d) == 1  # 3 -> 1, then no more pooling
    with torch.no_grad():
        assert model(torch.rand(2, 1, 3, 3)).shape == (2, 10)


def test_mlp_width_multiplies_hidden_units():
    model = build_model(model_cfg("mlp", hidden=[256, 100], width=0.5), MNIST_INFO)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [layer.out_features for layer in linears] == [128, 50, 10]


@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg11"])
def test_width_scales_the_parameter_count(name):
    counts = [
        parameter_count(build_model(model_cfg(name, width=width), CIFAR_INFO))
        for width in (0.125, 0.25, 0.5)
    ]
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg11"])
def test_tiny_width_keeps_one_unit_per_layer(name):
    model = build_model(model_cfg(name, width=1e-6), CIFAR_INFO).eval()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            assert module.out_channels == 1
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, 3, 32, 32))).all()


# Each model on a tiny input of its own: Inception-v3's smallest (75 px, RGB).
TINY_INPUT = {name: (1, 28) for name in SMALL_MODELS} | {"inception_v3": (3, 75)}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_honours_width_and_activation(name):
    """Kurakin et al.'s capacity (rho) and activation studies need both options on every
    model, Inception-v3 included: parameters grow with the width, every conv is scaled (never
    below one filter), and the chosen activation replaces relu throughout."""
    channels, size = TINY_INPUT[name]
    info = dataset_info(channels, size, num_classes=5)
    built = {width: build_model(model_cfg(name, width=width, activation="elu"), info)
             for width in (0.0625, 0.125)}
    assert parameter_count(built[0.0625]) < parameter_count(built[0.125])
    narrow = build_model(model_cfg(name, width=1e-6, activation="relu_decay"), info).eval()
    convs = [m for m in narrow.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.out_channels == 1 for conv in convs)
    assert count(narrow, ReluDecay) > 0 and count(narrow, nn.ReLU) == 0
    model = built[0.125].eval()
    assert count(model, nn.ELU) >= max(1, len(convs)) and count(model, nn.ReLU) == 0
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, channels, size, size))).all()


def test_inception_width_scales_every_conv_and_keeps_torchvisions_layout():
    info = dataset_info(3, 75, num_classes=5)
    full = build_model(model_cfg("inception_v3"), info)
    reference = Inception3(num_classes=5, aux_logits=False, init_weights=False)
    assert {k: v.shape for k, v in full.net.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    eighth = dict(build_model(model_cfg("inception_v3", width=0.125), info).named_modules())
    for name, conv in full.named_modules():
        if isinstance(conv, nn.Conv2d):
            assert eighth[name].out_channels == max(1, round(conv.out_channels / 8)), name
    assert eighth["net.fc"].in_features == 2048 // 8


def test_mlp_with_no_hidden_layers_is_linear():
    model = build_model(model_cfg("mlp", hidden=[]), MNIST_INFO)
    assert [type(m) for m in model.net] == [nn.Flatten, nn.Linear]


# ---- activations and normalisation -------------------------------------------------------

ACTIVATION_TYPES = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "relu_decay": ReluDecay,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg11"])
def test_each_activation_is_used_throughout(name, activation):
    model = build_model(fast_cfg(name, activation=activation), MNIST_INFO).eval()
    assert count(model, ACTIVATION_TYPES[activation]) > 0
    if activation != "relu":
        assert count(model, nn.ReLU) == 0
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, 1, 28, 28))).all()


def test_relu_decay_matches_its_formula():
    x = torch.tensor([-2.0, 0.0, 0.5, 1.0, 3.0])
    expected = torch.tensor([0.0, 0.0, 0.5 / 1.125, 1 / 1.5, 3 / 5.5])  # beta = 0.5
    assert torch.allclose(ReluDecay(beta=0.5)(x), expected)


def test_relu_decay_takes_beta_from_the_config():
    model = build_model(model_cfg("mlp", activation="relu_decay", activation_beta=0.3), MNIST_INFO)
    assert {m.beta for m in model.modules() if isinstance(m, ReluDecay)} == {0.3}


def test_relu_decay_beta_defaults_to_a_value_of_kurakin_et_al():
    """Document 004, Appendix D / Table 7: ReluDecay_beta for beta in {0.1, 0.01, 0.001}."""
    assert PAPER_BETAS == (0.1, 0.01, 0.001)
    for cfg in (model_cfg("mlp", activation="relu_decay"), {"name": "mlp", "hidden": [4],
                                                            "activation": "relu_decay"}):
        betas = {m.beta for m in build_model(cfg, MNIST_INFO).modules() if isinstance(m, ReluDecay)}
        assert betas == {0.1}
    for name in MODEL_NAMES:
        assert model_cfg(name).activation_beta in PAPER_BETAS


def test_normalize_maps_mean_to_zero_and_one_std_to_one():
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    normalize = Normalize(mean, std)
    mean_image = torch.tensor(mean).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    std_image = torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(normalize(mean_image), torch.zeros(2, 3, 4, 4))
    assert torch.allclose(normalize(mean_image + std_image), torch.ones(2, 3, 4, 4))
    assert set(normalize.state_dict()) == {"mean", "std"}


def test_model_normalises_with_the_dataset_statistics():
    model = build_model(model_cfg("mlp"), CIFAR_INFO)
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor(CIFAR_INFO.mean))
    assert torch.allclose(model.normalize.std.flatten(), torch.tensor(CIFAR_INFO.std))


# ---- gradients, determinism, config forms ------------------------------------------------


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_gradients_reach_the_input(name, cifar_root):
    model = build_model(fast_cfg(name), CIFAR_INFO).eval()
    images = cifar_images(cifar_root).requires_grad_()
    nn.functional.cross_entropy(model(images), torch.arange(len(images))).backward()
    assert images.grad is not None
    assert torch.isfinite(images.grad).all()
    assert images.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["mlp", "cnn", "vgg11"])
def test_building_is_deterministic_under_a_seed(name):
    def weights(seed):
        torch.manual_seed(seed)
        return build_model(fast_cfg(name), MNIST_INFO).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_plain_dict_config_works():
    cfg = {"name": "cnn", "width": 0.5, "activation": "tanh", "channels": [8], "hidden": 16}
    model = build_model(cfg, MNIST_INFO)
    assert model.net.features[0].out_channels == 4
    assert model.net.classifier[1].out_features == 8


def test_importing_the_package_does_not_import_torch():
    code = "import sys, robustbench_cli.models; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- bad input ---------------------------------------------------------------------------


def raises_user_error(cfg, info=MNIST_INFO, match=None) -> str:
    with pytest.raises(UserError, match=match) as caught:
        build_model(cfg, info)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unknown_model_lists_the_known_ones():
    message = raises_user_error({"name": "resnet50"}, match="resnet50")
    assert all(name in message for name in MODEL_NAMES)


def test_unknown_activation_lists_the_known_ones():
    message = raises_user_error(model_cfg("mlp", activation="gelu"), match="gelu")
    assert all(name in message for name in ACTIVATION_NAMES)


@pytest.mark.parametrize("width", [0, -0.5, "wide", True])
def test_bad_width(width):
    raises_user_error(model_cfg("cnn", width=width), match="model.width")


def test_negative_activation_beta():
    raises_user_error(model_cfg("mlp", activation="relu_decay", activation_beta=-1), match="beta")


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("mlp", "hidden", [256, 0]),
        ("mlp", "hidden", "256"),
        ("mlp", "hidden", 256),
        ("mlp", "hidden", [1.5]),
        ("mlp", "hidden", None),
        ("cnn", "channels", []),
        ("cnn", "channels", [32, -1]),
        ("cnn", "hidden", 0),
        ("cnn", "hidden", [128]),
    ],
)
def test_bad_layer_lists(name, key, value):
    raises_user_error(model_cfg(name, **{key: value}), match=f"model.{key}")


@pytest.mark.parametrize("overrides", [{"width": 0.5}, {"activation": "tanh"}])
def test_pretrained_inception_needs_torchvisions_width_and_activation(overrides):
    info = dataset_info(3, 299, num_classes=1000)
    raises_user_error(model_cfg("inception_v3", pretrained=True, **overrides), info,
                      match="width=1.0 and model.activation=relu")


def test_inception_rejects_small_and_grey_inputs():
    raises_user_error(model_cfg("inception_v3"), CIFAR_INFO, match="32x32")
    raises_user_error(model_cfg("inception_v3"), dataset_info(1, 299), match="3-channel")


def test_pretrained_inception_needs_the_imagenet_classes():
    raises_user_error(
        model_cfg("inception_v3", pretrained=True), dataset_info(3, 299), match="1000"
    )


def test_pretrained_inception_offline_is_a_user_error(monkeypatch):
    def offline(self, **kwargs):
        raise URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(Inception_V3_Weights, "get_state_dict", offline)
    info = dataset_info(3, 299, num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    message = raises_user_error(
        model_cfg("inception_v3", pretrained=True), info, match="could not download"
    )
    assert "model.pretrained=false" in message and "TORCH_HOME" in message


@pytest.mark.parametrize(
    "info, match",
    [
        (dataset_info(3, 32, mean=(0.5,)), "one value per channel"),
        (dataset_info(1, 28, std=(0.0,)), "std must be > 0"),
        (dataset_info(1, 0), "height"),
        (dataset_info(1, 28, num_classes=0), "num_classes"),
    ],
)
def test_dataset_shapes_a_model_cannot_take(info, match):
    raises_user_error(model_cfg("mlp"), info, match=match)
