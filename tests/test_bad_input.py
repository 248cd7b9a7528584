"""Bad input through the real `robust` command: non-zero exit, one line, no traceback,
and nothing written by an earlier run in the same folder changes."""

import hashlib

import pytest
from conftest import SHARED_DATA
from helpers import FASHION, ok, robust, robust_many
from PIL import Image


@pytest.fixture(scope="module")
def setup(trained, tmp_path_factory):
    """A finished eval in run/ (must survive every bad call) and a 2-class image folder."""
    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]
    folder = tmp_path_factory.mktemp("two_classes")
    for split in ("train", "test"):
        for label in ("a", "b"):
            (folder / split / label).mkdir(parents=True)
            for i in range(2):
                Image.new("L", (28, 28), color=100 * i).save(folder / split / label / f"{i}.png")
    empty = tmp_path_factory.mktemp("empty")
    broken = tmp_path_factory.mktemp("broken")
    for split in ("train", "test"):
        for label in ("a", "b"):
            (broken / split / label).mkdir(parents=True)
            Image.new("RGB", (32, 32)).save(broken / split / label / "fine.png")
    (broken / "train" / "a" / "broken.png").write_text("not an image")
    ok(robust("eval", f"ckpt_path={ckpt}", "dataset.limit_test=50", "hydra.run.dir=run",
              cwd=work))
    return work, ckpt, folder, empty, broken


def snapshot(folder):
    """Hashes of the results a run wrote (Hydra's logs and .hydra/ are rewritten per call)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir() if p.name.startswith(("results.", "run.json"))}


def cases(ckpt, folder, empty, broken):
    use = f"ckpt_path={ckpt}"
    return {
        "unknown command": ["evaluate"],
        "unknown model": ["eval", use, "model=resnet9000"],
        "unknown dataset": ["eval", use, "dataset=svhn"],
        "unknown attack": ["eval", use, "attack=deepfool"],
        "unknown logger": ["eval", use, "logger=wandb"],
        "unknown override key": ["eval", use, "epsilon=0.1"],
        "negative eps": ["eval", use, "attack=fgsm", "eps=-0.1"],
        "non-numeric eps": ["eval", use, "attack=fgsm", "eps=abc"],
        "L-inf eps above 1": ["eval", use, "attack=pgd_linf", "eps=2"],
        "negative eps in a list": ["eval", use, "attack=fgsm", "eps=[0.1,-1]"],
        "missing checkpoint": ["eval", "ckpt_path=nowhere/best.ckpt"],
        "checkpoint of another model": ["eval", use, "model=cnn"],
        "checkpoint of another class count": [
            "eval", use, "dataset=image_folder", f"dataset.root={folder}", "dataset.channels=1",
            "dataset.image_size=28"],
        "checkpoint of another input shape": ["eval", use, "dataset=cifar10",
                                              f"dataset.root={folder}"],
        "dataset folder without the files": ["eval", use, "dataset=fashion_mnist",
                                             f"dataset.root={empty}"],
        "missing dataset folder": ["eval", use, "dataset=fashion_mnist",
                                   "dataset.root=no/such/dir"],
        "negative seed": ["eval", use, "seed=-3"],
        "bad batch size": ["eval", use, "batch_size=0"],
        "bad attack parameter value": ["eval", use, "attack=pgd_linf", "attack.steps=0"],
        "bad optimizer": ["train", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                          "optim=adagrad"],
        "bad learning rate": ["train", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                              "optim.lr=-1"],
        "unknown trainer": ["train", "trainer=tpu"],
        "bad limit": ["train", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                      "dataset.limit_train=-5"],
        "missing train split": ["train", "dataset=mnist", f"dataset.root={SHARED_DATA / 'mnist'}"],
        "aggregate of a missing folder": ["aggregate", "no/such/sweep"],
        "diverging loss": ["train", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                           "dataset.limit_train=500", "optim=sgd", "optim.lr=1e30"],
        "unreadable image": ["train", "dataset=image_folder", f"dataset.root={broken}",
                             "dataset.val_fraction=0", "trainer.max_epochs=1"],
        "output folder under a file": ["eval", use,
                                       f"paths.output_dir={folder / 'train' / 'a' / '0.png'}"],
    }


def test_each_bad_input_is_one_line_and_changes_nothing(setup):
    work, ckpt, folder, empty, broken = setup
    before = snapshot(work / "run")
    calls = []
    for i, args in enumerate(cases(ckpt, folder, empty, broken).values()):
        # eval runs share the folder of the finished eval; training runs get their own
        folder_arg = {"eval": ["hydra.run.dir=run"], "train": [f"hydra.run.dir=train_{i}"]}
        writes_elsewhere = any(a.startswith("paths.output_dir=") for a in args)
        calls.append([*args, *([] if writes_elsewhere else folder_arg.get(args[0], []))])
    failures = []
    for name, process in zip(cases(ckpt, folder, empty, broken), robust_many(calls, work)):
        lines = process.stderr.strip().splitlines()
        if process.returncode != 2 or len(lines) != 1 or "Traceback" in process.stderr:
            failures.append(f"{name}: exit {process.returncode}, stderr={process.stderr!r}")
    assert not failures, "\n".join(failures)
    assert snapshot(work / "run") == before
