"""Any attack of the torchattacks library (Kim 2020) under our protocol: `attack=torchattacks
attack.cls=CW attack.norm=l2 'attack.kwargs={steps:100}'`.

torchattacks is an optional extra (`pip install robustbench_cli[torchattacks]`), imported only
when this attack is built. Its attacks take [0, 1] images and a model returning logits, as
ours do, so the wrapper only hands over eps (and norm and seed where the class takes them),
seeds torch's global RNG, which torchattacks draws from, and lets `Attack.__call__` do the
rest: eval mode with frozen parameters, projection into our eps-ball, [0, 1], detaching.
"""

import contextlib
import inspect
import io
import re

import torch

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack, point_seed
from robustbench_cli.errors import UserError

NORM_CHOICES = ("linf", "l2", "none")
EPS_KEYS = ("eps", "max_epsilon")  # max_epsilon: PIFGSM's name for it
LIBRARY_NORMS = {"linf": "Linf", "l2": "L2"}  # our norm -> the `norm` argument torchattacks takes


def _library():
    try:
        import torchattacks
    except ImportError:
        raise UserError("attack=torchattacks needs the torchattacks package: "
                        "pip install robustbench_cli[torchattacks]") from None
    return torchattacks


def attack_names(library) -> list[str]:
    """The attack classes: its public names less the wrappers, which take other attacks."""
    return sorted(set(library.__all__) - set(getattr(library, "__wrapper__", ())), key=str.lower)


def _attack_class(library, cls) -> type:
    """The class named `cls`, case-insensitively (cw is CW)."""
    names = attack_names(library)
    found = {name.lower(): name for name in names}.get(str(cls).lower())
    if found is None:
        raise UserError(f"unknown cls {cls!r}; choose from: {', '.join(names)}")
    return getattr(library, found)


def distance_measures(attack_class) -> set[str]:
    """The norms its docstring's "Distance Measure" line names (empty when it names none)."""
    line = re.search(r"Distance Measure\s*:\s*(.*)", attack_class.__doc__ or "")
    return {f"l{n.lower()}" for n in re.findall(r"L(inf|\d)", line.group(1))} if line else set()


def _kwargs(value) -> dict:
    """A mapping of keyword arguments; fraction strings (2/255) become numbers."""
    value = {} if value is None else checks.plain(value)
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise UserError(f"kwargs must be a mapping of the attack's arguments, got {value!r}")
    return {key: checks.number(f"kwargs.{key}", item) if isinstance(item, str) and "/" in item else item
            for key, item in value.items()}


class TorchAttacks(Attack):
    """torchattacks.`cls`(model, eps=eps, **kwargs), its output projected into the `norm`
    ball of radius eps.

    norm: "linf" or "l2", the ball our protocol projects into (and how eps is checked), or
    "none": no projection, the output as the attack returns it. It must be the attack's:
    where torchattacks documents the attack's distance measure, another ball is refused (PGD
    is L-inf, CW L2). A class with a `norm` argument (APGD, FAB, Square, AutoAttack) gets
    this one. A class without eps (CW, DeepFool: minimum-norm attacks) is unbounded: with
    norm l2 its output is cut back into the eps-ball, so a point counts as fooled when the
    attack found an adversarial example about that close; with norm none eps only labels
    the row (eps 0 still means the clean input, as for every attack).

    kwargs: the class's other arguments, as torchattacks names them (alpha and steps are
    absolute: its defaults suit eps 8/255). eps and seed are ours; norm too unless
    norm=none. Targeted modes are not exposed: points are attacked untargeted, with
    their true labels.

    seed: torchattacks draws from torch's global RNG, so each call runs in a fork of it
    seeded from (seed, the batch's first point index), which leaves the caller's RNG alone;
    classes with a seed argument (APGD, FAB, Square, AutoAttack) get `seed` too. A random
    attack (PGD's start, Square) draws for the whole batch at once, so unlike ours a point's
    draws depend on its batch: results repeat for the same batches, not across batch sizes.
    The default, FGSM, draws nothing.

    The attack runs its own loop, so early stopping (`stop_at`) does not apply: each point
    keeps the attack's final output. `stats` count the model's forward calls per image: with
    an input that needs a gradient as gradient passes, the others as queries. Under eval's
    `sanity`, the unbounded-budget check is our pgd_linf: the runner reads the class, which
    cannot tell whether `cls` iterates (`iterative` stays False) nor which norm it uses.
    """

    name = "torchattacks"
    stat_names = ("gradient_passes", "queries")
    stop_top_k = None

    def __init__(self, model, *, eps, cls="FGSM", kwargs=None, norm="linf", seed=0):
        self.norm = checks.choice("norm", "none" if norm is None else norm, NORM_CHOICES)
        if self.norm == "none":
            self.norm = None
        super().__init__(model, eps=eps)
        self.seed = checks.non_negative_int("seed", seed)
        attack_class = _attack_class(_library(), cls)
        self.cls = attack_class.__name__
        self.kwargs = _kwargs(kwargs)
        arguments = {**self.kwargs, **self._ours(attack_class)}
        # torchattacks prints a warning when the model has no parameter to take a device
        # from: the device is set at each call instead.
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                self.wrapped = attack_class(model, **arguments)
            except (TypeError, ValueError, AssertionError) as error:
                raise UserError(f"torchattacks {self.cls} refused its arguments "
                                f"{arguments}: {error}") from None

    def adapt(self, *, eot_samples=None, bpda=None) -> "TorchAttacks":
        """BPDA works (it lives in the model); EOT would need torchattacks' own gradient loop."""
        super().adapt(eot_samples=eot_samples, bpda=bpda)
        if self.eot_samples > 1:
            raise UserError("eot_samples > 1 does not reach torchattacks' own gradient loop; use "
                            "one of our attacks with EOT, or torchattacks' EOTPGD (attack.cls=EOTPGD)")
        return self

    def _ours(self, attack_class) -> dict:
        """The arguments that come from our config, the kwargs checked against them."""
        parameters = inspect.signature(attack_class).parameters
        ours = {}
        for key in EPS_KEYS:
            if key in self.kwargs:
                raise UserError(f"kwargs cannot set {key}: the run's eps is passed on (eps=...)")
            if key in parameters:
                ours[key] = self.eps
        if "seed" in self.kwargs:
            raise UserError("kwargs cannot set seed: use attack.seed")
        if "seed" in parameters:
            ours["seed"] = self.seed
        if self.norm is not None:
            if "norm" in self.kwargs:
                raise UserError("kwargs cannot set norm: use attack.norm")
            measures = distance_measures(attack_class)
            if measures and self.norm not in measures:
                ours_too = sorted(measures & set(LIBRARY_NORMS))
                raise UserError(f"torchattacks {self.cls} is an {'/'.join(sorted(measures))} "
                                f"attack, not {self.norm}: set attack.norm to "
                                f"{' or '.join([*ours_too, 'none'])}")
            if "norm" in parameters:
                ours["norm"] = LIBRARY_NORMS[self.norm]
        valid = [key for key in parameters if key not in ("model", *ours)]
        unknown = [key for key in self.kwargs if key not in valid]
        if unknown:
            raise UserError(f"kwargs: torchattacks {self.cls} has no argument {unknown[0]!r}; "
                            f"its arguments: {', '.join(valid)}")
        return ours

    def _perturb(self, x, y):
        self.wrapped.set_device(x.device)
        devices = [x.device] if x.device.type == "cuda" else []
        hook = self.model.register_forward_hook(self._count)
        try:
            with torch.random.fork_rng(devices=devices):
                seed = point_seed(self.seed, "torchattacks", int(self.index[0]))
                torch.default_generator.manual_seed(seed)
                if devices:
                    torch.cuda.default_generators[x.device.index].manual_seed(seed)
                return self.wrapped(x, y)
        finally:
            hook.remove()

    def _count(self, module, args, output):
        images = args[0] if args else None
        if not isinstance(images, torch.Tensor):
            return
        key = "gradient_passes" if images.requires_grad and torch.is_grad_enabled() else "queries"
        self.stats[key] += len(images)
