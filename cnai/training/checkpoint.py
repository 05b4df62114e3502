"""Per-epoch training checkpoints in a folder or an ``s3://`` bucket (via pyarrow.fs).

A run's checkpoints live under ``<checkpoint_root>/<run id>/`` as
``epoch-0003.pt`` files (``torch.save`` of a plain dict). Each file is written
under a temporary name and then moved into place, so a reader never sees half a
checkpoint; only the newest :data:`KEEP` files are kept.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from cnai.config import Settings

KEEP = 2
"""Checkpoints kept per run (older ones are deleted after a newer one is written)."""

_NAME = re.compile(r"^epoch-(\d+)\.pt$")


def run_checkpoint_uri(settings: Settings, run_id: str) -> str:
    """Where run ``run_id`` keeps its checkpoints (absolute path or URI)."""
    root = settings.checkpoint_root
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    return f"{root.rstrip('/')}/{run_id}"


def filesystem(uri: str, s3_options: dict[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path of a folder or URI.

    ``s3://`` URIs use ``s3_options`` (the catalog's ``s3.*`` properties:
    endpoint, access-key-id, secret-access-key, region) when given, else the
    standard AWS environment variables.
    """
    import pyarrow.fs as pafs

    options = s3_options or {}
    if uri.startswith("s3://") and options:
        fs = pafs.S3FileSystem(
            endpoint_override=options.get("s3.endpoint"),
            access_key=options.get("s3.access-key-id"),
            secret_key=options.get("s3.secret-access-key"),
            region=options.get("s3.region") or "us-east-1",
        )
        return fs, uri[len("s3://") :]
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    return pafs.FileSystem.from_uri(uri)


def s3_options(settings: Settings) -> dict[str, str]:
    """The catalog's ``s3.*`` properties (so checkpoints reach the same object store)."""
    return {k: v for k, v in settings.catalog_properties.items() if k.startswith("s3.")}


def save_checkpoint(
    uri: str, epoch: int, state: dict[str, Any], s3: dict[str, str] | None = None
) -> str:
    """Write ``state`` as the checkpoint of ``epoch`` (0-based); returns its URI."""
    import torch

    fs, folder = filesystem(uri, s3)
    fs.create_dir(folder, recursive=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    name = f"epoch-{epoch:04d}.pt"
    tmp = f"{folder}/.{name}.tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(buffer.getvalue())
    fs.move(tmp, f"{folder}/{name}")
    for old in _epochs(fs, folder)[:-KEEP]:
        fs.delete_file(f"{folder}/epoch-{old:04d}.pt")
    return f"{uri.rstrip('/')}/{name}"


def load_latest(uri: str, s3: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The newest checkpoint under ``uri``, or None when there is none yet."""
    import torch

    fs, folder = filesystem(uri, s3)
    epochs = _epochs(fs, folder)
    if not epochs:
        return None
    with fs.open_input_stream(f"{folder}/epoch-{epochs[-1]:04d}.pt") as src:
        data = src.read()
    state: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    return state


def _epochs(fs: pafs.FileSystem, folder: str) -> list[int]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    found = []
    for info in infos:
        match = _NAME.match(info.base_name)
        if match and info.type == pafs.FileType.File:
            found.append(int(match.group(1)))
    return sorted(found)
