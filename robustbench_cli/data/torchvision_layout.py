"""A dataset in torchvision's own layout, downloaded only into the default location."""

from __future__ import annotations

from robustbench_cli.data.settings import DatasetSettings
from robustbench_cli.errors import UserError


def torchvision_split(dataset_class, settings: DatasetSettings, train: bool, folder: str,
                      expected: str):
    """`dataset_class(root, train)` where `root/folder` is torchvision's layout; `expected`
    names what else the root may hold, for the error messages."""
    root = settings.root
    if settings.root_given and not (root / folder).is_dir():
        raise UserError(f"{root} holds neither {expected} nor torchvision's {folder}/ folder")
    # Only the default location (data_dir/<name>) is downloaded into, never a user's folder.
    download = settings.download and not settings.root_given
    try:
        return dataset_class(str(root), train=train, download=download)
    except (RuntimeError, OSError) as error:
        attempt = "could not be downloaded" if download else "is not there and download is off"
        raise UserError(
            f"{settings.name} {attempt} ({str(error).splitlines()[0]}): put {expected} in {root}"
        ) from error
