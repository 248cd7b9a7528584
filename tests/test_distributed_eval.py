"""`robust eval` and `robust detect` over 2 CPU processes (trainer=ddp_cpu) give the
one-process tables back, and resume."""

import json

import numpy as np
import pytest
from helpers import FASHION, ok, robust, robust_many

SECONDS = ("seconds", "clean_seconds")


def _common(trained, command_args):
    _, metrics, run = trained
    return [f"ckpt_path={run / metrics['checkpoint']}", "dataset=fashion_mnist",
            f"dataset.root={FASHION}", "dataset.limit_test=300", "progress=false",
            "results.index=false", *command_args]


def _rows(run_dir):
    rows = json.loads((run_dir / "results.json").read_text())
    return [{k: v for k, v in row.items() if k not in SECONDS} for row in rows]


def _outcome_differences(one, two) -> int:
    """Per-point outcomes that differ between two runs' points.npz (scores: beyond float noise)."""
    a, b = np.load(one / "points.npz"), np.load(two / "points.npz")
    assert sorted(a.files) == sorted(b.files)
    return sum(int((~np.isclose(a[key], b[key], rtol=1e-5) if a[key].dtype.kind == "f"
                    else a[key] != b[key]).sum()) for key in a.files)


def _one_and_two_processes(command, args, tmp_path):
    """Run folders of `robust COMMAND ARGS` in one process and with trainer=ddp_cpu."""
    one, two = tmp_path / "one", tmp_path / "two"
    for process in robust_many([[command, *args, f"hydra.run.dir={one}"],
                                [command, *args, "trainer=ddp_cpu", f"hydra.run.dir={two}"]],
                               cwd=tmp_path):
        ok(process)
    return one, two


def test_eval_on_two_processes_gives_the_one_process_table_and_resumes(trained, tmp_path):
    args = _common(trained, ["attack=pgd_linf", "attack.steps=5", "sanity=false", "eps=[0.1]"])
    one, two = _one_and_two_processes("eval", args, tmp_path)
    assert _rows(one) == _rows(two)
    record = json.loads((two / "run.json").read_text())
    assert record["processes"] == 2
    # Only a near tie of the clean logits may flip under another float reduction order.
    assert _outcome_differences(one, two) <= record["near_ties"]

    before = {(r["attack"], r["eps"]): r["seconds"]
              for r in json.loads((two / "results.json").read_text())}
    resumed = ok(robust("eval", *args[:-1], "eps=[0.1,0.2]", "trainer=ddp_cpu", "resume=true",
                        f"hydra.run.dir={two}", cwd=tmp_path))
    assert "finished row(s) kept" in resumed.stdout
    after = {(r["attack"], r["eps"]): r["seconds"]
             for r in json.loads((two / "results.json").read_text())}
    assert {key: after[key] for key in before} == before  # kept, not recomputed
    assert ("pgd_linf", 0.2) in after


@pytest.mark.slow  # make test-all: the eval test covers the shards in the fast suite
def test_detect_on_two_processes_gives_the_one_process_table(trained, tmp_path):
    args = _common(trained, ["attack=fgsm", "eps=[0.1]"])
    one, two = _one_and_two_processes("detect", args, tmp_path)
    assert _rows(one) == _rows(two)
    assert _outcome_differences(one, two) == 0
