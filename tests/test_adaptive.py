"""Eval-time preprocessing defenses (input_noise, bit_depth) and the adaptive attacks that get
through them, EOT and BPDA, on the `trained` Fashion-MNIST MLP and real test images."""

import json

import pytest
import torch
from helpers import compose, eval_view, ok, robust_many

from robustbench_cli import attacks
from robustbench_cli.attacks.bpda import straight_through
from robustbench_cli.defenses.preprocessing import BitDepth, InputNoise
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec, evaluate, sanity_specs
from robustbench_cli.reporting import table_notes

EPS = 0.1
# Few steps of a large step, every one taken (no early stop): at matched steps the attack
# with EOT follows the mean gradient, plain PGD one noise draw's per step.
FEW_STEPS = ["attack.steps=2", "attack.step_ratio=0.5", "attack.random_start=false",
             "attack.early_stop=false"]


@pytest.fixture(scope="module")
def classifier_ckpt(trained):
    work, metrics, run_dir = trained
    return run_dir / metrics["checkpoint"]


def accuracy(classifier_ckpt, *overrides) -> dict:
    target, view = eval_view(classifier_ckpt, *overrides, limit_test=500)
    test_set = target.test_set
    [row] = evaluate(view.model, test_set, view.specs, [EPS], progress=False, device="cpu")
    return row


def test_eot_beats_plain_pgd_on_input_noise_at_matched_steps(classifier_ckpt):
    noise = ["defense=input_noise", "defense.sigma=0.3", "attack=pgd_linf", *FEW_STEPS]
    plain = accuracy(classifier_ckpt, *noise)
    eot = accuracy(classifier_ckpt, *noise, "attack.eot_samples=16")
    print(f"input_noise sigma=0.3: clean {plain['clean_accuracy']:.3f}, PGD {plain['accuracy']:.3f}, "
          f"PGD+EOT16 {eot['accuracy']:.3f}")
    assert eot["clean_accuracy"] == plain["clean_accuracy"]  # the same seeded noise
    assert eot["accuracy"] < plain["accuracy"] - 0.05, (plain, eot)
    assert eot["gradient_passes"] == 16 * plain["gradient_passes"]
    # The clean pass notices the randomness (AutoAttack's check): a note asks for EOT where
    # an attack ran without it, and only there.
    assert plain["randomized"] and eot["randomized"]
    [note] = table_notes([plain])
    assert note.startswith("the model gives different outputs for the same input") and "pgd_linf" in note
    assert table_notes([eot]) == []
    assert "randomized" not in accuracy(classifier_ckpt, "attack=pgd_linf", *FEW_STEPS)


def test_bpda_gets_through_bit_depth_where_plain_pgd_is_masked(classifier_ckpt):
    squeeze = ["defense=bit_depth", "defense.bits=3", "attack=pgd_linf"]
    plain = accuracy(classifier_ckpt, *squeeze)
    bpda = accuracy(classifier_ckpt, *squeeze, "attack.bpda=true")
    print(f"bit_depth bits=3: clean {plain['clean_accuracy']:.3f}, PGD {plain['accuracy']:.3f}, "
          f"PGD+BPDA {bpda['accuracy']:.3f}")
    assert plain["accuracy"] > plain["clean_accuracy"] - 0.05  # only the random start moved it
    assert bpda["accuracy"] < plain["accuracy"] - 0.3, (plain, bpda)


def test_bit_depth_quantises_and_bpda_changes_only_the_backward_pass(fashion_root):
    from robustbench_cli.data.idx_files import read_idx_ubyte

    x = read_idx_ubyte(fashion_root / "t10k-images-idx3-ubyte.gz")[:8].unsqueeze(1) / 255
    squeeze = BitDepth(2)
    levels = squeeze(x) * 3  # 2 bits: 0, 1/3, 2/3, 1
    torch.testing.assert_close(levels, levels.round())
    assert len(levels.unique()) == 4 and (squeeze(x) - x).abs().max() <= 1 / 6 + 1e-6
    x.requires_grad_(True)
    weights = torch.randn_like(x)
    (masked,) = torch.autograd.grad((squeeze(x) * weights).sum(), x)
    assert not masked.any()  # round's gradient: zero almost everywhere
    with straight_through(squeeze):
        out = squeeze(x)
        (passed,) = torch.autograd.grad((out * weights).sum(), x)
    assert torch.equal(out, squeeze(x))  # the same forward, exactly
    assert torch.equal(passed, weights)  # the identity backward
    assert not squeeze.straight_through  # switched back on exit


def test_input_noise_is_fresh_every_pass_and_repeats_with_the_seed():
    x = torch.full((4, 1, 28, 28), 0.5)
    first, again, other = InputNoise(0.1, seed=1), InputNoise(0.1, seed=1), InputNoise(0.1, seed=2)
    draws = [first(x) for _ in range(2)]
    assert not torch.equal(draws[0], draws[1])
    assert all(torch.equal(d, again(x)) for d in draws)
    assert not torch.equal(draws[0], other(x))
    assert draws[0].min() >= 0 and draws[0].max() <= 1
    assert (draws[0] - x).std().item() == pytest.approx(0.1, rel=0.05)


def test_eot_averages_each_gradient_and_counts_every_pass(classifier_ckpt):
    from robustbench_cli.checkpoints import load_classifier

    model = load_classifier(classifier_ckpt)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    single = attacks.build("fgsm", model, eps=EPS)
    averaged = attacks.build("fgsm", model, eps=EPS, eot_samples=3)
    # A deterministic model: the mean of three equal gradients is the gradient.
    torch.testing.assert_close(averaged(x, y), single(x, y))
    assert averaged.stats["gradient_passes"] == 3 * single.stats["gradient_passes"] == 48


def test_eot_and_bpda_reach_every_spec_as_typed():
    """One attack or a list; the fgsm_pred companion and the sanity check keep them too."""
    from robustbench_cli.commands.eval import attack_specs

    overrides = ["attack=pgd_linf", "attack.eot_samples=8", "attack.bpda=true"]
    [spec], _ = attack_specs(compose("eval", *overrides), overrides)
    assert (spec.params["eot_samples"], spec.params["bpda"]) == (8, True)
    [(check, _)] = sanity_specs([AttackSpec("fgsm", {"label": True, "bpda": True})], 784)
    assert (check.name, check.params) == ("pgd_linf", {"bpda": True})
    overrides = ["attack=[fgsm,pgd_linf]", "attack.eot_samples=8"]
    specs, several = attack_specs(compose("eval", *overrides), overrides)
    assert several and {s.name: s.params["eot_samples"] for s in specs} == {
        "fgsm": 8, "pgd_linf": 8, "fgsm_pred": 8}
    assert [s for s in specs if s.name == "fgsm_pred"][0].params["label"] == "pred"


@pytest.mark.parametrize(("name", "params", "message"), [
    ("pgd_linf", {"eot_samples": 0}, "eot_samples must be a positive integer or null, got 0"),
    ("fgsm", {"eot_samples": 2.5}, "eot_samples must be a positive integer or null, got 2.5"),
    ("pgd_linf", {"bpda": "maybe"}, "bpda must be true or false or null, got 'maybe'"),
    ("pgd_linf", {"bpda": True}, "bpda=true differentiates through a non-differentiable"),
    ("nes", {"eot_samples": 4}, "this attack takes none (it only reads the model's outputs)"),
    ("gaussian", {"bpda": True}, "this attack takes none"),
])
def test_bad_adaptive_parameters_raise_user_error(name, params, message, classifier_ckpt):
    from robustbench_cli.checkpoints import load_classifier

    with pytest.raises(UserError, match=f"^attack {name}: ") as error:
        attacks.build(name, load_classifier(classifier_ckpt), eps=EPS, **params)
    assert message in str(error.value)


@pytest.mark.slow  # make test-all: keeps make test under 10 minutes
def test_eval_names_the_defense_repeats_exactly_and_train_refuses_it(trained, classifier_ckpt):
    work = trained[0]
    # One sweep over both defenses per process: two processes must give the same numbers.
    sweep = ["eval", "-m", f"ckpt_path={classifier_ckpt}", "dataset.limit_test=200", f"eps={EPS}",
             "defense=input_noise,bit_depth", "attack=[fgsm,pgd_linf]", "attack.eot_samples=2",
             "progress=false", "sanity=false"]
    first, second, train = robust_many([[*sweep, "hydra.sweep.dir=sweep_1"],
                                        [*sweep, "hydra.sweep.dir=sweep_2"],
                                        ["train", "defense=bit_depth", "hydra.run.dir=refused"]], work)

    def rows(sweep_dir, job):
        return json.loads((work / sweep_dir / str(job) / "results.json").read_text())

    def numbers(rows):
        return [(r["attack"], r["accuracy"], r["correct"], r["clean_accuracy"]) for r in rows]

    ok(first)
    ok(second)
    for job, (name, params) in enumerate([("input_noise", {"sigma": 0.1}), ("bit_depth", {"bits": 3})]):
        assert numbers(rows("sweep_1", job)) == numbers(rows("sweep_2", job))
        assert {r["attack"] for r in rows("sweep_1", job)} == {"fgsm", "fgsm_pred", "pgd_linf",
                                                               "worst_case"}
        for row in rows("sweep_1", job):
            assert (row["defense"], row["threat"]) == (name, "full")
            assert row["defense_params"] == {**params, "classifier_defense": {"name": "none"}}
            assert row["attack"] == "worst_case" or row["params"]["eot_samples"] == 2
    assert train.returncode == 2 and train.stderr.strip() == (
        "robust train: error: defense=bit_depth is an eval-time defense with nothing to train: "
        "train the classifier with defense=none (or noise_train), then robust eval "
        "ckpt_path=CLASSIFIER defense=bit_depth")


def test_every_gradient_attack_config_lists_the_adaptive_keys():
    """So `attack.bpda=true` works as typed for each, and reaches every attack of a list."""
    from robustbench_cli.config import load_group_option

    for name in set(attacks.ATTACK_NAMES) - {"none"}:
        cls = attacks.attack_class(name)
        keys = set(load_group_option("attack", name))
        if cls.uses_gradients:
            expected = {"bpda"} if name == "torchattacks" else {"eot_samples", "bpda"}
            assert expected <= keys, name
        else:
            assert not {"eot_samples", "bpda"} & keys, name


def test_restarts_disagree_on_a_randomized_model_and_agree_on_a_plain_one(classifier_ckpt):
    # Each restart of PGD without EOT follows other noise draws, so late restarts keep finding
    # new adversarial points; on the deterministic model the first restart finds nearly all.
    restarts = ["attack=pgd_linf", "attack.restarts=3"]
    plain = accuracy(classifier_ckpt, *restarts)
    noisy = accuracy(classifier_ckpt, "defense=input_noise", "defense.sigma=0.3", *restarts,
                     "attack.eot_samples=2")
    counts = [plain[f"fooled_by_restart_{r}"] for r in (1, 2, 3)]
    print(f"fooled first by restart 1-3: plain {counts}, "
          f"input_noise {[noisy[f'fooled_by_restart_{r}'] for r in (1, 2, 3)]}")
    assert counts[0] > 10 * max(counts[2], 1)
    assert not [n for n in table_notes([plain]) if "restarts disagree" in n]
    [note] = [n for n in table_notes([noisy]) if "restarts disagree" in n]
    assert note.startswith("pgd_linf at eps=0.1: its last restart (3 of 3) still fooled")
    assert "fooled_by_restart_1" not in accuracy(classifier_ckpt, "attack=pgd_linf")


@pytest.mark.parametrize("name", ["pgd_linf", "apgd", "fab"])
def test_later_restarts_only_add_foolings_and_count_them(classifier_ckpt, name):
    # With top-5 stopping a top-1-fooled point is rerun by the next restart; whatever that
    # restart reaches, the point stays fooled, so more restarts never raise top-1 accuracy.
    target, view = eval_view(classifier_ckpt, limit_test=300)
    points = [target.test_set[i] for i in range(300)]
    x, y = torch.stack([p[0] for p in points]), torch.tensor([p[1] for p in points])
    fooled = {}
    for restarts in (1, 3):
        attack = attacks.build(name, view.model, eps=0.05, steps=5, restarts=restarts)
        attack.stop_at(5)
        with torch.no_grad():
            fooled[restarts] = view.model(attack(x, y)).argmax(1) != y
    assert (fooled[3] | ~fooled[1]).all()
    counts = [attack.stats[f"fooled_by_restart_{r}"] for r in (1, 2, 3)]
    assert sum(counts) == int(fooled[3].sum()) and counts[0] == int(fooled[1].sum())


def test_autoattack_plus_reports_its_members_restarts_and_the_notes_check_each(classifier_ckpt):
    # plus runs APGD-CE, APGD-DLR and FAB with 5 restarts: each member's per-restart counts
    # reach the row, and on a deterministic model they add up to the points it fooled first.
    # Top-1 stopping: every member then attacks only correctly classified points.
    target, view = eval_view(classifier_ckpt, "attack=autoattack", "attack.version=plus",
                             "attack.steps=3", "attack.queries=50", limit_test=300)
    [row] = evaluate(view.model, target.test_set, view.specs, [EPS], top5="false",
                     progress=False, device="cpu")
    for member in ("apgd_ce", "apgd_dlr", "fab"):
        counts = [row[f"{member}_fooled_by_restart_{r}"] for r in range(1, 6)]
        assert sum(counts) == row[f"fooled_by_{member}"], (member, counts, row)
    assert row["fooled_by_apgd_ce"] > 0 and "apgd_t_fooled_by_restart_1" not in row
    # The restart check reads each member's counts on its own.
    disagreeing = {**row, "apgd_dlr_fooled_by_restart_5": row["n"] // 10}
    [note] = [n for n in table_notes([disagreeing]) if "restarts disagree" in n]
    assert note.startswith("autoattack's apgd_dlr at eps=0.1: its last restart (5 of 5) still "
                           f"fooled {row['n'] // 10} points")
