"""Model mutants for mutation testing (Wang et al., "Adversarial sample detection for deep
neural network through model mutation testing", ICSE 2019), with the four operators the paper
takes from DeepMutation (Ma et al. 2018), on the Linear and Conv2d layers:

- gf  (Gaussian fuzzing): a share `rate` of the weights each get Gaussian noise with the
  standard deviation of their layer's weights (DeepMutation: a fuzzed weight follows a Gaussian
  centred on itself; the authors' code draws it around the layer's mean instead);
- nai (neuron activation inverse): a share `rate` of the neurons have their activation status
  inverted by changing the sign of their value *before* the activation function: their
  incoming weights and their bias are negated. Any layer's neurons qualify, the output
  neurons (logits) included, as in the authors' code;
- ns  (neuron switch): in each layer of at least 10 neurons, floor(rate x neurons) of them
  (ceil when that is at most 2; as the authors' code) trade places: the chosen neurons'
  incoming weights and biases are rotated among them, so each one takes another's role;
- ws  (weight shuffling): a share `rate` of the neurons get their incoming weights shuffled
  (a conv neuron is an output channel: its whole kernel slice, as in the authors' code).

A neuron is an output unit of a Linear layer or an output channel of a Conv2d layer.

`selection="global"` (the authors' code) draws gf's weights and nai's and ws's neurons from
the whole model at once: floor(rate x all of them), at least one, so a layer gets rate of its
units on average; `"per_layer"` takes round(rate x units), at least one, from every layer.
`neuron_side="outgoing"` is this project's earlier reading of nai and ns: a neuron is an input
of the layers after the first, nai negates its outgoing weights (the value *after* the
activation) and ns rotates those; output neurons are then never touched.

A mutant is a list of patches (flat positions and new values of some weights or biases), so
many mutants cost a fraction of a model each; `MutantModel` applies one at a time to its own
deep copy of the classifier and restores it afterwards: the original is never touched.
"""

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from robustbench_cli.errors import UserError

OPERATORS = ("gf", "nai", "ns", "ws")
SELECTIONS = ("global", "per_layer")
NEURON_SIDES = ("incoming", "outgoing")
NS_MIN_NEURONS = 10  # the authors' code switches neurons only in layers at least this wide


@dataclass
class Patch:
    tensor: int  # index into MutantModel.tensors (the layers' weights and biases)
    index: torch.Tensor  # flat positions in that tensor
    values: torch.Tensor  # the mutant's values there


@dataclass
class Mutant:
    operator: str
    patches: list[Patch]


def mutable_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv2d layers, in the order the model registers them."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def mutable_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in mutable_layers(model)]


def _count(total: int, rate: float, least: int = 1) -> int:
    """round(rate x total), at least `least`, at most `total` (per-layer counts)."""
    return min(total, max(least, round(rate * total)))


def _global_count(total: int, rate: float) -> int:
    """floor(rate x total) as the authors' code (int(total * rate)), but at least one."""
    return min(total, max(1, math.floor(rate * total + 1e-9)))


def _choose(sizes: list[int], rate: float, selection: str, generator) -> list[torch.Tensor]:
    """Per layer, the sorted positions chosen among its `sizes[i]` units."""
    if selection == "per_layer":
        return [torch.randperm(size, generator=generator)[: _count(size, rate)].sort().values
                if size else torch.zeros(0, dtype=torch.long) for size in sizes]
    total = sum(sizes)
    picked = torch.randperm(total, generator=generator)[: _global_count(total, rate)]
    chosen, start = [], 0
    for size in sizes:
        inside = picked[(picked >= start) & (picked < start + size)]
        chosen.append((inside - start).sort().values)
        start += size
    return chosen


def _rows(weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Flat positions of the incoming weights of neurons `rows`, shaped (len(rows), fan-in)."""
    return torch.arange(weight.numel()).view(weight.shape[0], -1)[rows]


def _columns(weight: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Flat positions of the weights leaving inputs `columns`, shaped (outputs, len, rest)."""
    return torch.arange(weight.numel()).view(weight.shape[0], weight.shape[1], -1)[:, columns]


# A change: (layer, "weight" or "bias", flat positions, new values).
Change = tuple[int, str, torch.Tensor, torch.Tensor]


def gaussian_fuzzing(layers, rate, selection, side, generator) -> list[Change]:
    changes = []
    chosen = _choose([w.numel() for w, _ in layers], rate, selection, generator)
    for layer, ((weight, _), index) in enumerate(zip(layers, chosen)):
        if len(index):
            flat = weight.flatten()
            noise = torch.randn(len(index), generator=generator, dtype=flat.dtype) * flat.std()
            changes.append((layer, "weight", index, flat[index] + noise))
    return changes


def neuron_activation_inverse(layers, rate, selection, side, generator) -> list[Change]:
    changes = []
    if side == "outgoing":  # the neurons feeding layers 2.. : negate their outgoing weights
        sizes = [0] + [w.shape[1] for w, _ in layers[1:]]
        for layer, columns in enumerate(_choose(sizes, rate, selection, generator)):
            if len(columns):
                weight = layers[layer][0]
                index = _columns(weight, columns).flatten()
                changes.append((layer, "weight", index, -weight.flatten()[index]))
        return changes
    chosen = _choose([w.shape[0] for w, _ in layers], rate, selection, generator)
    for layer, ((weight, bias), rows) in enumerate(zip(layers, chosen)):
        if len(rows):  # -(w.x + b): the value before the activation changes sign
            index = _rows(weight, rows).flatten()
            changes.append((layer, "weight", index, -weight.flatten()[index]))
            if bias is not None:
                changes.append((layer, "bias", rows, -bias[rows]))
    return changes


def _ns_count(neurons: int, rate: float) -> int:
    """The authors' code: floor(rate x n) if that product exceeds 2, else its ceiling."""
    product = rate * neurons
    return min(neurons, math.floor(product) if product > 2 else math.ceil(product))


def neuron_switch(layers, rate, selection, side, generator) -> list[Change]:
    changes = []
    for layer, (weight, bias) in enumerate(layers):
        if side == "outgoing":  # the inputs of layers 2.. trade outgoing weights
            inputs = weight.shape[1]
            if layer == 0 or inputs < 2:
                continue
            picked = torch.randperm(inputs, generator=generator)[: _count(inputs, rate, least=2)]
            grid = _columns(weight, torch.arange(inputs))
            changes.append((layer, "weight", grid[:, picked].flatten(),
                            weight.flatten()[grid[:, picked.roll(1)].flatten()]))
            continue
        neurons = weight.shape[0]
        count = _ns_count(neurons, rate)
        if neurons < NS_MIN_NEURONS or count < 2:  # a one-neuron "switch" changes nothing
            continue
        picked = torch.randperm(neurons, generator=generator)[:count]
        # Rotating by one moves every chosen neuron (a random permutation may leave some).
        source = picked.roll(1)
        changes.append((layer, "weight", _rows(weight, picked).flatten(),
                        weight.flatten()[_rows(weight, source).flatten()]))
        if bias is not None:
            changes.append((layer, "bias", picked, bias[source]))
    return changes


def weight_shuffling(layers, rate, selection, side, generator) -> list[Change]:
    changes = []
    chosen = _choose([w.shape[0] for w, _ in layers], rate, selection, generator)
    for layer, ((weight, _), rows) in enumerate(zip(layers, chosen)):
        if len(rows):
            positions = _rows(weight, rows)
            shuffles = torch.rand(positions.shape, generator=generator).argsort(dim=1)
            changes.append((layer, "weight", positions.flatten(),
                            weight.flatten()[positions.gather(1, shuffles).flatten()]))
    return changes


_OPERATOR_FUNCTIONS = {
    "gf": gaussian_fuzzing,
    "nai": neuron_activation_inverse,
    "ns": neuron_switch,
    "ws": weight_shuffling,
}


class MutantModel:
    """A private copy of a classifier on which mutants are drawn and applied one at a time."""

    def __init__(self, model: nn.Module, *, selection: str = "global", neuron_side: str = "incoming"):
        if selection not in SELECTIONS:
            raise UserError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
        if neuron_side not in NEURON_SIDES:
            raise UserError(f"neuron_side must be one of {', '.join(NEURON_SIDES)}, got {neuron_side!r}")
        self.selection, self.neuron_side = selection, neuron_side
        self.model = copy.deepcopy(model).eval()
        copies, originals = mutable_layers(self.model), mutable_layers(model)
        if not copies:
            raise UserError("mutation needs a model with Linear or Conv2d layers")
        # tensors: every layer's weight then its bias (if any); slots[layer][kind] -> position.
        self.tensors, self.clean, self.slots = [], [], []
        for mutable, original in zip(copies, originals):
            slots = {}
            for kind in ("weight", "bias"):
                if getattr(mutable, kind) is not None:
                    slots[kind] = len(self.tensors)
                    self.tensors.append(getattr(mutable, kind))
                    # The original's values, only ever read: the source of mutants and restores.
                    self.clean.append(getattr(original, kind).detach())
            self.slots.append(slots)
        self._cpu = [tensor.cpu() for tensor in self.clean]  # no copy for a model on the CPU

    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        return [(self._cpu[slots["weight"]], self._cpu[slots["bias"]] if "bias" in slots else None)
                for slots in self.slots]

    def draw(self, operator: str, rate: float, generator: torch.Generator) -> Mutant:
        """A new random mutant (nothing is applied yet); CPU `generator` keeps it reproducible."""
        if self.neuron_side == "outgoing" and operator in ("nai", "ns") and len(self.slots) < 2:
            raise UserError(f"operator {operator} with neuron_side=outgoing needs a model with at "
                            f"least two layers")
        changes = _OPERATOR_FUNCTIONS[operator](self._layers(), rate, self.selection,
                                                self.neuron_side, generator)
        if not changes:
            raise UserError(
                f"operator {operator} at rate {rate:g} changes nothing in this model (ns needs a "
                f"layer of at least {NS_MIN_NEURONS} neurons with rate x neurons > 1): raise "
                f"detector.rate or choose another operator")
        patches = []
        for layer, kind, index, values in changes:
            slot = self.slots[layer][kind]
            device = self.tensors[slot].device
            patches.append(Patch(slot, index.to(device), values.to(device)))
        return Mutant(operator, patches)

    @contextmanager
    def applied(self, mutant: Mutant):
        """The copy with `mutant`'s values in place; the clean values come back afterwards."""
        try:
            with torch.no_grad():
                for patch in mutant.patches:
                    self.tensors[patch.tensor].view(-1)[patch.index] = patch.values
            yield self.model
        finally:
            with torch.no_grad():
                for patch in mutant.patches:
                    tensor = self.tensors[patch.tensor]
                    tensor.view(-1)[patch.index] = self.clean[patch.tensor].view(-1)[patch.index]
