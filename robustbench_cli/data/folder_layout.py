"""Image-folder trees (root/<split>/<class>/<image>): finding splits and class names.

No torch here, so a dataset's classes can be known from the folder listing alone.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from robustbench_cli.errors import UserError

# Folder names accepted for each split, first match wins.
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids; a wnid's position is its standard class index."""
    text = resources.files("robustbench_cli.data").joinpath("imagenet_wnids.txt").read_text()
    return tuple(text.split())


def has_split(root: Path, split: str) -> bool:
    return any((root / folder).is_dir() for folder in SPLIT_FOLDERS[split])


def split_folder(root: Path, split: str) -> Path:
    """The folder holding `split`; UserError saying what was expected where if there is none."""
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist")
    for folder in SPLIT_FOLDERS[split]:
        if (root / folder).is_dir():
            return root / folder
    expected = " or ".join(f"{folder}/" for folder in SPLIT_FOLDERS[split])
    raise UserError(f"no {split} split in {root}: expected {expected} holding one folder per class")


def class_folders(split_dir: Path) -> list[str]:
    names = sorted(entry.name for entry in split_dir.iterdir() if entry.is_dir())
    if not names:
        raise UserError(f"{split_dir} has no class folders: expected {split_dir}/<class>/<image>")
    return names


def folder_classes(root: Path) -> list[str]:
    """Classes of a generic image-folder tree: the train split's folders (test's if no train)."""
    split = "train" if has_split(root, "train") else "test"
    return class_folders(split_folder(root, split))


def vocabulary_mapping(split_dir: Path, vocabulary: tuple[str, ...], what: str) -> dict[str, int]:
    """Map a split's class folders to their fixed standard indices; unknown names are refused."""
    index = {name: position for position, name in enumerate(vocabulary)}
    names = class_folders(split_dir)
    unknown = [name for name in names if name not in index]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UserError(f"{split_dir} has folders that are not {what} classes: {shown}")
    return {name: index[name] for name in names}
