"""Opening the configured Iceberg catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cnai.catalog import ensure_table, load_table, open_catalog
from cnai.config import load_settings
from cnai.errors import UsageError


def test_an_open_catalog_is_reused_until_its_database_is_replaced(tmp_home: Path) -> None:
    settings = load_settings(tmp_home, environ={})
    first = open_catalog(settings)
    assert open_catalog(settings) is first
    ensure_table(first, settings.dataset)
    assert load_table(settings).name() == ("cnai", "digits")

    shutil.rmtree(tmp_home)  # a fresh home at the same path: the old table is gone
    fresh = open_catalog(settings)
    assert fresh is not first
    with pytest.raises(UsageError, match="no such table"):
        load_table(settings)


def test_ensuring_an_existing_table_writes_no_metadata(tmp_home: Path) -> None:
    settings = load_settings(tmp_home, environ={})
    catalog = open_catalog(settings)
    table = ensure_table(catalog, settings.dataset)
    folder = Path(table.metadata_location.removeprefix("file://")).parent
    written = sorted(folder.glob("*.metadata.json"))
    assert len(written) == 1
    for _ in range(3):
        again = ensure_table(catalog, settings.dataset)
        assert again.metadata_location == table.metadata_location
    assert sorted(folder.glob("*.metadata.json")) == written  # no orphan per call
