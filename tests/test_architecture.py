"""Data flows one way (docs/ARCHITECTURE.md): no room imports one that comes after it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robustbench_cli"

# room -> the packages its modules must never import (at any level, lazily or not)
FORBIDDEN = {
    "attacks": ("robustbench_cli.defenses", "robustbench_cli.lit", "robustbench_cli.evaluation",
                "pytorch_lightning", "lightning"),
    "models": ("robustbench_cli.attacks", "robustbench_cli.defenses", "robustbench_cli.lit"),
    "lit": ("robustbench_cli.defenses", "robustbench_cli.evaluation", "robustbench_cli.commands"),
    "evaluation": ("robustbench_cli.defenses", "robustbench_cli.lit", "robustbench_cli.commands"),
    "reporting": ("torch", "robustbench_cli.attacks", "robustbench_cli.evaluation",
                  "robustbench_cli.models", "pytorch_lightning"),
    # studies and the results index only run commands and read the run folders they write
    # (studies consult defenses/registry.py, which imports nothing heavy)
    "studies": ("robustbench_cli.attacks", "robustbench_cli.evaluation", "robustbench_cli.defenses.hgd",
                "robustbench_cli.lit", "robustbench_cli.models", "pytorch_lightning", "torch"),
    "results": ("torch", "robustbench_cli.attacks", "robustbench_cli.evaluation",
                "robustbench_cli.defenses", "robustbench_cli.lit", "robustbench_cli.models"),
    # trackers build Lightning loggers and read result rows and files, nothing of the models
    "trackers": ("robustbench_cli.attacks", "robustbench_cli.evaluation", "robustbench_cli.defenses",
                 "robustbench_cli.lit", "robustbench_cli.models", "robustbench_cli.commands"),
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_no_room_imports_against_the_flow(room):
    offences = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / room).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[room])
    ]
    assert offences == []
