"""Checkpoints are loaded tensors-only: pickled code is refused and never runs."""

import json
import pickle
import time

import pytest
import torch
from helpers import ok, robust

from robustbench_cli.checkpoints import load_classifier, read_checkpoint
from robustbench_cli.errors import UserError


class Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def poisoned_checkpoint(path, marker, trained):
    """A real checkpoint with one pickled object that would run code when loaded."""
    _, metrics, run_dir = trained
    content = torch.load(run_dir / metrics["checkpoint"], weights_only=True)
    content["robust"]["note"] = Payload(marker)
    with open(path, "wb") as f:
        pickle.dump(content, f)


def test_eval_refuses_a_checkpoint_with_pickled_code(tmp_path, trained):
    marker = tmp_path / "pwned"
    poisoned_checkpoint(tmp_path / "evil.ckpt", marker, trained)
    process = robust("eval", "ckpt_path=evil.ckpt", "hydra.run.dir=run", cwd=tmp_path)
    assert process.returncode != 0
    assert "refusing to load" in process.stderr and len(process.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    with pytest.raises(UserError, match="not a tensor-only file"):
        load_classifier(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_checkpoint_records_what_it_holds(trained):
    _, metrics, run_dir = trained
    meta = read_checkpoint(run_dir / metrics["checkpoint"])["robust"]
    assert meta["model"]["name"] == "mlp" and meta["dataset"]["name"] == "fashion_mnist"
    assert meta["info"]["num_classes"] == 10 and meta["info"]["channels"] == 1
    assert meta["defense"]["name"] == "none"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"hello world\n", None])
def test_unreadable_or_foreign_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "x.ckpt"
    if content is None:
        torch.save({"state_dict": {}}, path)  # a tensor file, but not ours
    else:
        path.write_bytes(content)
    with pytest.raises(UserError):
        read_checkpoint(path)


def test_eval_of_a_foreign_file_exits_with_one_line(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    process = robust("eval", "ckpt_path=other.pt", cwd=tmp_path)
    assert process.returncode == 2 and "not a `robust train` checkpoint" in process.stderr
    assert json.dumps(process.stderr).count("\\n") == 1
    ok(robust("--help", cwd=tmp_path))


def test_altered_weights_are_noticed(tmp_path, trained):
    _, metrics, run_dir = trained
    content = torch.load(run_dir / metrics["checkpoint"], weights_only=True)
    assert len(content["robust"]["weights_sha256"]) == 64
    key = next(k for k in content["state_dict"] if k.startswith("model.") and k.endswith("weight"))
    content["state_dict"][key] = content["state_dict"][key] + 1e-3
    torch.save(content, tmp_path / "altered.ckpt")
    with pytest.raises(UserError, match="corrupted or was altered"):
        read_checkpoint(tmp_path / "altered.ckpt")


def test_newest_checkpoint_lookup_can_ask_for_a_training_defense(tmp_path):
    from robustbench_cli.checkpoints import newest_train_checkpoint

    for run, defense in (("a", "adv_train"), ("b", "none")):  # b is the newer run
        folder = tmp_path / "train" / run
        folder.mkdir(parents=True)
        (folder / "best.ckpt").write_bytes(b"")
        (folder / "metrics.json").write_text(json.dumps(
            {"model": "mlp", "dataset": "fashion_mnist", "defense": defense, "checkpoint": "best.ckpt"}))
        time.sleep(0.02)
    assert newest_train_checkpoint(tmp_path, "mlp", "fashion_mnist").parent.name == "b"
    assert newest_train_checkpoint(tmp_path, "mlp", "fashion_mnist", "adv_train").parent.name == "a"
    with pytest.raises(UserError, match="defense=distillation"):
        newest_train_checkpoint(tmp_path, "mlp", "fashion_mnist", "distillation")
