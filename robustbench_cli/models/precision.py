"""Mixed precision for evaluation and attacks: `trainer.precision`, as Lightning names it.

- 32 (default): float32 everywhere.
- bf16-mixed: the model's forward and backward under bfloat16 autocast, on the CPU or a GPU.
  bfloat16 has float32's exponent range, so input gradients do not underflow; only their
  precision (8 bits of mantissa) drops.
- 16-mixed: float16 autocast, on a GPU only. float16 flushes gradients below ~6e-8 to zero,
  and an attack stepping along sign(0) = 0 stalls: the model looks robust where it is not
  (gradient masking). Attacks therefore scale their loss before differentiating (see
  `Attack._input_gradient`) and scale the gradient back in float32.

Attack arithmetic (steps, projections, clamping) stays in float32: autocast only lowers the
precision of the model's matrix products and convolutions.
"""

from contextlib import nullcontext

import torch

from robustbench_cli.errors import UserError

FULL = ("32", "32-true")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
FP16_LOSS_SCALE = 2.0**12  # the first scale tried; halved while a gradient overflows


def check_precision(value, accelerator: str) -> str:
    """The precision as one of PRECISIONS; 16-mixed on the CPU is a one-line error."""
    name = str(value).lower()
    name = "32" if name in FULL else name
    if name not in PRECISIONS:
        raise UserError(f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    if name == "16-mixed" and accelerator == "cpu":
        raise UserError("trainer.precision=16-mixed (float16) needs a GPU; on the CPU use "
                        "trainer.precision=bf16-mixed")
    return name


def run_precision(cfg) -> str:
    """The precision a command runs at: its `trainer.precision`, 32 without a trainer."""
    trainer = cfg.get("trainer")
    if trainer is None:
        return "32"
    return check_precision(trainer.get("precision", 32), str(trainer.get("accelerator", "auto")))


def autocast(precision: str, device: torch.device):
    """The autocast context of `precision` on `device` (nothing for 32)."""
    if precision == "32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def float16_autocast(device: torch.device) -> bool:
    """Is float16 autocast on for `device` here (so gradients need loss scaling)?"""
    return (torch.is_autocast_enabled(device.type)
            and torch.get_autocast_dtype(device.type) == torch.float16)
