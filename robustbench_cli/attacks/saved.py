"""`attack=saved attack.path=FILE`: a saved adversarial set (robust eval save_adversarial=true)
shown to the model under evaluation, so a set crafted once is evaluated on any model without
regenerating it: on its own model it reproduces its row, on another it is a transfer attack.

Each point gets the set's image of the same dataset index: the adversarial image where the
set's run attacked the point, else its clean image (the set's run attacked only the points
its protocol attacks: save under protocol=all_points to have every point attacked). The set
must come from the same evaluated points: an image farther than its eps from this run's
point (another dataset, split, limit or preprocessing) is a one-line error, as is a point
the set holds no image of.
"""

import json
from pathlib import Path

import torch

from robustbench_cli.attacks.base import Attack
from robustbench_cli.errors import UserError
from robustbench_cli.reporting.formatting import format_eps

TOLERANCE = 1e-5  # float slack of the distance check


class Saved(Attack):
    name = "saved"
    uses_gradients = False

    def __init__(self, model, *, eps, path=None):
        if path is None:
            raise UserError("path is required: attack.path=adversarial/<attack>_eps<eps>.safetensors")
        tensors, self.source = read_set(path)
        self.path = str(path)
        self.norm = self.source["norm"]  # the ball the set was crafted in
        super().__init__(model, eps=eps)
        crafted = float(self.source["eps"])
        if abs(self.eps - crafted) > 1e-9 * max(1.0, crafted):
            raise UserError(f"{path} was crafted at eps {format_eps(crafted)}: evaluate it with "
                            f"eps={format_eps(crafted)}")
        self.images = tensors["images"]
        # dataset index -> row of the set (-1: no image)
        self.rows = torch.full((int(tensors["index"].max()) + 1,), -1, dtype=torch.long)
        self.rows[tensors["index"]] = torch.arange(len(tensors["index"]))

    def _perturb(self, x, y):
        index = self.index
        rows = torch.full_like(index, -1)
        known = index < len(self.rows)
        rows[known] = self.rows[index[known]]
        if (rows < 0).any():
            missing = int(index[rows < 0][0])
            raise UserError(f"{self.path} holds no image of point {missing}: it was saved from "
                            "other points (another limit_test, or one class of a per_class set)")
        images = self.images[rows].to(x.device, x.dtype)
        if images.shape != x.shape:
            raise UserError(f"{self.path} holds images of shape {tuple(images.shape[1:])}, this "
                            f"dataset {tuple(x.shape[1:])}")
        distance = (images - x).flatten(1)
        if self.norm == "linf":
            too_far = distance.abs().amax(1) > self.eps + TOLERANCE
        elif self.norm == "l2":
            too_far = distance.norm(dim=1) > self.eps + TOLERANCE
        else:  # L0 (jsma) or no ball (noise): no distance to check
            too_far = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        if too_far.any():
            raise UserError(f"{self.path}: image of point {int(index[too_far.cpu()][0])} lies "
                            f"farther than eps {format_eps(self.eps)} from this run's point "
                            "(another dataset, split or preprocessing?)")
        return images


def read_set(path) -> tuple[dict, dict]:
    """(tensors, metadata) of a set file; a missing or unreadable file is a one-line error."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"adversarial set not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
            metadata = {key: json.loads(value) for key, value in (file.metadata() or {}).items()}
    except (SafetensorError, ValueError, OSError) as error:
        raise UserError(f"{path} is not an adversarial set: {error}") from None
    missing = {"images", "index", "attacked"} - set(tensors) or {"eps", "norm"} - set(metadata)
    if missing:
        raise UserError(f"{path} is not an adversarial set (no {', '.join(sorted(missing))})")
    return tensors, metadata
