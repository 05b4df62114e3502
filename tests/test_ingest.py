"""Ingest: validated, idempotent, snapshot-versioned appends to Iceberg."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cnai.catalog import FINGERPRINTS_KEY, load_table
from cnai.config import load_settings
from cnai.errors import UsageError
from cnai.ingest import ingest
from cnai.progress import Progress
from tests.conftest import REPO, run_cli

QUIET = Progress(quiet=True)


DIGITS_FEATURES = tuple(f"pixel_{i}" for i in range(64))
"""The reference project's digits feature columns (its cnai.yaml declares them)."""


def digits_batch(rows: int, seed: int) -> dict[str, Any]:
    """Columns of a synthetic batch shaped like the digits table."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {
        name: rng.integers(0, 17, rows).astype(np.float64) for name in DIGITS_FEATURES
    }
    columns["label"] = rng.integers(0, 10, rows).astype(np.int64)
    return columns


def write_parquet(path: Path, columns: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def snapshot_count(home: Path) -> int:
    table = load_table(load_settings(home, environ={}))
    return len(table.metadata.snapshots)


def _staged_files(home: Path) -> tuple[set[Path], set[Path]]:
    """(data files under the table's data folder, data files the current snapshot reads)."""
    table = load_table(load_settings(home, environ={}))
    data_dir = Path(table.location().removeprefix("file://")) / "data"
    referenced = {Path(t.file.file_path.removeprefix("file://")) for t in table.scan().plan_files()}
    return set(data_dir.glob("cnai-*.parquet")), referenced


def run_ingest(home: Path, source: Path | None = None) -> dict[str, Any]:
    return ingest(
        str(source) if source else None, settings=load_settings(home, environ={}), progress=QUIET
    )


@pytest.fixture
def ingested_home(store_home: Path) -> Path:
    """A fresh home with the default digits data ingested (one snapshot), its catalog on
    SQLite or PostgreSQL: every test using it runs on both back ends."""
    run_ingest(store_home)
    return store_home


# --- the default data set, through the CLI -----------------------------------------------


def test_default_ingest_then_reingest_is_a_noop(store_home: Path, backend: str) -> None:
    tmp_home = store_home
    first = run_cli(["ingest", "--json"], tmp_home)
    assert first.returncode == 0, first.stderr
    summary = first.json()
    assert summary["table"] == "cnai.digits"
    assert summary["changed"] is True
    assert summary["rows_added"] == summary["total_rows"] == 1797
    assert summary["previous_snapshot_id"] is None
    assert summary["files_ingested"] == [str(tmp_home / "landing" / "digits.parquet")]
    assert len(summary["data_version"]) == 16

    again = run_cli(["ingest", "--json"], tmp_home)
    assert again.returncode == 0, again.stderr
    second = again.json()
    assert second["changed"] is False
    assert second["rows_added"] == 0
    assert second["snapshot_id"] == summary["snapshot_id"]
    assert second["data_version"] == summary["data_version"]
    assert second["files_skipped"] == summary["files_ingested"]
    assert snapshot_count(tmp_home) == 1
    # The variant really used its back end: no SQLite catalog file on PostgreSQL.
    assert (tmp_home / "iceberg" / "catalog.db").exists() is (backend == "sqlite")


def test_data_version_is_stable_across_homes(tmp_path: Path) -> None:
    a = run_ingest(tmp_path / "a")
    b = run_ingest(tmp_path / "b")
    assert a["snapshot_id"] != b["snapshot_id"]
    assert a["data_version"] == b["data_version"]


def test_human_output_and_progress_on_stderr(tmp_home: Path) -> None:
    result = run_cli(["ingest"], tmp_home)
    assert result.returncode == 0
    assert "rows_added" in result.stdout and "1797" in result.stdout
    assert "seeded" in result.stderr


# --- appending -----------------------------------------------------------------------------


def test_new_batch_appends_one_snapshot(ingested_home: Path, tmp_path: Path) -> None:
    before = run_ingest(ingested_home)
    batch = write_parquet(tmp_path / "new" / "batch1.parquet", digits_batch(100, seed=1))
    after = run_ingest(ingested_home, batch.parent)
    assert after["changed"] is True
    assert after["rows_added"] == 100
    assert after["total_rows"] == before["total_rows"] + 100
    assert after["previous_snapshot_id"] == before["snapshot_id"]
    assert after["data_version"] != before["data_version"]
    assert snapshot_count(ingested_home) == 2
    table = load_table(load_settings(ingested_home, environ={}))
    assert table.scan().to_arrow().num_rows == before["total_rows"] + 100
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert len(json.loads(summary[FINGERPRINTS_KEY])) == 1  # type: ignore[index]

    # Same folder again plus one more file: only the new file lands.
    write_parquet(tmp_path / "new" / "batch2.parquet", digits_batch(50, seed=2))
    third = run_ingest(ingested_home, batch.parent)
    assert third["rows_added"] == 50
    assert third["files_skipped"] == [str(batch)]
    assert snapshot_count(ingested_home) == 3


def test_csv_source_with_extra_columns(tmp_home: Path, tmp_path: Path) -> None:
    columns = digits_batch(40, seed=3)
    columns["comment"] = ["hello"] * 40
    path = tmp_path / "rows.csv"
    pacsv.write_csv(pa.table(columns), path)
    result = run_cli(["ingest", "--source", f"file://{path}", "--json"], tmp_home)
    assert result.returncode == 0, result.stderr
    assert result.json()["rows_added"] == 40
    table = load_table(load_settings(tmp_home, environ={}))
    data = table.scan().to_arrow()
    assert "comment" not in data.schema.names
    assert data.column("label").to_pylist() == list(columns["label"])


def test_integer_features_cast_safely(tmp_home: Path, tmp_path: Path) -> None:
    columns = digits_batch(10, seed=4)
    columns = {k: v.astype(np.int32) for k, v in columns.items()}
    path = write_parquet(tmp_path / "ints.parquet", columns)
    assert run_ingest(tmp_home, path)["rows_added"] == 10


# --- the data contract ---------------------------------------------------------------------


def _violations() -> list[tuple[str, Any, str]]:
    def drop_label(c: dict[str, Any]) -> None:
        del c["label"]

    def string_feature(c: dict[str, Any]) -> None:
        c["pixel_5"] = np.array(["x"] * len(c["label"]))

    def null_feature(c: dict[str, Any]) -> None:
        c["pixel_3"] = pa.array([None, *c["pixel_3"][1:]], type=pa.float64())

    def nan_feature(c: dict[str, Any]) -> None:
        c["pixel_7"][4] = np.nan

    def inf_feature(c: dict[str, Any]) -> None:
        c["pixel_8"][2] = np.inf

    def opposite_infs(c: dict[str, Any]) -> None:
        c["pixel_9"][[1, 6]] = [np.inf, -np.inf]  # their sum is NaN, not infinite

    def null_label(c: dict[str, Any]) -> None:
        c["label"] = pa.array([None, *c["label"][1:]], type=pa.int64())

    def label_out_of_range(c: dict[str, Any]) -> None:
        c["label"][[3, 9]] = 11

    def float_label(c: dict[str, Any]) -> None:
        c["label"] = c["label"].astype(np.float64)

    def empty(c: dict[str, Any]) -> None:
        for k in c:
            c[k] = c[k][:0]

    return [
        ("missing column", drop_label, "column 'label': missing (rule: required columns present"),
        ("uncastable type", string_feature, "'pixel_5': type string does not cast safely"),
        ("null feature", null_feature, "'pixel_3': 1 null value(s), first at row 0"),
        ("NaN feature", nan_feature, "'pixel_7': 1 NaN value(s), first at row 4"),
        ("inf feature", inf_feature, "'pixel_8': 1 infinite value(s), first at row 2"),
        ("+inf and -inf", opposite_infs, "'pixel_9': 2 infinite value(s), first at row 1"),
        ("null label", null_label, "'label': 1 null value(s)"),
        ("label outside classes", label_out_of_range, "'label': 2 label(s) outside"),
        ("float label", float_label, "'label': type double does not cast safely to int64"),
        ("no rows", empty, "has no rows (rule: at least one row)"),
    ]


@pytest.mark.parametrize(("case", "mutate", "message"), _violations(), ids=lambda v: str(v))
def test_contract_violation_commits_nothing(
    ingested_home: Path, tmp_path: Path, case: str, mutate: Any, message: str
) -> None:
    before = snapshot_count(ingested_home)
    good = write_parquet(tmp_path / "src" / "a-good.parquet", digits_batch(20, seed=5))
    columns = digits_batch(20, seed=6)
    mutate(columns)
    bad = write_parquet(tmp_path / "src" / "b-bad.parquet", columns)
    with pytest.raises(UsageError) as err:
        run_ingest(ingested_home, good.parent)
    assert str(bad) in str(err.value), case
    assert message in str(err.value), case
    assert snapshot_count(ingested_home) == before
    # No staged data file is left behind in the warehouse.
    on_disk, referenced = _staged_files(ingested_home)
    assert on_disk == referenced


def test_finite_values_whose_sum_overflows_pass_the_contract(tmp_path: Path) -> None:
    """The contract's one-pass finiteness check must not reject huge finite values."""
    from cnai.contract import check_batch

    spec = load_settings(tmp_path, environ={}).dataset
    columns = digits_batch(4, seed=12)
    columns["pixel_0"][:] = np.finfo(np.float64).max  # the column's sum overflows to inf
    batch = pa.RecordBatch.from_pydict(columns)
    checked = check_batch("huge.parquet", batch, spec)
    assert checked.column("pixel_0").to_pylist() == [np.finfo(np.float64).max] * 4


def test_nan_in_a_half_float_column_is_found(tmp_path: Path) -> None:
    """float16 features (no sum kernel in Arrow) still get the exact NaN check."""
    from cnai.contract import ContractError, check_batch

    spec = load_settings(tmp_path, environ={}).dataset
    columns: dict[str, Any] = dict(digits_batch(5, seed=13))
    half = columns["pixel_2"].astype(np.float16)
    half[3] = np.nan
    columns["pixel_2"] = pa.array(half, type=pa.float16())
    with pytest.raises(ContractError, match="'pixel_2': 1 NaN value\\(s\\), first at row 3"):
        check_batch("half.parquet", pa.RecordBatch.from_pydict(columns), spec)


def test_write_failure_of_the_background_writer_commits_nothing(
    ingested_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Parquet write failing on the writer thread fails the ingest; no file, no lease left."""
    import cnai.sources

    monkeypatch.setattr(cnai.sources, "BATCH_ROWS", 8)
    before = snapshot_count(ingested_home)
    source = write_parquet(tmp_path / "src" / "batch.parquet", digits_batch(40, seed=14))
    original = pq.ParquetWriter.write_batch
    calls: list[int] = []

    def fail_third(self: pq.ParquetWriter, batch: pa.RecordBatch, *args: Any) -> None:
        calls.append(batch.num_rows)
        if len(calls) == 3:
            raise OSError("No space left on device")
        original(self, batch, *args)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", fail_third)
    with pytest.raises(OSError, match="No space left"):
        run_ingest(ingested_home, source.parent)
    assert snapshot_count(ingested_home) == before
    table = load_table(load_settings(ingested_home, environ={}))
    data_dir = Path(table.location().removeprefix("file://")) / "data"
    referenced = {Path(t.file.file_path.removeprefix("file://")) for t in table.scan().plan_files()}
    assert set(data_dir.glob("cnai-*.parquet")) == referenced
    assert not list((data_dir / "_cnai_staging").glob("*.json"))


def test_staged_file_holds_every_batch_in_order(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches written one behind the reader land complete and in source order."""
    import cnai.sources

    monkeypatch.setattr(cnai.sources, "BATCH_ROWS", 7)
    columns = digits_batch(50, seed=15)
    run_ingest(tmp_home, write_parquet(tmp_path / "ordered.parquet", columns))
    data = load_table(load_settings(tmp_home, environ={})).scan().to_arrow()
    assert data.column("pixel_0").to_pylist() == list(columns["pixel_0"])
    assert data.column("label").to_pylist() == list(columns["label"])


def test_violation_through_cli_exits_2_with_one_line(tmp_home: Path, tmp_path: Path) -> None:
    columns = digits_batch(5, seed=7)
    columns["label"][0] = 42
    bad = write_parquet(tmp_path / "bad.parquet", columns)
    result = run_cli(["ingest", "--source", str(bad), "--json"], tmp_home)
    assert result.returncode == 2
    assert json.loads(result.stdout)["exit_code"] == 2  # --json: an object on failure too
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("cnai: error: ")
    assert str(bad) in lines[-1] and "'label'" in lines[-1] and "outside" in lines[-1]


def test_corrupt_file_is_rejected(tmp_home: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not really parquet")
    result = run_cli(["ingest", "--source", str(corrupt)], tmp_home)
    assert result.returncode == 2
    assert str(corrupt) in result.stderr and "not a readable parquet file" in result.stderr


def test_truncated_csv_value_is_rejected(tmp_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pacsv.write_csv(pa.table(digits_batch(3, seed=8)), path)
    text = path.read_text().splitlines()
    text[2] = "abc," + text[2].split(",", 1)[1]
    path.write_text("\n".join(text) + "\n")
    result = run_cli(["ingest", "--source", str(path)], tmp_home)
    assert result.returncode == 2
    assert str(path) in result.stderr


def test_bad_usage(tmp_home: Path, tmp_path: Path) -> None:
    missing = run_cli(["ingest", "--source", str(tmp_path / "nope")], tmp_home)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    bad_table = run_cli(["ingest", "--table", "no-dots"], tmp_home)
    assert bad_table.returncode == 2 and "NAMESPACE.NAME" in bad_table.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli(["ingest", "--source", str(tmp_path / "empty")], tmp_home)
    assert empty.returncode == 2 and "no .parquet or .csv file" in empty.stderr


def test_other_table_by_flag(tmp_home: Path) -> None:
    result = run_cli(["ingest", "--table", "lab.digits_copy", "--json"], tmp_home)
    assert result.returncode == 0, result.stderr
    assert result.json()["table"] == "lab.digits_copy"


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_ingests_of_different_files_both_land(
    ingested_home: Path, tmp_path: Path
) -> None:
    before = run_ingest(ingested_home)
    sources = [
        write_parquet(tmp_path / f"c{i}" / "part.parquet", digits_batch(30 + i, seed=10 + i))
        for i in range(3)
    ]
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "cnai", "--home", str(ingested_home),
                "ingest", "--source", str(src), "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for src in sources
    ]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    added = [json.loads(out.strip().splitlines()[-1])["rows_added"] for out, _ in outputs]
    assert sorted(added) == [30, 31, 32]
    table = load_table(load_settings(ingested_home, environ={}))
    assert table.scan().to_arrow().num_rows == before["total_rows"] + 93
    assert len(table.metadata.snapshots) == 4


def test_concurrent_ingests_of_the_same_file_land_once(ingested_home: Path, tmp_path: Path) -> None:
    before = run_ingest(ingested_home)
    src = write_parquet(tmp_path / "same.parquet", digits_batch(25, seed=20))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cnai", "--home", str(ingested_home),
             "ingest", "--source", str(src), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    changed = [json.loads(out.strip().splitlines()[-1])["changed"] for out, _ in outputs]
    assert sorted(changed) == [False, True]
    table = load_table(load_settings(ingested_home, environ={}))
    assert table.scan().to_arrow().num_rows == before["total_rows"] + 25


def test_commit_from_a_stale_table_rechecks_fingerprints(
    ingested_home: Path, tmp_path: Path
) -> None:
    """A writer that lost the race to commit the same file adds nothing.

    Deterministic form of the race above: the loser staged its file from a table
    state taken before the winner committed, so its first commit conflicts, and the
    retry must re-check fingerprints rather than re-apply the append.
    """
    from cnai.ingest import _commit, _stage
    from cnai.sources import resolve_source

    settings = load_settings(ingested_home, environ={})
    stale = load_table(settings)
    src = write_parquet(tmp_path / "raced.parquet", digits_batch(25, seed=21))
    winner = run_ingest(ingested_home, src)
    assert winner["rows_added"] == 25

    (file,) = resolve_source(str(src))
    staged = _stage(stale, file, file.fingerprint(), settings.dataset, QUIET)
    assert _commit(stale, [staged], QUIET) == []
    table = load_table(settings)
    assert table.scan().to_arrow().num_rows == winner["total_rows"]
    assert len(table.metadata.snapshots) == 2
    assert not Path(staged.path.removeprefix("file://")).exists()


# --- several files staged at once -------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2], ids=["one-at-a-time", "two-at-once"])
def test_staging_several_files_at_once_is_staging_them_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """The same summary, files and snapshot either way: files in order, the first of two
    identical files ingested and the second skipped, no stray data file."""
    import cnai.ingest
    import cnai.sources

    monkeypatch.setattr(cnai.ingest, "staging_threads", lambda files: min(files, threads))
    monkeypatch.setattr(cnai.sources, "BATCH_ROWS", 16)  # several batches per file
    src = tmp_path / "src"
    a = write_parquet(src / "a.parquet", digits_batch(100, seed=1))
    b = src / "b.parquet"
    b.write_bytes(a.read_bytes())  # same bytes as a
    c = write_parquet(src / "c.parquet", digits_batch(70, seed=2))
    d = write_parquet(src / "d.parquet", digits_batch(30, seed=3))
    home = tmp_path / "home"
    home.mkdir()
    summary = run_ingest(home, src)
    assert summary["files_ingested"] == [str(p) for p in (a, c, d)]
    assert summary["files_skipped"] == [str(b)]
    assert summary["rows_added"] == 200
    on_disk, referenced = _staged_files(home)
    assert on_disk == referenced and len(referenced) == 3
    rows = load_table(load_settings(home, environ={})).scan().to_arrow()
    expected = pa.concat_tables(pq.read_table(p) for p in (a, c, d))
    assert rows.column("pixel_7").to_pylist() == expected.column("pixel_7").to_pylist()


def test_a_failing_file_among_files_staged_at_once_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first failing file in order is the one reported; the others stop or finish,
    and every file staged for the attempt is removed."""
    import cnai.ingest
    import cnai.sources

    monkeypatch.setattr(cnai.ingest, "staging_threads", lambda files: min(files, 2))
    monkeypatch.setattr(cnai.sources, "BATCH_ROWS", 16)
    src = tmp_path / "src"
    write_parquet(src / "a-good.parquet", digits_batch(400, seed=1))
    bad = digits_batch(50, seed=2)
    bad["pixel_3"][40] = np.nan
    first_bad = write_parquet(src / "b-bad.parquet", bad)
    worse = digits_batch(50, seed=3)
    worse["label"][0] = 99
    write_parquet(src / "c-bad.parquet", worse)
    write_parquet(src / "d-good.parquet", digits_batch(400, seed=4))
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(UsageError) as err:
        run_ingest(home, src)
    assert str(first_bad) in str(err.value)
    assert snapshot_count(home) == 0
    on_disk, referenced = _staged_files(home)
    assert on_disk == set() and referenced == set()
