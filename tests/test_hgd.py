"""HGD denoisers on real Fashion-MNIST images, guarding the `trained` MLP: network shapes,
guide losses, training and its cached pairs, defended evaluation under each threat model,
checkpoint mix-ups, and the layer-wise perturbation analysis."""

import json
from pathlib import Path

import pytest
import torch
from helpers import FASHION, compose, eval_view, ok, robust, train_in_process

from robustbench_cli.checkpoints import file_sha256, load_classifier, read_checkpoint
from robustbench_cli.defenses.hgd.checkpoint import load_denoiser, refuse_denoiser
from robustbench_cli.defenses.hgd.guides import GuideLoss, guide_config
from robustbench_cli.defenses.hgd.networks import PAPER_WIDTHS, SMALL_WIDTHS, build_denoiser, denoiser_config
from robustbench_cli.errors import UserError

EPS = 0.1  # Fashion-MNIST's mid eps
TINY = "defense.widths=[8,16,32,32,32]"
PAIRS = ["dataset.limit_train=1000", "dataset.limit_test=200", "defense.eps_range=[0.01,0.15]",
         "dataset.batch_size=64", TINY, "seed=1"]
BIM = {"steps": 10, "step_size": 0.02}  # reaches eps=0.1 in fewer steps than Kurakin's 30
CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"


@pytest.fixture(scope="module")
def target_ckpt(trained):
    work, metrics, run_dir = trained
    return run_dir / metrics["checkpoint"]


@pytest.fixture(scope="module")
def lgd(tmp_path_factory, target_ckpt):
    """An LGD denoiser trained for 3 epochs on pairs from 900 images (and 100 for validation),
    with the paper's single drop of the learning rate (experiment=liao_hgd)."""
    out = tmp_path_factory.mktemp("hgd")
    metrics = train_in_process(out / "lgd", "experiment=liao_hgd", f"defense.target_ckpt={target_ckpt}",
                               "trainer.max_epochs=3", f"paths.output_dir={out}", *PAIRS)
    return out, out / "lgd", metrics


@pytest.mark.parametrize("name", ["dunet", "dae"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 299, 299)])
def test_denoiser_output_has_the_input_shape(name, shape):
    config = denoiser_config(name, None, *shape)
    assert config["widths"] == list(PAPER_WIDTHS if shape[1] == 299 else SMALL_WIDTHS)
    x = torch.rand(1, *shape)
    with torch.no_grad():
        assert build_denoiser(config).eval()(x).shape == x.shape


def test_dae_is_dunet_without_lateral_inputs():
    unet, dae = (build_denoiser(denoiser_config(name, None, 1, 28, 28)) for name in ("dunet", "dae"))
    # Each feedback block's first conv reads only the map from below in the DAE.
    assert [b[0].in_channels for b in dae.feedback_path] == [64, 64, 64, 32]
    assert [b[0].in_channels for b in unet.feedback_path] == [128, 128, 96, 48]


@pytest.fixture(scope="module")
def adversarial_batch(target_ckpt, fashion_root):
    """64 real training images, their labels and FGSM examples against the MLP."""
    from robustbench_cli import attacks
    from robustbench_cli.data.idx_files import read_idx_ubyte

    target = load_classifier(target_ckpt).requires_grad_(False)
    clean = read_idx_ubyte(fashion_root / "t10k-images-idx3-ubyte.gz")[:64].unsqueeze(1) / 255
    y = read_idx_ubyte(fashion_root / "t10k-labels-idx1-ubyte.gz")[:64].long()
    return target, clean, y, attacks.build("fgsm", target, eps=EPS)(clean, y)


@pytest.mark.parametrize("guide", ["pixel", "fgd", "lgd", "cgd"])
def test_each_guide_loss_decreases_while_training(guide, adversarial_batch):
    target, clean, y, noisy = adversarial_batch
    config = guide_config(guide, None, target)
    assert config["layer"] == ("net.4" if guide == "fgd" else None)  # the MLP's last hidden layer
    loss_fn = GuideLoss(config)
    torch.manual_seed(0)
    denoiser = build_denoiser(denoiser_config("dunet", [8, 16, 32, 32, 32], 1, 28, 28))
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = loss_fn(target, denoiser(noisy), clean, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3]), losses


def test_training_writes_a_tensor_only_denoiser_checkpoint(lgd, target_ckpt):
    out, run_dir, metrics = lgd
    best = run_dir / metrics["checkpoint"]
    content = read_checkpoint(best)  # torch.load(weights_only=True)
    meta = content["robust"]
    assert meta["kind"] == "hgd_denoiser" and meta["guide"] == {"name": "lgd", "layer": None}
    assert meta["target"]["sha256"] == file_sha256(target_ckpt)
    assert (meta["info"]["channels"], meta["info"]["height"], meta["info"]["width"]) == (1, 28, 28)
    assert content["state_dict"] and all(k.startswith("denoiser.") for k in content["state_dict"])
    denoiser, _ = load_denoiser(best)
    assert not denoiser.training
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert recorded["test_accuracy"] > recorded["test_undefended_accuracy"] + 0.05
    [plateau] = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["lr_schedulers"]
    assert plateau["min_lrs"] == [pytest.approx(1e-4)] and plateau["factor"] == 0.1  # one drop at most
    assert recorded["training_data"] == str((run_dir / f"hgd_pairs_{_key(run_dir)}.pt").resolve())


def _key(run_dir) -> str:
    [pairs] = run_dir.glob("hgd_pairs_*.pt")
    return pairs.stem.removeprefix("hgd_pairs_")


@pytest.fixture(scope="module")
def pixel(lgd, target_ckpt):
    """A pixel-guided denoiser trained for one epoch on the LGD run's cached pairs."""
    out, lgd_dir, lgd_metrics = lgd
    metrics = train_in_process(out / "pixel", "defense=hgd", f"defense.target_ckpt={target_ckpt}",
                               "defense.guide=pixel", "trainer.max_epochs=1",
                               f"paths.output_dir={out}", *PAIRS)
    return out / "pixel", metrics


def test_a_second_denoiser_reuses_the_cached_pairs(lgd, pixel):
    pixel_dir, metrics = pixel
    assert metrics["training_data"] == lgd[2]["training_data"]
    assert not list(pixel_dir.glob("hgd_pairs_*.pt"))


def test_online_pairs_train_without_a_cache(tmp_path, target_ckpt):
    """Also an FGD run: its checkpoint records the guide layer, the MLP's last hidden layer."""
    metrics = train_in_process(tmp_path / "run", "defense=hgd", f"defense.target_ckpt={target_ckpt}",
                               "defense.online=true", "dataset.limit_train=300", "dataset.limit_test=100",
                               "trainer.max_epochs=1", TINY, f"paths.output_dir={tmp_path}",
                               "defense.guide=fgd")
    assert metrics["training_data"] == "online"
    assert not list((tmp_path / "run").glob("hgd_pairs_*.pt"))
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["guide_layer"] == "net.4"
    meta = read_checkpoint(tmp_path / "run" / metrics["checkpoint"])["robust"]
    assert meta["guide"] == {"name": "fgd", "layer": "net.4"}


# (model, its config overrides, input (channels, px), the layer fgd reads by default, the
# module the classifier's head starts with: it reads that layer's output)
GUIDE_CASES = [
    ("mlp", {}, (1, 28), "net.4", "net.5"),
    ("mlp", {"hidden": [64, 32, 16]}, (1, 28), "net.6", "net.7"),
    ("cnn", {}, (1, 28), "net.features", "net.classifier"),
    ("vgg11", {"width": 0.125}, (3, 32), "net.features", "net.classifier"),
    ("vgg19", {"width": 0.125}, (3, 64), "net.features", "net.classifier"),  # the ImageNet head
    ("inception_v3", {"width": 0.125}, (3, 75), "net.Mixed_7c", "net.avgpool"),
]


@pytest.mark.parametrize("name, overrides, shape, expected, head", GUIDE_CASES,
                         ids=[f"{c[0]}-{len(c[1])}" for c in GUIDE_CASES])
def test_fgd_reads_the_topmost_feature_map_the_model_config_names(name, overrides, shape, expected,
                                                                  head):
    """Liao et al. guide FGD by the topmost convolutional layer, the input of global pooling:
    the map the classifier's head reads (Inception-v3's Mixed_7c, not its last conv)."""
    from omegaconf import OmegaConf

    from robustbench_cli.defenses.hgd.layers import tapped
    from robustbench_cli.models import build_model

    channels, size = shape
    cfg = OmegaConf.merge(OmegaConf.load(CONF_MODEL / f"{name}.yaml"), overrides)
    model = build_model(cfg, _info(channels, size)).eval()
    assert guide_config("fgd", None, model)["layer"] == expected
    read = {}
    dict(model.named_modules())[head].register_forward_pre_hook(
        lambda module, inputs: read.setdefault("x", inputs[0]))
    with tapped(model, [expected]) as outputs, torch.no_grad():
        model(torch.rand(2, channels, size, size))
    assert outputs[expected] is read["x"]
    # A checkpoint from before model.guide_layer existed gets the shipped default.
    del cfg["guide_layer"]
    assert guide_config("fgd", None, build_model(cfg, _info(channels, size)))["layer"] == expected


def test_defense_guide_layer_overrides_the_model_config(adversarial_batch):
    from robustbench_cli.models import build_model

    target = adversarial_batch[0]
    assert guide_config("fgd", "net.-3", target)["layer"] == "net.3"
    assert guide_config("fgd", "net.2", target)["layer"] == "net.2"
    with pytest.raises(UserError, match="defense.guide_layer 'net.9' is not a layer"):
        guide_config("fgd", "net.9", target)
    linear = build_model({"name": "mlp", "hidden": []}, _info(1, 28))  # no feature map to guide by
    with pytest.raises(UserError, match="needs a hidden layer"):
        guide_config("fgd", None, linear)
    with pytest.raises(UserError, match="model.guide_layer 'net.features' is not a layer"):
        build_model({"name": "mlp", "hidden": [8], "guide_layer": "net.features"}, _info(1, 28))


def _info(channels: int, size: int):
    from types import SimpleNamespace

    return SimpleNamespace(channels=channels, height=size, width=size, num_classes=5,
                           mean=(0.5,) * channels, std=(0.25,) * channels)


def _accuracy(model, target, specs) -> dict:
    from robustbench_cli.evaluation.runner import evaluate

    rows = evaluate(model, target.test_set, specs, [EPS], progress=False)
    return {row["attack"]: row for row in rows}


def test_lgd_denoiser_raises_accuracy_under_oblivious_attacks(lgd, target_ckpt):
    out, run_dir, metrics = lgd
    best = run_dir / metrics["checkpoint"]
    result = ok(robust("eval", "defense=hgd", f"defense.ckpt={best}", f"ckpt_path={target_ckpt}",
                       "attack=[fgsm,bim]", f"eps={EPS}", "defense.threat=oblivious",
                       *(f"attack.{k}={v}" for k, v in BIM.items()), "dataset.limit_test=200",
                       "progress=false", f"paths.output_dir={out}", cwd=out))
    assert "Denoising loss (threat oblivious)" in result.stdout
    [results] = (out / "eval").glob("*/results.json")
    defended = {row["attack"]: row for row in json.loads(results.read_text())
                if not row.get("check")}  # not the unbounded-eps sanity rows
    target, view = eval_view(target_ckpt, "attack=[fgsm,bim]", *(f"attack.{k}={v}" for k, v in BIM.items()))
    undefended = _accuracy(target.model, target, view.specs)
    for attack in ("fgsm", "bim"):
        row = defended[attack]
        assert (row["defense"], row["threat"]) == ("hgd", "oblivious")
        assert row["accuracy"] > undefended[attack]["accuracy"] + 0.15, (row, undefended[attack])
        assert 0 < row["denoise_l1"] < 1
    clean_cost = undefended["fgsm"]["clean_accuracy"] - defended["fgsm"]["clean_accuracy"]
    assert clean_cost < 0.05, (defended, undefended)


def test_full_threat_is_at_least_as_strong_as_oblivious(lgd, target_ckpt):
    best = lgd[1] / lgd[2]["checkpoint"]
    accuracy = {}
    for threat in ("oblivious", "full"):
        target, view = eval_view(target_ckpt, "defense=hgd", f"defense.ckpt={best}", "attack=bim",
                                  f"defense.threat={threat}", *(f"attack.{k}={v}" for k, v in BIM.items()))
        accuracy[threat] = _accuracy(view.model, target, view.specs)["bim"]["accuracy"]
    assert accuracy["full"] <= accuracy["oblivious"]


def test_oblivious_attacks_see_the_bare_classifier_and_evaluation_the_defended_one(
        lgd, target_ckpt, adversarial_batch):
    best = lgd[1] / lgd[2]["checkpoint"]
    target, view = eval_view(target_ckpt, "defense=hgd", f"defense.ckpt={best}", "attack=bim",
                              "defense.threat=oblivious")
    _, _, _, noisy = adversarial_batch
    assert view.specs[0].params["early_stop"] is False  # the paper's fixed-iteration attacks
    with torch.no_grad():  # how attacks query a model
        torch.testing.assert_close(view.model(noisy), target.model(noisy))
    with torch.inference_mode():  # how the runner classifies
        denoiser, _ = load_denoiser(best)
        torch.testing.assert_close(view.model(noisy), target.model(denoiser(noisy)))


def test_an_ensemble_averages_the_logits_of_each_path(lgd, pixel, target_ckpt, adversarial_batch):
    paths = [lgd[1] / lgd[2]["checkpoint"], pixel[0] / pixel[1]["checkpoint"]]
    target, view = eval_view(target_ckpt, "defense=hgd", f"defense.ckpt=[{paths[0]},{paths[1]}]")
    _, _, _, noisy = adversarial_batch
    with torch.inference_mode():
        paths_logits = [target.model(load_denoiser(p)[0](noisy)) for p in paths]
        torch.testing.assert_close(view.model(noisy), torch.stack(paths_logits).mean(0))
    assert [d["guide"] for d in view.identity["defense_params"]["denoisers"]] == ["lgd", "pixel"]


def test_checkpoint_mix_ups_are_one_line_errors(lgd, target_ckpt):
    denoiser = lgd[1] / lgd[2]["checkpoint"]
    with pytest.raises(UserError, match="classifier checkpoint, not an HGD denoiser"):
        load_denoiser(target_ckpt)
    with pytest.raises(UserError, match="is an HGD denoiser checkpoint, not a classifier"):
        refuse_denoiser(denoiser, "ckpt_path")
    with pytest.raises(UserError, match="was trained with defense none, not adv_train"):
        eval_view(target_ckpt, "defense=adv_train")
    # The threat model moved from the attack to the defense that wraps the classifier.
    result = robust("eval", f"ckpt_path={target_ckpt}", "attack.threat=oblivious", cwd=target_ckpt.parent)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "robust eval: error: attack.threat is gone: use defense.threat=oblivious (a threat model "
        "belongs to the defense that wraps the classifier at eval time: defense=hgd)")


@pytest.mark.slow  # make test-all: trains a classifier and a denoiser through the CLI (~35 s)
def test_train_as_typed_trains_its_classifier_first_and_prune_finds_it(tmp_path):
    """`robust train defense=hgd` in an empty folder: no classifier yet, so one is trained into
    the run's classifier/ first, then the denoiser guarded by it; `defense=prune` without
    source_ckpt then prunes that classifier, the newest undefended one."""
    data = ["dataset=fashion_mnist", f"dataset.root={FASHION}", "dataset.limit_train=300",
            "dataset.limit_test=100", "trainer.max_epochs=1"]
    hgd = ok(robust("train", "defense=hgd", *data, cwd=tmp_path))
    assert "training one first" in hgd.stdout
    [run] = (tmp_path / "outputs" / "train").iterdir()
    classifier = json.loads((run / "classifier" / "metrics.json").read_text())
    assert (classifier["model"], classifier["defense"]) == ("mlp", "none")
    denoiser = json.loads((run / "metrics.json").read_text())
    assert denoiser["target_checkpoint"] == str(run / "classifier" / classifier["checkpoint"])
    assert (run / denoiser["checkpoint"]).is_file()

    pruned = ok(robust("train", "defense=prune", *data, cwd=tmp_path))
    found = f"classifier (defense=none) under outputs: {run.relative_to(tmp_path)}/classifier/"
    assert found in pruned.stdout
    assert "training one first" not in pruned.stdout
    [prune_run] = set((tmp_path / "outputs" / "train").iterdir()) - {run}
    source = json.loads((prune_run / "metrics.json").read_text())["source_checkpoint"]
    assert source == str(run / "classifier" / classifier["checkpoint"])
    # the pruned classifier evaluates from the command, its rows naming the defense
    ok(robust("eval", f"ckpt_path={prune_run}/checkpoints/best.ckpt", "defense=prune", "attack=fgsm",
              "eps=0.05", "dataset.limit_test=100", "sanity=false", "hydra.run.dir=ev", cwd=tmp_path))
    assert json.loads((tmp_path / "ev" / "results.json").read_text())[0]["defense"] == "prune"


def test_layer_analysis_shows_lgd_damping_the_top_layers(lgd, pixel, target_ckpt, tmp_path):
    from robustbench_cli.commands.analyze import analyze_layers

    paths = f"[{lgd[1] / lgd[2]['checkpoint']},{pixel[0] / pixel[1]['checkpoint']}]"
    overrides = [f"ckpt_path={target_ckpt}", f"defense.ckpt={paths}", f"eps={EPS}",
                 "dataset.limit_test=200"]
    result = analyze_layers(compose("analyze", *overrides), overrides, tmp_path)
    assert result["layers"] == ["net.1", "net.3", "net.5"]  # the MLP's linear layers
    levels = result["levels"]
    assert list(levels) == ["adversarial", "gaussian noise", "lgd-denoised", "pixel-denoised"]
    assert levels["lgd-denoised"][-1] < levels["adversarial"][-1]
    for name in ("layers.csv", "layers.md", "layers.png", "run.json"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.fixture(scope="module")
def other_classifier(tmp_path_factory, fashion_root):
    """A CNN the denoiser was not trained for (the paper's transfer to other classifiers)."""
    run_dir = tmp_path_factory.mktemp("other")
    metrics = train_in_process(run_dir, "model=cnn", "dataset.limit_train=2000", "dataset.limit_test=200",
                               "trainer.max_epochs=1", "seed=2")
    return run_dir / metrics["checkpoint"]


def test_a_denoiser_defends_a_classifier_it_was_not_trained_for(lgd, other_classifier):
    best = lgd[1] / lgd[2]["checkpoint"]
    target, view = eval_view(other_classifier, "defense=hgd", f"defense.ckpt={best}", "attack=fgsm",
                              "defense.threat=oblivious")
    defended = _accuracy(view.model, target, view.specs)["fgsm"]["accuracy"]
    undefended = _accuracy(target.model, target, view.specs)["fgsm"]["accuracy"]
    assert defended > undefended + 0.05, (defended, undefended)


def test_transfer_threat_crafts_on_a_holdout_model(lgd, target_ckpt, other_classifier, tmp_path):
    best = lgd[1] / lgd[2]["checkpoint"]
    ok(robust("eval", "defense=hgd", f"defense.ckpt={best}", f"ckpt_path={target_ckpt}",
              "attack=transfer", f"attack.source_ckpt={other_classifier}", "defense.threat=transfer",
              f"eps={EPS}", "dataset.limit_test=200", "progress=false", "hydra.run.dir=run",
              cwd=tmp_path))
    [row] = json.loads((tmp_path / "run" / "results.json").read_text())
    assert row["threat"] == "transfer" and row["attack"] == "transfer"
    full = eval_view(target_ckpt, "defense=hgd", f"defense.ckpt={best}", "attack=pgd_linf")
    strongest = _accuracy(full[1].model, full[0], full[1].specs)["pgd_linf"]["accuracy"]
    assert strongest <= row["accuracy"] <= row["clean_accuracy"]


def test_noise_gain_scales_the_predicted_noise_removal(lgd, adversarial_batch):
    """Liao et al. Table 8's "x2" output: x + 2 (denoised - x); gain 0 leaves the input as it is."""
    from robustbench_cli.defenses.hgd.evaluation import Denoised
    from robustbench_cli.defenses.hgd.settings import eval_settings

    _, run, metrics = lgd
    denoiser, _ = load_denoiser(run / metrics["checkpoint"])
    target, _, _, noisy = adversarial_batch
    with torch.no_grad():
        once = denoiser(noisy)
        twice = Denoised([denoiser], target, gain=2.0).denoise(denoiser, noisy)
        assert torch.allclose(twice, noisy + 2 * (once - noisy), atol=1e-6)
        assert torch.equal(Denoised([denoiser], target, gain=0.0)(noisy), target(noisy))
    cfg = compose("eval", "defense=hgd", "defense.ckpt=x.ckpt", "defense.noise_gain=2")
    assert eval_settings(cfg).noise_gain == 2.0
    with pytest.raises(UserError, match="defense.noise_gain must be"):
        eval_settings(compose("eval", "defense=hgd", "defense.ckpt=x.ckpt", "defense.noise_gain=-1"))


def test_denoise_slope_is_the_share_of_the_perturbation_removed(pixel, adversarial_batch):
    """Liao et al.'s Figure 7: removed = k * true. A denoiser returning the clean image has
    k = 1, one returning its input k = 0, and the gain scales k; the trained pixel-guided
    denoiser removes part of an FGSM perturbation (0 < k < 1), as the paper finds."""
    from robustbench_cli.defenses.hgd.evaluation import Denoised

    target, clean, _, noisy = adversarial_batch
    run, metrics = pixel
    denoiser, _ = load_denoiser(run / metrics["checkpoint"])

    def slope(defended):
        with torch.no_grad():
            cross, square = defended.slope_terms(noisy, clean)
        return cross / square

    class Restores(torch.nn.Module):  # knows the clean image: removes the whole perturbation
        def forward(self, x):
            return clean

    assert slope(Denoised([Restores()], target)) == pytest.approx(1.0)
    assert slope(Denoised([torch.nn.Identity()], target)) == 0.0
    k = slope(Denoised([denoiser], target))
    print(f"pixel-guided denoiser: slope {k:.3f}")
    assert 0 < k < 1
    assert slope(Denoised([denoiser], target, gain=2.0)) == pytest.approx(2 * k, rel=1e-4)


def test_a_classifier_ensemble_averages_its_members_and_pairs_with_denoisers(
        lgd, pixel, target_ckpt, other_classifier, adversarial_batch, tmp_path):
    both = f"ckpt_path=[{target_ckpt},{other_classifier}]"
    members = [load_classifier(target_ckpt), load_classifier(other_classifier)]
    _, _, _, noisy = adversarial_batch
    target, view = eval_view(target_ckpt, both)
    identity = target.identity()
    assert identity["model"] == "mlp+cnn"
    assert identity["checkpoint_sha256"] not in (file_sha256(target_ckpt), file_sha256(other_classifier))
    with torch.no_grad():
        torch.testing.assert_close(view.model(noisy), torch.stack([m(noisy) for m in members]).mean(0))
    # Liao et al.'s best ensemble: denoiser i in front of classifier i, logits averaged; an
    # oblivious attack sees the bare ensemble.
    denoisers = [lgd[1] / lgd[2]["checkpoint"], pixel[0] / pixel[1]["checkpoint"]]
    target, view = eval_view(target_ckpt, both, "defense=hgd",
                             f"defense.ckpt=[{denoisers[0]},{denoisers[1]}]", "defense.threat=oblivious")
    assert view.identity["defense_params"]["paired"] is True
    with torch.inference_mode():
        paths = [m(load_denoiser(d)[0](noisy)) for m, d in zip(members, denoisers)]
        torch.testing.assert_close(view.model(noisy), torch.stack(paths).mean(0))
    with torch.no_grad():
        torch.testing.assert_close(view.model(noisy), target.model(noisy))
    # The document's other mixed ensembles: each denoiser in front of the whole classifier
    # ensemble (combine=paths), or the denoised images averaged first (combine=images).
    def ensemble(x):
        return torch.stack([m(x) for m in members]).mean(0)

    with torch.inference_mode():
        denoised = [load_denoiser(d)[0](noisy) for d in denoisers]
        expected = {"paths": torch.stack([ensemble(x) for x in denoised]).mean(0),
                    "images": ensemble(torch.stack(denoised).mean(0))}
    for combine, logits in expected.items():
        target, view = eval_view(target_ckpt, both, "defense=hgd", f"defense.combine={combine}",
                                 f"defense.ckpt=[{denoisers[0]},{denoisers[1]}]")
        assert "paired" not in view.identity["defense_params"]
        with torch.inference_mode():
            torch.testing.assert_close(view.model(noisy), logits)
    with pytest.raises(UserError, match="give as many denoisers .defense.ckpt, 1. as classifiers"):
        eval_view(target_ckpt, both, "defense=hgd", "defense.combine=pairs", f"defense.ckpt={denoisers[0]}")
    # as typed on the command line
    ok(robust("eval", both, "attack=fgsm", f"eps={EPS}", "dataset.limit_test=100", "progress=false",
              "hydra.run.dir=ensemble", cwd=tmp_path))
    [row, *_] = json.loads((tmp_path / "ensemble" / "results.json").read_text())
    assert row["model"] == "mlp+cnn" and row["checkpoint"].count(",") == 1
