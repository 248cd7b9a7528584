"""Training-time defenses on real Fashion-MNIST: each trains, and does what its paper says."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import FASHION, ok, robust, train_in_process

from robustbench_cli import load_classifier
from robustbench_cli.data import RobustDataModule
from robustbench_cli.defenses.adversarial import AdversarialObjective, kurakin_loss, sample_eps
from robustbench_cli.evaluation.runner import AttackSpec, evaluate

SMALL = ["dataset.limit_train=2000", "dataset.limit_test=300", "trainer.max_epochs=1"]
MEDIUM = ["dataset.limit_train=5000", "dataset.limit_test=500", "trainer.max_epochs=3"]


def checkpoint(run_dir, metrics):
    return run_dir / metrics["checkpoint"]


def test_folded_truncated_eps_stays_in_range():
    generator = torch.Generator().manual_seed(0)
    eps = sample_eps(10_000, eps_max=16 / 255, sigma=8 / 255, generator=generator)
    assert eps.min() >= 0 and eps.max() <= 16 / 255
    # |N(0, sigma)| truncated at 2 sigma has mean sigma * sqrt(2/pi) * (1 - e^-2) / erf(sqrt 2)
    expected = 8 / 255 * math.sqrt(2 / math.pi) * (1 - math.exp(-2)) / math.erf(math.sqrt(2))
    assert eps.mean().item() == pytest.approx(expected, rel=0.03)
    assert torch.equal(sample_eps(5, 0.1, None, generator), torch.full((5,), 0.1))


def test_quantised_eps_never_leaves_an_adversarial_slot_clean():
    """Document 004 draws |truncated normal(0, 8)| on [0, 16] (of 255), never exactly 0: the
    levels are 1..16 of 255, a draw below the first goes up to it, and each level gets the
    folded truncated normal's mass of the draws nearest to it."""
    sigma, eps_max, levels, n = 8 / 255, 16 / 255, 16, 200_000
    objective = AdversarialObjective("fgsm", {}, k=None, adv_fraction=0.5, lam=0.3, eps_max=eps_max,
                                     eps_sigma=sigma, eps_levels=levels, delay=0, seed=0)
    eps = objective.quantised_eps(n)
    step = eps_max / levels
    index = (eps / step).round().long()
    assert eps.min().item() == pytest.approx(step) and eps.max().item() == pytest.approx(eps_max)
    assert torch.allclose(eps, index * step)  # integer eps 1..16 of 255

    def cdf(e):  # |N(0, sigma)| truncated to [0, eps_max]
        return math.erf(e / (sigma * math.sqrt(2))) / math.erf(eps_max / (sigma * math.sqrt(2)))

    edges = [0.0] + [(i + 0.5) * step for i in range(1, levels)] + [eps_max]
    expected = torch.tensor([cdf(hi) - cdf(lo) for lo, hi in zip(edges, edges[1:])])
    observed = torch.bincount(index, minlength=levels + 1)[1:].double() / n
    assert (observed - expected).abs().max().item() < 0.005, (observed, expected)
    objective.eps_levels = None  # 004's unrounded eps
    assert objective.quantised_eps(1000).min().item() > 0


def test_kurakin_loss_weights_adversarial_examples_by_lambda():
    clean, adv = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0])
    assert kurakin_loss(clean, adv, lam=0.3).item() == pytest.approx((6 + 0.3 * 10) / (3 + 0.3))
    assert kurakin_loss(clean, adv, lam=1.0).item() == pytest.approx(16 / 4)


def test_adversarial_objective_replaces_exactly_k_rows(fashion_root, trained):
    _, metrics, run_dir = trained
    model = load_classifier(checkpoint(run_dir, metrics)).train()
    data = RobustDataModule({"name": "fashion_mnist", "root": FASHION, "limit_test": 32},
                            data_dir="data").test_dataset()
    x = torch.stack([data[i][0] for i in range(32)])
    y = torch.tensor([data[i][1] for i in range(32)])
    objective = AdversarialObjective("fgsm", {}, k=12, adv_fraction=0.5, lam=0.3, eps_max=0.1,
                                     eps_sigma=0.05, eps_levels=16, delay=0, seed=0)
    x_adv = objective.adversarial(model, x[:12], y[:12])
    assert model.training, "the model must be back in train mode for the update"
    change = (x_adv - x[:12]).abs().flatten(1).amax(1)
    assert change.max() <= 0.1 + 1e-6 and bool((change > 0).all())  # no slot at eps 0

    class Probe(torch.nn.Module):  # the objective's view of a LightningModule
        global_step = 0
        criterion = staticmethod(lambda logits, y: F.cross_entropy(logits, y, reduction="none"))
        model = load_classifier(checkpoint(run_dir, metrics))

        def forward(self, inputs):
            self.seen = inputs
            return self.model(inputs)

    probe = Probe()
    loss, logits, labels = objective(probe, x, y)
    assert torch.equal(probe.seen[12:], x[12:]) and not torch.equal(probe.seen[:12], x[:12])
    losses = F.cross_entropy(logits, y, reduction="none")
    expected = (losses[12:].sum() + 0.3 * losses[:12].sum()) / (20 + 0.3 * 12)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert objective.adversarial_count(64) == 12
    objective.k = None
    assert objective.adversarial_count(64) == 32
    probe.global_step, objective.delay = 0, 5
    objective(probe, x, y)
    assert torch.equal(probe.seen, x), "no adversarial examples during the delay"


def pgd_accuracy(ckpt, eps: float) -> float:
    data = RobustDataModule({"name": "fashion_mnist", "root": FASHION, "limit_test": 500},
                            data_dir="data").test_dataset()
    [row] = evaluate(load_classifier(ckpt), data, [AttackSpec("pgd_linf", {"steps": 20})], [eps],
                     progress=False)
    return row["accuracy"]


@pytest.fixture(scope="module")
def undefended(tmp_path_factory, fashion_root):
    """The MEDIUM-budget model trained without a defense, the baseline of the defenses."""
    run_dir = tmp_path_factory.mktemp("undefended")
    return run_dir, train_in_process(run_dir, *MEDIUM)


def test_pgd_training_raises_pgd_accuracy_by_a_wide_margin(tmp_path, undefended):
    clean_dir, clean = undefended
    pgd = train_in_process(tmp_path / "pgd", *MEDIUM, "defense=pgd_train", "defense.eps_max=0.1",
                           "defense.attack_params.steps=5")
    robust_clean = pgd_accuracy(checkpoint(clean_dir, clean), 0.1)
    robust_pgd = pgd_accuracy(checkpoint(tmp_path / "pgd", pgd), 0.1)
    assert robust_pgd >= robust_clean + 0.20, (robust_clean, robust_pgd)
    assert pgd["test_accuracy"] >= clean["test_accuracy"] - 0.15  # a moderate clean cost
    assert pgd["defense"] == "pgd_train"


def median_input_gradient_norm(model, x, y) -> float:
    """Over the points the model gets right (the ones an attack starts from); the median, as
    a few barely-right points dominate a mean."""
    with torch.no_grad():
        right = model(x).argmax(1) == y
    x, y = x[right].clone().requires_grad_(True), y[right]
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return grad.flatten(1).norm(dim=1).median().item()


def test_distillation_student_matches_teacher_and_flattens_gradients(tmp_path, undefended):
    run_dir = tmp_path / "train" / "distilled"  # where paths.output_dir=tmp_path finds its teacher
    student = train_in_process(run_dir, *MEDIUM, "defense=distillation")
    assert (run_dir / "teacher" / "checkpoints" / "best.ckpt").is_file()
    assert student["test_accuracy"] >= student["teacher_test_accuracy"] - 0.05
    data = RobustDataModule({"name": "fashion_mnist", "root": FASHION, "limit_test": 200},
                            data_dir="data").test_dataset()
    x = torch.stack([data[i][0] for i in range(200)])
    y = torch.tensor([data[i][1] for i in range(200)])
    distilled = load_classifier(checkpoint(run_dir, student))
    undistilled = load_classifier(checkpoint(*undefended))
    with torch.no_grad():
        confidence = F.softmax(distilled(x), 1).amax(1)
    assert confidence.median() > 0.99  # near one-hot at T = 1
    assert median_input_gradient_norm(distilled, x, y) < 0.1 * median_input_gradient_norm(undistilled, x, y)
    check_teacher_temperature(run_dir, checkpoint(*undefended))
    check_teacher_reuse(run_dir, tmp_path)
    # The training recipe named at eval time selects (here: checks) the checkpoint.
    for ckpt, outcome in ((checkpoint(run_dir, student), 0), (checkpoint(*undefended), 2)):
        result = robust("eval", f"ckpt_path={ckpt}", "defense=distillation", "attack=fgsm", "eps=0.1",
                        "dataset.limit_test=100", "sanity=false", "progress=false", cwd=tmp_path)
        assert result.returncode == outcome, result.stderr
    assert "was trained with defense none, not distillation" in result.stderr


def check_teacher_temperature(run_dir, undistilled_ckpt):
    """The kept teacher records T = 20 and is reused by a resumed run at T = 20; a teacher
    trained at another T (the kept one at T = 40, a plain classifier: T = 1) is refused."""
    from helpers import compose

    from robustbench_cli.checkpoints import read_checkpoint
    from robustbench_cli.defenses import plan_training
    from robustbench_cli.errors import UserError

    teacher = run_dir / "teacher" / "checkpoints" / "best.ckpt"
    recorded = read_checkpoint(teacher)["robust"]["defense"]
    assert (recorded["stage"], recorded["temperature"]) == ("teacher", 20)

    def plan(*overrides):
        cfg = compose("train", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                      "dataset.limit_train=200", "defense=distillation", *overrides)
        data = RobustDataModule(cfg.dataset, data_dir="data", seed=0)
        data.prepare_data()

        def no_training(*args, **kwargs):
            raise AssertionError("the kept teacher must be reused, not retrained")

        return plan_training(cfg, data, run_dir / "resumed", no_training, teacher_dir=run_dir)

    assert plan().extra_metrics["teacher_checkpoint"] == str(teacher.resolve())
    with pytest.raises(UserError, match=r"temperature 20\b.*defense.temperature=40\b") as caught:
        plan("defense.temperature=40")
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match=r"temperature 1\b.*defense.temperature=20\b"):
        plan(f"defense.teacher_ckpt={undistilled_ckpt}")
    with pytest.raises(UserError, match=r"temperature 20\b.*defense.temperature=5\b"):
        plan(f"defense.teacher_ckpt={teacher}", "defense.temperature=5")


def check_teacher_reuse(run_dir, output_dir):
    """Another distillation run with the same model, data, seed, optimizer, epochs and T reuses
    the finished teacher under paths.output_dir; one with another seed trains its own."""
    from helpers import compose

    from robustbench_cli.defenses import plan_training

    def plan(*overrides):
        cfg = compose("train", "dataset=fashion_mnist", f"dataset.root={FASHION}", *MEDIUM,
                      "defense=distillation", f"paths.output_dir={output_dir}", *overrides)
        data = RobustDataModule(cfg.dataset, data_dir="data", seed=cfg.seed)
        data.prepare_data()

        def no_training(*args, **kwargs):
            raise AssertionError("retrained")

        return plan_training(cfg, data, output_dir / "another", no_training)

    teacher = run_dir / "teacher" / "checkpoints" / "best.ckpt"
    assert plan().extra_metrics["teacher_checkpoint"] == str(teacher.resolve())
    with pytest.raises(AssertionError, match="retrained"):
        plan("seed=5")


@pytest.mark.parametrize("overrides", [
    ["defense=noise_train"],
    ["model.head=lq"],
    *[[f"model.activation={a}"] for a in ("relu", "relu6", "relu_decay", "tanh", "elu")],
], ids=lambda o: o[0])
def test_defense_and_activation_variants_train_well_above_chance(tmp_path, fashion_root, overrides):
    metrics = train_in_process(tmp_path, *SMALL, *overrides)
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1


def test_prune_zeroes_exactly_the_requested_fraction_and_keeps_it(tmp_path, fashion_root, trained):
    _, metrics, run_dir = trained
    source = checkpoint(run_dir, metrics)
    pruned = train_in_process(tmp_path, *SMALL, "defense=prune", f"defense.source_ckpt={source}",
                              "defense.ratio=0.3", "defense.layers=[net.1,net.3]",
                              "defense.finetune_epochs=1")
    model = load_classifier(checkpoint(tmp_path, pruned))
    modules = dict(model.named_modules())
    for name in ("net.1", "net.3"):
        weight = modules[name].weight
        assert int((weight == 0).sum()) == round(0.3 * weight.numel()) == pruned["pruned_weights"][name]
    assert int((modules["net.5"].weight == 0).sum()) == 0  # a layer not chosen
    assert pruned["epochs"] == 1 and pruned["test_accuracy"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["adv_train", "pgd_train", "noise_train", "distillation", "prune"])
def test_defenses_train_with_ddp_cpu(tmp_path, trained, defense):
    _, metrics, run_dir = trained
    source = [f"defense.source_ckpt={checkpoint(run_dir, metrics)}", "defense.finetune_epochs=1"]
    ok(robust("train", "trainer=ddp_cpu", "dataset=fashion_mnist", f"dataset.root={FASHION}",
              "dataset.limit_train=1000", "dataset.limit_test=200", "trainer.max_epochs=1",
              f"defense={defense}", *(source if defense == "prune" else []), "hydra.run.dir=run",
              cwd=tmp_path))
    assert (tmp_path / "run" / "metrics.json").is_file()
