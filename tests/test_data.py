"""The data package on the real datasets: shapes, labels, subsets, splits and error messages."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from robustbench_cli.data import DatasetInfo, RobustDataModule, dataset_info
from robustbench_cli.data.subsets import class_balanced_indices
from robustbench_cli.errors import UserError

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def config(yaml_name: str, /, **overrides) -> dict:
    """The shipped conf/dataset/<yaml_name>.yaml with overrides, as the CLI hands it over."""
    values = OmegaConf.to_container(OmegaConf.load(CONF / f"{yaml_name}.yaml"))
    values.update(overrides)
    return values


def labels(dataset) -> list[int]:
    return [dataset[i][1] for i in range(len(dataset))]


def check_images(dataset, shape: tuple[int, int, int], count: int) -> None:
    assert len(dataset) == count
    for index in range(min(count, 8)):
        image, label = dataset[index]
        assert type(image) is torch.Tensor and image.dtype == torch.float32
        assert tuple(image.shape) == shape
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.3
        assert isinstance(label, int)


@pytest.fixture
def cifar_images(cifar_root) -> list[Path]:
    return sorted((cifar_root / "test" / "cat").iterdir())[:2]


def test_mnist_test_split_from_idx_folder_without_train_files(mnist_root, tmp_path):
    module = RobustDataModule(config("mnist", root=str(mnist_root)), str(tmp_path))
    assert module.info.input_shape == (1, 28, 28) and module.info.num_classes == 10
    module.setup("test")
    test = module.test_dataset()
    check_images(test, (1, 28, 28), 10_000)
    # The first MNIST test digits are 7, 2, 1, 0, 4.
    assert labels(torch.utils.data.Subset(test, range(5))) == [7, 2, 1, 0, 4]
    images, targets = next(iter(module.test_dataloader()))
    assert images.shape == (128, 1, 28, 28) and targets.dtype == torch.int64


def test_missing_split_is_reported_only_when_needed(mnist_root, tmp_path):
    module = RobustDataModule(config("mnist", root=str(mnist_root), limit_test=10), str(tmp_path))
    assert len(module.test_dataset()) == 10
    with pytest.raises(UserError, match=r"train split is missing .*train-images-idx3-ubyte"):
        module.setup("fit")


def test_fashion_mnist_train_and_test_from_debian_folder(fashion_root, tmp_path):
    cfg = config("fashion_mnist", root=str(fashion_root), limit_train=200, val_fraction=0.25)
    module = RobustDataModule(cfg, str(tmp_path), seed=3)
    module.setup("fit")
    train_images, _ = next(iter(module.train_dataloader()))
    assert (
        train_images.shape == (128, 1, 28, 28)
        and 0 <= train_images.min() <= train_images.max() <= 1
    )
    assert len(module.val_dataloader().dataset) == 50
    assert len(module.train_dataloader().dataset) == 150
    check_images(module.test_dataset(), (1, 28, 28), 10_000)
    assert module.info.mean == (0.2860,)


def test_cifar10_image_folder_uses_standard_labels(cifar_root, tmp_path):
    module = RobustDataModule(config("cifar10", root=str(cifar_root), limit_test=20), str(tmp_path))
    test = module.test_dataset()
    check_images(test, (3, 32, 32), 20)
    folder = test.dataset
    assert folder.class_to_idx["airplane"] == 0 and folder.class_to_idx["cat"] == 3
    for index in test.indices:
        path, label = folder.samples[index]
        assert folder.class_to_idx[Path(path).parent.name] == label
    assert labels(test) == list(range(10)) * 2


def test_cifar10_augmentation_only_on_train(cifar_root, tmp_path):
    cfg = config("cifar10", root=str(cifar_root), limit_train=20, limit_test=4, val_fraction=0.5)
    module = RobustDataModule(cfg, str(tmp_path))
    module.setup(None)
    train = module.train_dataloader().dataset
    torch.manual_seed(0)
    views = [train[0][0] for _ in range(6)]
    assert any(not torch.equal(views[0], view) for view in views[1:])
    val = module.val_dataloader().dataset
    assert torch.equal(val[0][0], val[0][0])
    assert torch.equal(module.test_dataset()[0][0], module.test_dataset()[0][0])


def test_imagenet_subset_gets_standard_indices(imagenet_root, tmp_path):
    module = RobustDataModule(config("imagenet_subset", root=str(imagenet_root), limit_test=3), "")
    test = module.test_dataset()
    check_images(test, (3, 299, 299), 3)
    assert labels(test) == [0, 1, 2]
    assert test.dataset.class_to_idx["n01440764"] == 0
    assert test.dataset.class_to_idx["n15075141"] == 999
    assert module.info.num_classes == 1000

    partial = tmp_path / "partial" / "val"
    partial.mkdir(parents=True)
    for wnid in ("n01443537", "n15075141"):
        (partial / wnid).symlink_to(imagenet_root / "val" / wnid)
    subset = RobustDataModule(config("imagenet_subset", root=str(partial.parent)), "")
    assert sorted(labels(subset.test_dataset())) == [1, 999]


def test_unknown_wnid_folder_is_refused(imagenet_root, tmp_path):
    fake = tmp_path / "val" / "n99999999"
    fake.mkdir(parents=True)
    shutil.copy(next((imagenet_root / "val" / "n01440764").iterdir()), fake / "image.JPEG")
    module = RobustDataModule(config("imagenet_subset", root=str(tmp_path)), "")
    with pytest.raises(UserError, match="not ImageNet-1k wnid classes: n99999999"):
        module.test_dataset()


def test_image_folder_greyscale_resized(cifar_root, tmp_path):
    cfg = config("image_folder", root=str(cifar_root), channels=1, image_size=16, limit_test=10)
    info = dataset_info(cfg, str(tmp_path))
    assert info == DatasetInfo("image_folder", 1, 16, 16, 10, (0.5,), (0.5,))
    module = RobustDataModule(cfg, str(tmp_path))
    check_images(module.test_dataset(), (1, 16, 16), 10)
    assert labels(module.test_dataset()) == list(range(10))


def test_image_folder_splits_need_the_same_classes(cifar_images, tmp_path):
    for split, classes in (("train", ("a", "b")), ("test", ("a",))):
        for name in classes:
            (tmp_path / split / name).mkdir(parents=True)
            shutil.copy(cifar_images[0], tmp_path / split / name)
    module = RobustDataModule(config("image_folder", root=str(tmp_path)), "")
    assert module.info.num_classes == 2
    with pytest.raises(UserError, match="same class folders"):
        module.test_dataset()


def test_class_balanced_limit_is_exact_and_balanced(mnist_root, tmp_path):
    for limit, expected in ((30, {c: 3 for c in range(10)}), (25, None)):
        module = RobustDataModule(config("mnist", root=str(mnist_root), limit_test=limit), "")
        counts = Counter(labels(module.test_dataset()))
        assert sum(counts.values()) == limit
        if expected:
            assert counts == expected
        else:
            assert max(counts.values()) - min(counts.values()) == 1


def test_round_robin_skips_exhausted_classes():
    assert class_balanced_indices([0, 0, 0, 0, 1, 2], 5, "limit") == [0, 4, 5, 1, 2]
    with pytest.raises(UserError, match="only 6 items"):
        class_balanced_indices([0, 0, 0, 0, 1, 2], 7, "limit")


def test_subsets_and_val_split_are_deterministic_and_disjoint(fashion_root):
    def fit_indices(seed):
        cfg = config("fashion_mnist", root=str(fashion_root), limit_train=100, val_fraction=0.2)
        module = RobustDataModule(cfg, "", seed=seed)
        module.setup("fit")
        train = module.train_dataloader().dataset.indices
        val = module.val_dataloader().dataset.indices
        return train, val

    train, val = fit_indices(seed=0)
    assert (train, val) == fit_indices(seed=0)
    assert fit_indices(seed=1)[1] != val
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val)


def test_no_val_split_gives_empty_val_loader(fashion_root):
    cfg = config("fashion_mnist", root=str(fashion_root), limit_train=40, val_fraction=0)
    module = RobustDataModule(cfg, "")
    assert module.val_dataloader() == []
    assert len(module.train_dataloader().dataset) == 40


def test_relative_root_resolves_against_cwd(mnist_root, monkeypatch):
    monkeypatch.chdir(mnist_root.parent)
    module = RobustDataModule(config("mnist", root=mnist_root.name, limit_test=10), "")
    assert len(module.test_dataset()) == 10


@pytest.mark.parametrize("name", ["mnist", "cifar10", "imagenet_subset", "image_folder"])
def test_missing_root_names_the_folder(name, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=f"{missing}"):
        RobustDataModule(config(name, root=str(missing)), str(tmp_path)).test_dataset()


def test_root_without_expected_files(tmp_path):
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte"):
        RobustDataModule(config("mnist", root=str(tmp_path)), "").test_dataset()
    with pytest.raises(UserError, match="no test split .*test/ or val/"):
        RobustDataModule(config("imagenet_subset", root=str(tmp_path)), "").test_dataset()


def test_default_root_offline_without_download_says_where_files_go(tmp_path):
    module = RobustDataModule(config("fashion_mnist", download=False), str(tmp_path))
    with pytest.raises(
        UserError, match=f"put .*train-images-idx3-ubyte.* in {tmp_path / 'fashion_mnist'}"
    ):
        module.test_dataset()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "svhn"}, "known datasets: mnist, fashion_mnist, cifar10"),
        ({"limit_test": 0}, "limit_test must be a positive integer"),
        ({"limit_train": -5}, "limit_train must be a positive integer"),
        ({"limit_test": 2.5}, "limit_test must be a positive integer"),
        ({"limit_test": True}, "limit_test must be a positive integer"),
        ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0, 1\)"),
        ({"val_fraction": -0.1}, r"val_fraction must be a number in \[0, 1\)"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_config_values(overrides, message, mnist_root):
    with pytest.raises(UserError, match=message):
        RobustDataModule(config("mnist", root=str(mnist_root), **overrides), "")


def test_image_folder_requires_root_and_valid_channels(cifar_root):
    with pytest.raises(UserError, match="root is required"):
        dataset_info(config("image_folder"), "")
    with pytest.raises(UserError, match="channels must be 1 or 3"):
        dataset_info(config("image_folder", root=str(cifar_root), channels=2), "")


def test_dataset_info_from_dictconfig_round_trips_through_json():
    cfg = OmegaConf.load(CONF / "cifar10.yaml")
    info = dataset_info(cfg, "data")
    assert info.input_shape == (3, 32, 32) and info.num_classes == 10
    rebuilt = DatasetInfo(**json.loads(json.dumps(info.to_dict())))
    assert rebuilt == info and isinstance(rebuilt.mean, tuple)


def test_class_splits_keep_only_the_named_classes(fashion_root):
    """Liao et al.'s unseen-class split: train on some classes, test on the others."""
    data = RobustDataModule({"name": "fashion_mnist", "root": str(fashion_root), "limit_train": 700,
                             "train_classes": [6, 0, 1, 2, 3, 4, 5], "test_classes": [7, 8, 9],
                             "limit_test": 90, "val_fraction": 0}, data_dir="data")
    train_labels = [int(y) for _, y in data._fit_splits()[0]]
    test_labels = [int(y) for _, y in data.test_dataset()]
    assert sorted(set(train_labels)) == list(range(7)) and len(train_labels) == 700
    assert all(train_labels.count(c) == 100 for c in range(7))  # still class-balanced
    assert sorted(set(test_labels)) == [7, 8, 9] and len(test_labels) == 90
    assert data.info.num_classes == 10  # the model keeps every output
    with pytest.raises(UserError, match=r"dataset.test_classes has class 12, the data has 10"):
        RobustDataModule({"name": "fashion_mnist", "root": str(fashion_root), "test_classes": [12]},
                         data_dir="data").test_dataset()
    with pytest.raises(UserError, match="non-empty list of class indices"):
        RobustDataModule({"name": "fashion_mnist", "root": str(fashion_root), "train_classes": []},
                         data_dir="data")
