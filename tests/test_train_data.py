"""Train-step data path, epoch loop and checkpoints, in-process (no Ray, no MLflow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cnai.catalog import ensure_table, load_table, open_catalog
from cnai.config import Settings, load_settings
from cnai.errors import CnaiError, UsageError
from cnai.ingest import ingest
from cnai.progress import Progress
from cnai.training.checkpoint import KEEP, load_latest, save_checkpoint
from cnai.training.data import load_partition, plan_partitions, read_split
from cnai.training.step import HYPERPARAMETERS, run_trial


def _settings(home: Path) -> Settings:
    return load_settings(home, environ={})


def _digits_file(path: Path, rows: slice) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    columns = {f"pixel_{i}": pa.array(digits.data[rows, i]) for i in range(64)}
    columns["label"] = pa.array(digits.target[rows], type=pa.int64())
    pq.write_table(pa.table(columns), path)


def _row_keys(features: np.ndarray, labels: np.ndarray) -> set[bytes]:
    return {f.tobytes() + bytes([int(y)]) for f, y in zip(features, labels, strict=True)}


def test_read_split_covers_table_disjointly(digits_home: Path) -> None:
    settings = _settings(digits_home)
    splits = {name: read_split(settings, name) for name in ("train", "validation", "test")}
    sizes = {name: len(y) for name, (_, y) in splits.items()}
    assert sum(sizes.values()) == 1797
    assert 0.75 < sizes["train"] / 1797 < 0.85
    for x, y in splits.values():
        assert x.dtype == np.float32 and x.shape[1] == 64
        assert y.dtype == np.int64 and set(np.unique(y)) <= set(range(10))
    keys = [_row_keys(x, y) for x, y in splits.values()]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


def test_appending_data_never_moves_rows_between_splits(tmp_home: Path) -> None:
    settings = _settings(tmp_home)
    landing = tmp_home / "in"
    landing.mkdir()
    _digits_file(landing / "a.parquet", slice(0, 1000))
    first = ingest(str(landing), settings=settings, progress=Progress(quiet=True))
    before = {s: _row_keys(*read_split(settings, s)) for s in ("train", "validation", "test")}
    _digits_file(landing / "b.parquet", slice(1000, None))
    second = ingest(str(landing), settings=settings, progress=Progress(quiet=True))
    assert second["snapshot_id"] != first["snapshot_id"] and second["rows_added"] == 797
    after = {s: _row_keys(*read_split(settings, s)) for s in ("train", "validation", "test")}
    for name in before:
        assert before[name] <= after[name], f"a {name} row moved to another split"
    # The old snapshot still reads exactly what it held.
    pinned = {
        s: _row_keys(*read_split(settings, s, snapshot_id=first["snapshot_id"]))
        for s in ("train", "validation", "test")
    }
    assert pinned == before

    # Per-worker partitions of the new snapshot: disjoint, together the whole table.
    plan = plan_partitions(settings, 3, second["snapshot_id"])
    assert plan.world_size == 3 and plan.total_rows == 1797
    parts = [load_partition(settings, plan, rank) for rank in range(3)]
    train_rows = [p.rows("train") for p in parts]
    assert sum(train_rows) == len(after["train"])
    assert max(train_rows) - min(train_rows) < 0.1 * sum(train_rows)
    union: set[bytes] = set()
    for part in parts:
        keys = _row_keys(*part.split("test"))
        assert not keys & union
        union |= keys
    assert union == after["test"]


def test_unknown_snapshot_and_empty_table_are_usage_errors(tmp_home: Path) -> None:
    settings = _settings(tmp_home)
    with pytest.raises(UsageError, match="no such table"):
        read_split(settings, "train")
    ensure_table(open_catalog(settings), settings.dataset)
    with pytest.raises(UsageError, match="is empty"):
        plan_partitions(settings, 2)
    assert load_table(settings).current_snapshot() is None


def test_run_trial_reports_each_epoch_and_stops_early(digits_home: Path) -> None:
    settings = _settings(digits_home)
    seen: list[tuple[int, dict[str, float]]] = []
    planned: set[int] = set()

    def report(epoch: int, metrics: dict[str, float], epochs: int) -> bool:
        seen.append((epoch, metrics))
        planned.add(epochs)
        return epoch == 2  # stop after the third epoch

    result = run_trial({"epochs": 10, "lr": 0.003}, settings=settings, report=report)
    assert [e for e, _ in seen] == [0, 1, 2]
    assert planned == {10}  # every report says how long the run would have gone on
    assert all(set(m) == {"val_accuracy", "val_loss", "train_loss"} for _, m in seen)
    assert seen[2][1]["train_loss"] < seen[0][1]["train_loss"]
    assert result["epochs_completed"] == 3
    assert result["val_accuracy"] == seen[2][1]["val_accuracy"] > 0.5
    assert set(HYPERPARAMETERS) >= {"epochs", "lr", "batch_size"}


def test_run_trial_is_reproducible_and_respects_hyperparameters(digits_home: Path) -> None:
    settings = _settings(digits_home)
    hparams = {"epochs": 2, "channels": 4, "hidden": 16, "dropout": 0.0, "batch_size": 128}
    a = run_trial(hparams, settings=settings, report=lambda e, m, n: None)
    b = run_trial(hparams, settings=settings, report=lambda e, m, n: None)
    assert a == b
    with pytest.raises(UsageError, match="channels and hidden"):
        run_trial({"channels": 0}, settings=settings, report=lambda e, m, n: None)
    with pytest.raises(UsageError, match="--lr"):
        run_trial({"lr": -1.0}, settings=settings, report=lambda e, m, n: None)


def test_pluggable_model_and_columns(tmp_home: Path) -> None:
    """A user's own table layout and model factory, named only in configuration."""
    rng = np.random.default_rng(0)
    rows = 600
    labels = rng.choice(["cat", "dog"], size=rows)
    signal = (labels == "dog").astype(np.float64)
    columns = {f"f{i}": rng.normal(signal * (i + 1), 0.3) for i in range(4)}
    columns["animal"] = labels
    landing = tmp_home / "in"
    landing.mkdir()
    pq.write_table(pa.table(columns), landing / "pets.parquet")
    (tmp_home / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {
                    "table": "zoo.pets",
                    "features": {"prefix": "f", "count": 4},
                    "label": "animal",
                    "label_type": "string",
                    "classes": ["cat", "dog"],
                },
                "train": {"model_factory": "steps.models:linear"},
            }
        )
    )
    settings = _settings(tmp_home)
    ingest(str(landing), settings=settings, progress=Progress(quiet=True))
    result = run_trial(
        {"epochs": 5, "lr": 0.05}, settings=settings, report=lambda epoch, metrics, epochs: None
    )
    assert result["val_accuracy"] > 0.9
    with pytest.raises(UsageError, match="no hyperparameter 'channels'"):
        run_trial({"channels": 8}, settings=settings, report=lambda e, m, n: None)


def test_checkpoints_roundtrip_and_keep_the_newest(tmp_path: Path) -> None:
    import torch

    uri = str(tmp_path / "ckpt" / "run1")
    assert load_latest(uri) is None
    for epoch in range(4):
        save_checkpoint(uri, epoch, {"epoch": epoch, "weights": torch.full((2,), float(epoch))})
    state = load_latest(uri)
    assert state is not None and state["epoch"] == 3
    assert torch.equal(state["weights"], torch.full((2,), 3.0))
    files = sorted(p.name for p in (tmp_path / "ckpt" / "run1").iterdir())
    assert files == [f"epoch-{e:04d}.pt" for e in range(4 - KEEP, 4)]


@pytest.mark.parametrize("group_bytes", [8 << 20, 1], ids=["one-group", "column-a-group"])
def test_partitions_match_read_split_on_both_read_paths(
    tmp_home: Path, group_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct Parquet reads, PyIceberg's projected reads and short pieces agree.

    Run twice: with every column read at once (small files) and with one feature
    column per direct read, as large files are read.
    """
    from dataclasses import replace

    import cnai.training.data

    monkeypatch.setattr(cnai.training.data, "READ_GROUP_BYTES", group_bytes)

    from pyiceberg.types import StringType

    from cnai.training.data import DataPlan

    settings = _settings(tmp_home)
    landing = tmp_home / "in"
    landing.mkdir()
    _digits_file(landing / "a.parquet", slice(0, 700))
    ingest(str(landing), settings=settings, progress=Progress(quiet=True))
    _digits_file(landing / "b.parquet", slice(700, 1300))
    ingest(str(landing), settings=settings, progress=Progress(quiet=True))

    plan = plan_partitions(settings, 2)
    assert all(piece.direct for part in plan.partitions for piece in part)
    direct = [load_partition(settings, plan, rank) for rank in range(2)]
    for name in ("train", "validation", "test"):
        from_parts = [key for part in direct for key in _row_keys(*part.split(name))]
        assert len(from_parts) == len(set(from_parts))
        assert set(from_parts) == _row_keys(*read_split(settings, name))
    for part in direct:
        # Feature-major: (n, d) over a C-contiguous (d, n) block, no transposing copy.
        assert part.features.dtype == np.float32 and part.features.T.flags.c_contiguous
        assert sum(part.rows(s) for s in ("train", "validation", "test")) == len(part.labels)

    # An evolved schema sends every file through PyIceberg's projection: same rows.
    with load_table(settings).update_schema() as update:
        update.add_column("note", StringType())
    evolved = plan_partitions(settings, 2, plan.snapshot_id)
    assert not any(piece.direct for part in evolved.partitions for piece in part)
    projected = [load_partition(settings, evolved, rank) for rank in range(2)]
    for a, b in zip(direct, projected, strict=True):
        assert np.array_equal(a.features, b.features) and np.array_equal(a.labels, b.labels)
        assert all(np.array_equal(a.index[s], b.index[s]) for s in a.index)

    # A piece that yields fewer rows than planned (as row-level deletes do) leaves no gap.
    whole = plan_partitions(settings, 1, plan.snapshot_id)
    first, *rest = whole.partitions[0]
    padded = replace(first, stop=first.stop + 50)  # 50 rows past the end of its file
    short = DataPlan(whole.table, whole.snapshot_id, ((padded, *rest),), whole.total_rows)
    expected, compacted = load_partition(settings, whole, 0), load_partition(settings, short, 0)
    assert len(compacted.labels) == 1300
    assert np.array_equal(compacted.features, expected.features)
    assert all(np.array_equal(compacted.index[s], expected.index[s]) for s in expected.index)


def test_files_without_a_usable_row_hash_split_by_the_row_key(tmp_home: Path) -> None:
    """Data files another writer added (hash column all null) split as ingest would."""
    from cnai.catalog import arrow_schema
    from cnai.config import ROW_HASH_COLUMN

    settings = _settings(tmp_home)
    landing = tmp_home / "in"
    landing.mkdir()
    _digits_file(landing / "a.parquet", slice(0, 900))
    ingest(str(landing), settings=settings, progress=Progress(quiet=True))
    table = load_table(settings)
    ingested = table.scan().to_arrow()
    hashless = ingested.set_column(
        ingested.schema.get_field_index(ROW_HASH_COLUMN),
        pa.field(ROW_HASH_COLUMN, pa.int64()),
        pa.nulls(ingested.num_rows, pa.int64()),
    ).cast(arrow_schema(settings.dataset))
    foreign = tmp_home / "foreign.parquet"
    pq.write_table(hashless, foreign)
    with table.transaction() as tx:
        tx.add_files([foreign.as_uri()], check_duplicate_files=False)

    plan = plan_partitions(settings, 1)
    assert all(piece.direct for piece in plan.partitions[0])
    data = load_partition(settings, plan, 0)
    half = ingested.num_rows
    for name in ("train", "validation", "test"):
        rows = data.index[name]
        ours, theirs = rows[rows < half], rows[rows >= half] - half
        assert np.array_equal(ours, theirs)  # same rows, so the same split
        assert len(ours) > 0


@pytest.mark.parametrize(
    ("classes", "labels", "expected"),
    [
        (tuple(range(10)), [3, 0, 9], [3, 0, 9]),  # 0..k-1: labels are their own index
        ((7, 3, 5), [5, 7, 3], [2, 0, 1]),  # any other classes: position in the list
        (("cat", "dog"), ["dog", "cat"], [1, 0]),
    ],
)
def test_labels_become_class_indices(
    classes: tuple[int | str, ...], labels: list[int | str], expected: list[int]
) -> None:
    from cnai.config import DatasetSpec
    from cnai.training.data import class_indices

    spec = DatasetSpec(classes=classes)
    batch = pa.table({spec.label: labels})
    assert class_indices(batch, spec).tolist() == expected
    outside = pa.table({spec.label: [*labels, 10 if isinstance(labels[0], int) else "emu"]})
    with pytest.raises(CnaiError, match="outside the declared classes"):
        class_indices(outside, spec)
