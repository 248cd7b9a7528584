"""`robust detect`: thresholds, ROC and the SPRT on synthetic scores; the confidence-ratio and
mutation detectors on a real MLP trained on Fashion-MNIST; the real command and its sweeps."""

import csv
import json
import os
import shutil

import pytest
import torch
from helpers import FASHION, compose, ok, robust

from robustbench_cli import load_classifier
from robustbench_cli.detectors import DETECTOR_NAMES, build
from robustbench_cli.detectors.confidence import inverse_ratio, resolve_outputs
from robustbench_cli.detectors.mutants import OPERATORS, MutantModel, mutable_layers, mutable_weights
from robustbench_cli.detectors.mutation import confidence_bound
from robustbench_cli.detectors.roc import roc_auc, roc_curve
from robustbench_cli.detectors.runner import calibration_split, run_detection
from robustbench_cli.detectors.sprt import SPRT
from robustbench_cli.detectors.thresholds import threshold_for_fpr
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Detection runs many small forward passes (one per mutant and SPRT step); on a shared 2-core
# machine a second OpenMP thread mostly waits for a busy core, so these tests use one.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# --- threshold, ROC, SPRT, split: synthetic scores -------------------------------------------


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.1, 0.29, 0.5])
def test_threshold_for_fpr_rejects_at_most_the_target_share(fpr):
    scores = torch.randn(1000, generator=torch.Generator().manual_seed(3))
    threshold = threshold_for_fpr(scores, fpr)
    rejected = int((scores > threshold).sum())
    assert rejected == int(fpr * 1000 + 1e-9)  # distinct scores: exactly floor(fpr * n)
    # The smallest such threshold: any lower one rejects too many.
    assert int((scores > threshold - 1e-6).sum()) > fpr * 1000


def test_threshold_for_fpr_keeps_tied_scores_accepted():
    scores = torch.tensor([0.0] * 90 + [1.0] * 10)
    assert threshold_for_fpr(scores, 0.05) == 1.0  # rejecting the tied 1s would give 10%
    assert threshold_for_fpr(scores, 0.1) == 0.0  # exactly the ten 1s are above 0


@pytest.mark.parametrize("fpr", [0, 1, -0.1, "a lot"])
def test_threshold_for_fpr_refuses_a_rate_outside_0_1(fpr):
    with pytest.raises(UserError, match="fpr"):
        threshold_for_fpr(torch.rand(10), fpr)


def test_roc_auc_is_the_share_of_positive_negative_pairs_ranked_right():
    generator = torch.Generator().manual_seed(0)
    negatives = torch.randint(0, 20, (300,), generator=generator).double()
    positives = torch.randint(5, 25, (200,), generator=generator).double()  # many ties
    pairs = (positives[:, None] > negatives[None]).double() + 0.5 * (positives[:, None] == negatives[None])
    assert roc_auc(negatives, positives) == pytest.approx(pairs.mean().item(), abs=1e-12)
    assert roc_auc([0, 1], [2, 3]) == 1.0 and roc_auc([2, 3], [0, 1]) == 0.0
    assert roc_auc([1, 1], [1, 1, 1]) == 0.5
    assert roc_auc([0.0, float("inf")], [float("inf")]) == 0.75


def test_roc_curve_runs_from_0_0_to_1_1_and_never_falls():
    fpr, tpr = roc_curve([0.1, 0.4, 0.35, 0.8], [0.9, 0.4, 0.6])
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert fpr == sorted(fpr) and tpr == sorted(tpr)
    assert (0.0, 1 / 3) in zip(fpr, tpr)  # above 0.8 only the positive at 0.9


def test_sprt_decides_early_on_clear_inputs_and_waits_on_unclear_ones():
    test = SPRT(threshold=0.1, alpha=0.05, beta=0.05, indifference=0.5)
    drawn = torch.arange(1, 101, dtype=torch.float64)
    always = test.verdicts(drawn, drawn)[0]  # every mutant changes the label
    never = test.verdicts(torch.zeros(100), drawn)[1]
    assert always.nonzero()[0].item() + 1 <= 3  # adversarial after at most three mutants
    assert 10 < never.nonzero()[0].item() + 1 < 50  # normal well before a cap of 100
    adversarial, normal = test.verdicts(torch.tensor([1.0]), torch.tensor([10.0]))  # at threshold
    assert not adversarial.item() and not normal.item()
    with pytest.raises(UserError, match="no room for the test"):
        SPRT(threshold=0.8, alpha=0.05, beta=0.05, indifference=0.5)


def test_calibration_split_is_seeded_disjoint_and_complete():
    calibration, evaluation = calibration_split(101, 0.3, seed=5)
    assert (calibration, evaluation) == calibration_split(101, 0.3, seed=5)
    assert calibration != calibration_split(101, 0.3, seed=6)[0]
    assert len(calibration) == 30 and sorted(calibration + evaluation) == list(range(101))
    with pytest.raises(UserError, match="no evaluation points"):
        calibration_split(3, 0.9, seed=0)


def test_inverse_ratio_on_probabilities_and_on_logits():
    logits = torch.tensor([[2.0, 1.0, -3.0], [4.0, -1.0, -2.0], [-1.0, -2.0, -3.0]])
    probs = logits.softmax(1).double()
    assert torch.allclose(inverse_ratio(logits, "probs"), probs.topk(2).values[:, 1] / probs.max(1).values)
    on_logits = inverse_ratio(logits, "logits")
    assert on_logits[0] == 0.5 and on_logits[1] == -0.25  # only the top output positive: confident
    assert on_logits[2] == float("inf")  # no positive output: nothing claimed
    assert resolve_outputs("auto", "lq") == "logits" and resolve_outputs("auto", "sce") == "probs"
    with pytest.raises(UserError, match="softmax"):
        resolve_outputs("probs", "lq")


def test_build_checks_detector_parameters():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with pytest.raises(UserError, match="unknown detector"):
        build("magnet", model)
    with pytest.raises(UserError, match="unknown parameter 'fpt'"):
        build("confidence_ratio", model, fpt=0.1)
    with pytest.raises(UserError, match="operators must be"):
        build("mutation", model, operators=["gf", "flip"])
    with pytest.raises(UserError, match="rate must be between 0 and 1"):
        build("mutation", model, rate=1.5)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("undecided", "maybe", "undecided must be one of normal, adversarial, threshold, got 'maybe'"),
    ("threshold_rule", "max", "threshold_rule must be one of confidence_bound, margin, got 'max'"),
    ("selection", "layer", "selection must be one of global, per_layer, got 'layer'"),
    ("neuron_side", True, "neuron_side must be one of incoming, outgoing, got True"),
    ("normal_inputs", "clean", "normal_inputs must be one of correct, all, got 'clean'"),
    ("rho", 0, "rho must be > 0, got 0.0"),
    ("confidence", 1, "confidence must be between 0 and 1 (exclusive), got 1.0"),
    ("indifference", 0, "indifference must be between 0 and 1 (exclusive), got 0.0"),
])
def test_mutation_options_are_checked_with_one_line_errors(key, value, message):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with pytest.raises(UserError) as error:
        build("mutation", model, **{key: value})
    assert str(error.value) == f"detector mutation: {message}"


# --- mutation operators and decisions on tiny synthetic models --------------------------------


def tiny_mlp(seed=0):
    with torch.random.fork_rng():  # seeded weights, the global generator left as it was
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(6, 20), torch.nn.ReLU(), torch.nn.Linear(20, 20),
                                   torch.nn.ReLU(), torch.nn.Linear(20, 10))  # 50 neurons


def test_nai_negates_the_pre_activation_of_a_rate_share_of_neurons_output_layer_included():
    model = tiny_mlp()
    original = {key: value.clone() for key, value in model.state_dict().items()}
    mutant_model = MutantModel(model)  # the paper's defaults: global selection, incoming side
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    hits = torch.zeros(3)
    for _ in range(40):
        mutant = mutant_model.draw("nai", 0.1, generator)
        flipped, h = [], x
        with torch.no_grad(), mutant_model.applied(mutant) as mutated:
            for m, c in zip(mutable_layers(mutated), mutable_layers(model)):
                mutated_pre, clean_pre = m(h), c(h)  # the same (clean) input to both
                same = torch.isclose(mutated_pre, clean_pre).all(0)
                negated = torch.isclose(mutated_pre, -clean_pre).all(0) & ~same
                assert (same | negated).all()  # every neuron is either kept or sign-flipped
                flipped.append(int(negated.sum()))
                h = torch.relu(clean_pre)
        assert sum(flipped) == 5  # floor(0.1 x 50 neurons), drawn from the whole model
        hits += torch.tensor(flipped).clamp(max=1)
    assert (hits > 0).all()  # over 40 mutants every layer is hit, the 10 outputs included
    with torch.no_grad():
        assert torch.equal(mutant_model.model(x), model(x))  # the private copy is restored
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_per_layer_selection_and_ns_follow_their_counting_rules():
    model = tiny_mlp()
    per_layer = MutantModel(model, selection="per_layer")
    mutant = per_layer.draw("nai", 0.1, torch.Generator().manual_seed(0))
    rows = {patch.tensor: len(patch.index) for patch in mutant.patches}
    # round(0.1 x 20) = 2 neurons in each hidden layer, round(0.1 x 10) = 1 output neuron:
    # weights (fan-in x neurons) and biases of each layer.
    assert rows == {0: 2 * 6, 1: 2, 2: 2 * 20, 3: 2, 4: 1 * 20, 5: 1}
    # ns: ceil(0.1 x 20) = 2 neurons switch in each hidden layer (weights and bias move
    # together); the output layer's ceil(0.1 x 10) = 1 neuron is no switch: it stays.
    ns_model = MutantModel(model)
    mutant = ns_model.draw("ns", 0.1, torch.Generator().manual_seed(0))
    with torch.no_grad(), ns_model.applied(mutant) as mutated:
        for layer, (m, c) in enumerate(zip(mutable_layers(mutated), mutable_layers(model))):
            moved = ~(torch.isclose(m.weight, c.weight).all(1) & torch.isclose(m.bias, c.bias))
            assert int(moved.sum()) == (2 if layer < 2 else 0)
            pairs = torch.cat([m.weight, m.bias[:, None]], 1)[moved]
            clean = torch.cat([c.weight, c.bias[:, None]], 1)[moved]
            assert torch.equal(pairs, clean.flip(0))  # the two neurons traded places
    with pytest.raises(UserError, match="changes nothing"):
        MutantModel(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))).draw(
            "ns", 0.1, torch.Generator())


@pytest.mark.parametrize("operator", OPERATORS)
def test_each_operator_on_a_conv_net_mutates_the_copy_only(operator):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 12, 3), torch.nn.ReLU(), torch.nn.Conv2d(12, 16, 3),
                                    torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10)).eval()
    original = {key: value.clone() for key, value in model.state_dict().items()}
    mutant_model = MutantModel(model)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    mutant = mutant_model.draw(operator, 0.1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        with mutant_model.applied(mutant) as mutated:
            assert not torch.allclose(mutated(x), model(x))
        assert torch.equal(mutant_model.model(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key
    if operator == "nai":  # floor(0.1 x 38 neurons) = 3 channels or outputs: weights and bias
        assert sum(len(p.index) for p in mutant.patches if p.tensor % 2) == 3


class _Data(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def calibrated(**params):
    """A mutation detector calibrated on 200 random inputs to a tiny MLP, half of them
    labelled as the model predicts (the "correct" ones), half with another label."""
    model = tiny_mlp().eval()
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        predicted = model(x).argmax(1)
    y = torch.where(torch.arange(200) < 100, predicted, (predicted + 1) % 10)
    detector = build("mutation", model, **{"max_mutants": 30, "min_accuracy_ratio": 0.0, **params})
    detector.calibrate(torch.utils.data.DataLoader(_Data(x, y), batch_size=64), torch.device("cpu"), 0)
    return detector, x


def test_confidence_bound_is_the_upper_end_of_the_mean_interval():
    values = torch.tensor([0.0, 0.02, 0.04, 0.1, 0.0, 0.06])
    mean, std = values.double().mean(), values.double().std(unbiased=False)
    assert confidence_bound(values, 0.99) == pytest.approx(float(mean + 2.5758293 * std / 6 ** 0.5))
    assert confidence_bound(values, 0.95) == pytest.approx(float(mean + 1.959964 * std / 6 ** 0.5))


def test_threshold_rules_use_the_normal_label_change_rate():
    detector, _ = calibrated(rho=1.5)
    summary = detector.summary()
    assert summary["n_normal"] == 100  # only the inputs the model gets right (normal_inputs=correct)
    assert summary["normal_sensitivity"] < summary["normal_sensitivity_bound"]
    assert summary["threshold"] == pytest.approx(1.5 * summary["normal_sensitivity_bound"])
    assert summary["threshold_from"] == "rho=1.5 x 0.99 upper bound of the normal sensitivity"
    old, _ = calibrated(threshold_rule="margin", margin=2.0, normal_inputs="all")
    assert old.summary()["n_normal"] == 200
    assert old.summary()["threshold"] == pytest.approx(2.0 * old.summary()["normal_sensitivity"])
    assert old.summary()["threshold_from"] == "margin=2 x normal sensitivity"


@pytest.mark.parametrize("undecided", ["normal", "adversarial", "threshold"])
def test_inputs_undecided_when_the_mutants_run_out_get_the_configured_verdict(undecided):
    # Three mutants cannot decide anything: the SPRT needs ~15 label changes to say adversarial
    # at threshold 0.3, indifference 0.1, and even more non-changes to say normal.
    detector, x = calibrated(max_mutants=3, threshold=0.3, undecided=undecided)
    decisions = detector.decide(x)
    assert (decisions.mutants_used == 3).all()
    expected = {"normal": torch.zeros(200, dtype=torch.bool),
                "adversarial": torch.ones(200, dtype=torch.bool),
                "threshold": decisions.scores > 0.3}[undecided]
    assert torch.equal(decisions.rejected, expected)


def test_detector_configs_match_the_registry_and_compose_with_every_experiment():
    from importlib import resources

    shipped = resources.files("robustbench_cli.conf") / "detector"
    assert sorted(p.name[:-5] for p in shipped.iterdir() if p.name.endswith(".yaml")) == list(DETECTOR_NAMES)
    for name in DETECTOR_NAMES:
        config = detector_config(name)
        assert config.pop("name") == name and 0 < config.pop("calibration_fraction") < 1
        build(name, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)),
              **config)  # the shipped defaults pass the checks
    experiments = resources.files("robustbench_cli.conf") / "experiment"
    for experiment in (p.name[:-5] for p in experiments.iterdir() if p.name.endswith(".yaml")):
        assert compose("detect", f"experiment={experiment}").detector.name == "confidence_ratio"


def test_sweep_summary_of_detection_rows_has_a_table_per_measure(tmp_path):
    from robustbench_cli.reporting import aggregate_sweep, write_job_failure
    from robustbench_cli.reporting.detection import write_detection_results

    def job(name, overrides):
        folder = tmp_path / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
        return folder

    shared = {"n": 100, "n_calibration": 100, "false_positive_rate": 0.05, "model": "mlp"}
    for name, detector in (("0", "confidence_ratio"), ("1", "mutation")):
        write_detection_results(job(name, [f"detector={detector}", "attack=fgsm", "eps=0.1"]), [
            {"attack": "none", "eps": 0.0, "accuracy": 0.8, "detector": detector, **shared},
            {"attack": "fgsm", "eps": 0.1, "accuracy": 0.6, "detection_rate": 0.75, "roc_auc": 0.875,
             "detector": detector, **shared},
        ])
    failing = ["detector=mutation", "attack=pgd_linf"]
    write_job_failure(job("2", failing), failing, "boom")
    aggregate_sweep(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "| mutation | fgsm | 5.00 | 75.00 |" in summary  # detection rate
    assert "| mutation | fgsm | 5.00 | 0.875 |" in summary  # ROC AUC
    assert "| confidence_ratio | none | 5.00 | 80.00 | - |" in summary  # accuracy with reject
    assert "## Failed jobs" in summary and "boom" in summary
    with open(tmp_path / "summary.csv") as handle:
        records = list(csv.DictReader(handle))
    assert {r["measure"] for r in records if r["status"] == "ok"} == {"detection_rate", "roc_auc", "accuracy"}
    assert [(r["job"], r["attack"]) for r in records if r["status"] == "failed"] == [("2", "pgd_linf")]


# --- a real model: MLP trained for an epoch on Fashion-MNIST ---------------------------------


@pytest.fixture(scope="module")
def model(trained):
    _, metrics, run_dir = trained
    return load_classifier(run_dir / metrics["checkpoint"])


@pytest.fixture(scope="module")
def test_set(trained):
    """1,000 Fashion-MNIST test images: 500 to calibrate on, 500 to report on."""
    from robustbench_cli.data import RobustDataModule

    cfg = compose("detect", "dataset=fashion_mnist", f"dataset.root={FASHION}", "dataset.limit_test=1000")
    return RobustDataModule(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed).test_dataset()


def detector_config(name, *overrides) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose("detect", f"detector={name}", *overrides).detector)


def attack(name, *overrides) -> AttackSpec:
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose("detect", f"attack={name}", *overrides).attack)
    return AttackSpec(config.pop("name"), config)


@pytest.mark.parametrize("operator", OPERATORS)
def test_each_earlier_mutation_operator_changes_the_model_and_leaves_the_original_untouched(model, operator):
    """The project's earlier operators (per-layer counts, nai and ns on outgoing weights)."""
    original = {key: value.clone() for key, value in model.state_dict().items()}
    mutant_model = MutantModel(model, selection="per_layer", neuron_side="outgoing")
    mutant = mutant_model.draw(operator, 0.05, torch.Generator().manual_seed(0))
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), mutant_model.applied(mutant) as mutated:
        mutated_weights = [w.detach().clone() for w in mutable_weights(mutated)]
        mutated_logits = mutated(x)
    clean_weights = mutable_weights(model)
    changed_layers = [i for i, (mutated_weight, clean) in enumerate(zip(mutated_weights, clean_weights))
                      if not torch.equal(mutated_weight, clean)]
    # nai and ns act on neurons, which feed the layers after the first (the pixels feed the first).
    assert changed_layers == ([1, 2] if operator in ("nai", "ns") else [0, 1, 2])
    for mutated_weight, clean in zip(mutated_weights, clean_weights):
        if operator == "nai":  # some input columns flipped sign, nothing else
            flipped = ~torch.isclose(mutated_weight, clean)
            assert torch.equal(mutated_weight[flipped], -clean[flipped])
        if operator in ("ns", "ws"):  # weights only moved around
            assert torch.equal(mutated_weight.flatten().sort().values, clean.flatten().sort().values)
    with torch.no_grad():
        assert not torch.allclose(mutated_logits, model(x))
        assert torch.equal(mutant_model.model(x), model(x))  # the private copy is restored too
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_confidence_ratio_separates_pgd_examples_at_the_requested_fpr(model, test_set):
    pgd = attack("pgd_linf", "attack.steps=10")
    report = run_detection(model, test_set, detector_config("confidence_ratio", "detector.fpr=0.1"),
                           [pgd], [0.05, 0.1], progress=False)
    clean, *attacked = report.rows
    assert (clean["attack"], clean["n"], clean["n_calibration"]) == ("none", 500, 500)
    # The threshold came from the calibration half; on the held-out half the rate stays near.
    assert abs(clean["false_positive_rate"] - 0.1) < 0.05
    for row in attacked:
        assert row["n_successful"] > 30
        assert row["roc_auc"] > 0.8  # chance is 0.5
        assert row["detection_rate"] > row["false_positive_rate"] + 0.25
        assert row["accuracy"] > row["accuracy_without_detector"]  # rejecting helps under attack
    assert clean["accuracy"] < clean["accuracy_without_detector"]  # and costs a little when clean
    assert set(report.roc_curves) == {"pgd_linf eps=0.05", "pgd_linf eps=0.1"}


def test_all_points_detection_attacks_every_point_and_counts_clean_wrong_ones_apart(model, test_set):
    fgsm = attack("fgsm")
    config = detector_config("confidence_ratio", "detector.fpr=0.1")
    robust_rows = run_detection(model, test_set, config, [fgsm], [0.1], progress=False).rows
    report = run_detection(model, test_set, config, [fgsm], [0.1], protocol="all_points", progress=False)
    clean, row = report.rows
    robust_row = robust_rows[1]
    wrong = round(clean["n"] * (1 - clean["accuracy_without_detector"]))
    assert (row["protocol"], robust_row["protocol"]) == ("all_points", "robust")
    assert row["n_attacked"] == clean["n"] and robust_row["n_attacked"] == clean["n"] - wrong
    assert row["n_clean_wrong"] == wrong > 0 and robust_row["n_clean_wrong"] == 0
    # Every clean-wrong point stays wrong under true-label FGSM, so it counts as fooled too;
    # among the clean-correct fooled points both protocols detect the same share.
    assert row["n_successful"] == robust_row["n_successful"] + wrong
    assert row["detection_rate_clean_correct"] == pytest.approx(robust_row["detection_rate"])
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]


def test_mutation_detects_most_successful_fgsm_and_pgd_examples_with_the_papers_settings(model, test_set):
    # eps 0.02 only: with the paper's SPRT (indifference 0.1 x threshold, up to 500 mutants) a
    # normal input takes a few hundred mutants to decide, so each attack x eps costs seconds.
    specs = [attack("fgsm"), attack("pgd_linf", "attack.steps=10")]
    report = run_detection(model, test_set, detector_config("mutation"), specs, [0.02],
                           progress=False)
    rows = {(row["attack"], row["eps"]): row for row in report.rows}
    clean = rows["none", 0.0]
    assert clean["mutants"] == 500 and 0 < clean["normal_sensitivity"] < 0.2
    # Threshold: the upper end of the 99% interval of the correct inputs' mean sensitivity.
    assert clean["threshold"] == clean["normal_sensitivity_bound"] > clean["normal_sensitivity"]
    # That bound sits close to the mean, not at a quantile, so some normal inputs exceed it;
    # with this one-epoch model (~75% clean accuracy) they are mostly the misclassified ones,
    # which the paper counts as detectable too. Measured: 0.27.
    assert clean["false_positive_rate"] <= 0.35
    for key, detected in ((("fgsm", 0.02), 0.8), (("pgd_linf", 0.02), 0.8)):
        assert rows[key]["n_successful"] >= 25
        assert rows[key]["detection_rate"] > detected, key  # measured: 1.0 and 1.0
        assert rows[key]["roc_auc"] > 0.85, key  # measured: 0.91 and 0.97
    for row in report.rows:  # many inputs decide before the cap of 500 mutants
        assert 20 < row["mean_mutants"] < 400, (row["attack"], row["eps"])


# --- the real command --------------------------------------------------------------------------


def test_robust_detect_writes_results_and_plots(trained):
    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]
    out = ok(robust("detect", f"ckpt_path={ckpt}", "detector=confidence_ratio", "attack=pgd_linf",
                    "eps=[0,0.05,0.1]", "attack.steps=5", "dataset.limit_test=300",
                    "hydra.run.dir=detect_run", cwd=work, env=ONE_THREAD))
    folder = work / "detect_run"
    assert f"results in {folder}" in out.stdout
    rows = json.loads((folder / "results.json").read_text())
    assert [(row["attack"], row["eps"]) for row in rows] == [
        ("none", 0.0), ("pgd_linf", 0.05), ("pgd_linf", 0.1)]
    for row in rows:
        assert row["detector"] == "confidence_ratio" and row["dataset"] == "fashion_mnist"
        assert row["n"] == 150 and row["n_calibration"] == 150
        assert row["threshold_from"] == "fpr=0.05" and row["on"] == "probs"
    assert rows[2]["n_successful"] <= rows[2]["n_attacked"] and rows[2]["roc_auc"] > 0.5
    with open(folder / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    assert "| pgd_linf | 0.1 |" in (folder / "results.md").read_text()
    for png in ("score_cdf.png", "roc.png"):
        assert (folder / png).read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((folder / "run.json").read_text())["config"]["detector"]["name"] == "confidence_ratio"


@pytest.mark.slow  # make test-all: two detect runs with mutation testing (~25 s)
def test_interrupted_detect_resumes_with_only_the_missing_rows(trained):
    work, metrics, run_dir = trained
    args = ["detect", f"ckpt_path={run_dir / metrics['checkpoint']}", "detector=confidence_ratio",
            "attack=[fgsm,pgd_linf]", "eps=[0.05,0.1]", "attack.steps=5", "dataset.limit_test=300",
            "progress=false"]
    ok(robust(*args, "hydra.run.dir=whole", cwd=work, env=ONE_THREAD))
    shutil.copytree(work / "whole", work / "cut")
    # An interruption after two attack rows: results.json held only those (points.npz more).
    results = work / "cut" / "results.json"
    results.write_text(json.dumps(json.loads(results.read_text())[1:3]))
    out = ok(robust(*args, "hydra.run.dir=cut", "resume=true", cwd=work, env=ONE_THREAD))
    assert "2 finished row(s) kept" in out.stdout

    def table(folder):
        rows = json.loads((work / folder / "results.json").read_text())
        return [(r["attack"], r["eps"], r["accuracy"], r.get("detection_rate"), r.get("n_successful"),
                 r.get("roc_auc")) for r in rows]

    assert table("cut") == table("whole") and len(table("whole")) == 5
    other = robust(*args, "hydra.run.dir=cut", "resume=true", "protocol=all_points", cwd=work,
                   env=ONE_THREAD)
    assert other.returncode == 2 and "cannot resume" in other.stderr


def test_robust_detect_multirun_summarises_both_detectors(trained):
    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]
    ok(robust("detect", "-m", f"ckpt_path={ckpt}", "detector=confidence_ratio,mutation",
              "attack=fgsm", "eps=0.05", "dataset.limit_test=200", "detector.calibration_fraction=0.5",
              "hydra.sweep.dir=detect_sweep", "progress=false", cwd=work, env=ONE_THREAD))
    sweep = work / "detect_sweep"
    summary = (sweep / "summary.md").read_text()
    assert "2 job(s) succeeded, 0 failed" in summary
    assert "## Detection rate (%) on successful adversarial examples" in summary
    assert "## ROC AUC" in summary
    assert "| detector | attack | FPR | eps=0 | eps=0.05 |" in summary
    with open(sweep / "summary.csv") as handle:
        records = list(csv.DictReader(handle))
    lines = {(r["measure"], r["detector"], r["attack"]) for r in records}
    assert {("roc_auc", "mutation", "fgsm"), ("detection_rate", "confidence_ratio", "fgsm")} <= lines
    assert not (sweep / "accuracy_vs_eps.png").exists()


def test_robust_detect_bad_detector_value_is_one_line(trained):
    work, metrics, run_dir = trained
    process = robust("detect", f"ckpt_path={run_dir / metrics['checkpoint']}", "detector=mutation",
                     "detector.rate=2", "dataset.limit_test=50", cwd=work, env=ONE_THREAD)
    assert process.returncode == 2
    assert process.stderr.strip() == (
        "robust detect: error: detector mutation: rate must be between 0 and 1 (exclusive), got 2.0")
