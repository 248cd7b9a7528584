"""Every attack through the evaluation runner on a tiny synthetic model: the rows' invariants,
and per-point results that do not depend on the batch size (randomness is seeded per point).

No training and no data files: a random two-layer net on random 3x8x8 images, labelled with
its own predictions except for a few points it gets wrong.
"""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_cli import attacks
from robustbench_cli.attacks import ATTACK_NAMES, build
from robustbench_cli.checkpoints import META_KEY, MODEL_PREFIX, weights_sha256
from robustbench_cli.data.info import DatasetInfo
from robustbench_cli.evaluation.adversarial_sets import write_set
from robustbench_cli.evaluation.runner import AttackSpec, evaluate
from robustbench_cli.models import build_model

POINTS, WRONG, SHAPE = 60, 8, (3, 8, 8)
EPS_FOR_NORM = {"linf": 0.05, "l2": 0.5, "l0": 0.5, None: 0.05}
# Small budgets, so that the whole file runs in seconds; pgd_linf with restarts (each draws
# its own starts), the transfer source attack with a random start too.
PARAMS = {"jsma": {"max_pixels": 0.05}, "nes": {"samples": 5, "max_queries": 110},
          "pgd_linf": {"restarts": 2}, "pgd_l2": {"steps": 5}, "bim": {"steps": 5},
          "iter_ll": {"steps": 5}, "gaussian": {"sigma": 0.3}, "apgd": {"steps": 10},
          "fab": {"steps": 10}, "square": {"queries": 200},
          "autoattack": {"version": "fast", "steps": 5, "queries": 50, "target_classes": 2}}
INFO = DatasetInfo("synthetic", *SHAPE, num_classes=10, mean=(0.0,) * 3, std=(1.0,) * 3)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 10)).eval()


@pytest.fixture(scope="module")
def dataset(model):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(POINTS, *SHAPE, generator=generator)
    with torch.no_grad():
        y = model(x).argmax(1)
    wrong = torch.arange(0, POINTS, POINTS // WRONG)[:WRONG]
    y[wrong] = (y[wrong] + 1) % 10
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory, model) -> str:
    """The tiny model saved as a `robust train` checkpoint would hold it (the project's MLP
    with one hidden layer of 16 and identity normalisation has the same layers)."""
    cfg = {"name": "mlp", "hidden": [16], "activation": "relu", "head": "sce"}
    source = build_model(cfg, INFO)
    source.net.load_state_dict(model.state_dict())
    state = {MODEL_PREFIX + key: value for key, value in source.state_dict().items()}
    path = tmp_path_factory.mktemp("source") / "source.ckpt"
    meta = {"model": cfg, "info": INFO.to_dict(), "weights_sha256": weights_sha256(state)}
    torch.save({"state_dict": state, META_KEY: meta}, path)
    return str(path)


@pytest.fixture(scope="module")
def saved_set(tmp_path_factory, model, dataset) -> str:
    """A PGD set of every point (all_points), as `save_adversarial=true` writes it."""
    finished = []
    evaluate(model, dataset, [AttackSpec("pgd_linf", {"steps": 3})], [EPS_FOR_NORM["linf"]],
             protocol="all_points", progress=False, keep_images=True, on_row=finished.append)
    folder = tmp_path_factory.mktemp("saved")
    [path] = write_set(folder, finished[0].row, finished[0].images, "true", dataset)
    return str(path)


def spec_for(name: str, source_ckpt: str, saved_set: str) -> AttackSpec:
    params = dict(PARAMS.get(name, {}))
    if name == "transfer":
        params.update(source_ckpt=source_ckpt, source_params={"steps": 3})
    if name == "saved":
        params.update(path=saved_set)
    return AttackSpec(name, params)


def eps_for(name: str, spec: AttackSpec) -> float:
    if name == "saved":  # the eps the set was crafted at
        return EPS_FOR_NORM["linf"]
    norm = build(name, nn.Flatten(), eps=0.1, **spec.params).norm
    return EPS_FOR_NORM[norm]


def run(model, dataset, spec, eps, protocol, batch_size, **options):
    finished = []
    rows = evaluate(model, dataset, [spec], [eps], protocol=protocol, batch_size=batch_size,
                    device="cpu", progress=False, on_row=finished.append, **options)
    [row] = rows
    [done] = finished
    assert done.row is row
    return done


@pytest.mark.parametrize("protocol", ["robust", "all_points"])
@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_rows_hold_and_points_do_not_depend_on_the_batch_size(name, protocol, model, dataset,
                                                            source_ckpt, saved_set):
    spec = spec_for(name, source_ckpt, saved_set)
    eps = eps_for(name, spec)
    small = run(model, dataset, spec, eps, protocol, batch_size=7)
    large = run(model, dataset, spec, eps, protocol, batch_size=256)

    for done in (small, large):
        row = done.row
        assert row["attack"] == name and row["eps"] == eps and row["protocol"] == protocol
        assert row["n"] == POINTS
        assert row["correct"] == round(row["accuracy"] * row["n"]) == int(done.correct.sum())
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
        assert row["clean_accuracy"] == (POINTS - WRONG) / POINTS
        assert row["top5"] is not None and row["clean_top5"] is not None  # 10 classes
        assert row["top5_correct"] == round(row["top5"] * row["n"]) == int(done.top5.sum())
        assert row["top5_ci_low"] <= row["top5"] <= row["top5_ci_high"]
        if protocol == "robust":
            assert row["accuracy"] <= row["clean_accuracy"]
            # clean_top5 is a float32 mean in the runner (top5 is hits / n): compare loosely.
            assert row["top5"] <= row["clean_top5"] + 1e-6
            assert not (done.correct & ~done.clean).any()
        if name == "none":
            assert torch.equal(done.correct, done.clean)

    # The issue's criterion: an attack's per-point result is the same at batch sizes 7 and 256.
    assert torch.equal(small.correct, large.correct)
    assert torch.equal(small.top5, large.top5)


def test_the_runner_passes_each_attacked_points_dataset_index(monkeypatch, model, dataset):
    seen = []
    real_build = attacks.build

    def recording_build(name, target, /, **params):
        attack = real_build(name, target, **params)
        perturb = attack._perturb

        def recording(x, y):
            seen.append(attack.index.clone())
            return perturb(x, y)

        attack._perturb = recording
        return attack

    monkeypatch.setattr(attacks, "build", recording_build)
    done = run(model, dataset, AttackSpec("gaussian"), 0.05, "robust", batch_size=7,
               top5="false")
    # Under `robust` (top-1 only) the clean-correct points are attacked, each with its index.
    assert torch.equal(torch.cat(seen), done.clean.nonzero().squeeze(1))
    assert len(seen) == -(-POINTS // 7)


RANDOM_ATTACKS = {"pgd_linf": {"eps": 0.05, "restarts": 2}, "pgd_l2": {"eps": 0.5},
                  "step_rnd": {"eps": 0.05}, "jsma": {"eps": 0.5, "max_pixels": 0.05},
                  "nes": {"eps": 0.05, "samples": 5, "max_queries": 110},
                  "gaussian": {"eps": 0.05}, "random_sign": {"eps": 0.05},
                  "trunc_normal": {"eps": 0.05}, "apgd": {"eps": 0.05, "steps": 10},
                  "square": {"eps": 0.05, "queries": 200},
                  "autoattack": {"eps": 0.05, "version": "fast", "steps": 5, "queries": 50,
                                 "target_classes": 2}}


@pytest.mark.parametrize("name", sorted(RANDOM_ATTACKS))
def test_a_points_randomness_follows_its_index_not_its_batch(name, model, dataset):
    x, y = dataset.tensors
    params = RANDOM_ATTACKS[name]
    whole = build(name, model, **params)(x, y, index=torch.arange(POINTS))
    # Shuffled into uneven batches: each point still gets its own draws.
    order = torch.randperm(POINTS, generator=torch.Generator().manual_seed(5))
    attack = build(name, model, **params)
    shuffled = torch.empty_like(x)
    for rows in order.split(7):
        shuffled[rows] = attack(x[rows], y[rows], index=rows)
    # Equal up to rounding: BLAS may sum a tiny batch in another order than a large one.
    torch.testing.assert_close(shuffled, whole, rtol=0, atol=1e-5)
    # Other indices or another seed: other draws.
    moved = build(name, model, **params)(x, y, index=torch.arange(POINTS) + POINTS)
    assert not torch.equal(moved, whole)
    assert not torch.equal(build(name, model, seed=1, **params)(x, y), whole)


def test_without_an_index_points_are_numbered_on_from_the_previous_call(model, dataset):
    x, y = dataset.tensors
    whole = build("gaussian", model, eps=0.1)(x, y)
    assert torch.equal(whole, build("gaussian", model, eps=0.1)(x, y, index=torch.arange(POINTS)))
    attack = build("gaussian", model, eps=0.1)
    first, second = attack(x[:25], y[:25]), attack(x[25:], y[25:])
    assert torch.equal(torch.cat([first, second]), whole)  # a reused attack draws afresh
    assert torch.equal(attack.index, torch.arange(25, POINTS))


def test_draws_are_per_point_and_per_stream(model):
    attack = build("pgd_linf", model, eps=0.1, restarts=3)
    attack.index = torch.tensor([4, 9, 2, 7])
    first = attack._random((3,), "start", 0)
    assert first.shape == (4, 3) and first.device.type == "cpu"
    assert torch.equal(attack._random((3,), "start", 0, rows=torch.tensor([2, 0])), first[[2, 0]])
    assert not torch.equal(attack._random((3,), "start", 1), first)  # each restart afresh
    classes = attack._random((), "class", kind="randint", low=1, high=10)
    assert classes.dtype == torch.long and ((classes >= 1) & (classes < 10)).all()
    with pytest.raises(ValueError, match="one integer per point"):
        attack(torch.zeros(2, *SHAPE), torch.zeros(2, dtype=torch.long), index=torch.arange(3))


def test_transfer_passes_the_index_to_its_source_attack(model, dataset, source_ckpt):
    x, y = dataset.tensors
    params = {"eps": 0.05, "source_ckpt": source_ckpt, "source_params": {"steps": 2}}
    attack = build("transfer", model, **params)
    index = torch.arange(POINTS) + 100
    x_adv = attack(x, y, index=index)
    assert torch.equal(attack.source.index, index)
    source = build("pgd_linf", attack.sources, eps=0.05, steps=2, early_stop=False)
    assert torch.equal(source(x, y, index=index), x_adv)
