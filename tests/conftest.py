"""Shared test fixtures: where the real data lives."""

import json
from pathlib import Path

import pytest
from helpers import FASHION, ok, robust

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (see README, 'Data for tests')")
    return path


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    return _need(SHARED_DATA / "mnist")


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    return _need(SHARED_DATA / "cifar10")


@pytest.fixture(scope="session")
def imagenet_root() -> Path:
    return _need(SHARED_DATA / "imagenet-sample")


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    return _need(FASHION_MNIST)


TRAIN = ["dataset=fashion_mnist", f"dataset.root={FASHION}", "dataset.limit_train=3000",
         "dataset.limit_test=500", "trainer.max_epochs=1", "seed=1"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, fashion_root):
    """One MLP trained for an epoch on 2,700 Fashion-MNIST images (300 held out for validation)."""
    work = tmp_path_factory.mktemp("work")
    ok(robust("train", *TRAIN, cwd=work))
    [metrics_file] = (work / "outputs" / "train").glob("*/metrics.json")
    return work, json.loads(metrics_file.read_text()), metrics_file.parent
