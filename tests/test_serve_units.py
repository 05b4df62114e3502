"""The serving pieces without a registry: batching concurrent requests, and the champion
tracker keeping the old model when a new one cannot be loaded or the registry is down."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from cnai.errors import UsageError
from cnai.progress import Progress
from cnai.serving.batcher import MicroBatcher
from cnai.serving.champion import ChampionTracker
from cnai.serving.inputs import InputSpec
from cnai.serving.model import ServedModel

SPEC = InputSpec(("a", "b"))


def served(version: str, calls: list[int] | None = None, delay: float = 0.0) -> ServedModel:
    """A model answering each row's first feature (as int) plus 100 x version."""

    def predict(rows: np.ndarray) -> np.ndarray:
        if calls is not None:
            calls.append(len(rows))
        time.sleep(delay)
        return rows[:, 0].astype(np.int64) + 100 * int(version)

    return ServedModel("m", version, SPEC, predict)


def rows(*firsts: int) -> np.ndarray:
    """One row per value, the value as first feature."""
    return np.array([[f, 0] for f in firsts], dtype=np.float32)


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows() -> None:
    calls: list[int] = []
    model = served("1", calls, delay=0.05)

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(max_batch_rows=256)
        try:
            return await asyncio.gather(
                *(batcher.predict(model, rows(i, i + 1)) for i in range(20))
            )
        finally:
            batcher.close()

    answers = asyncio.run(scenario())
    assert [a.tolist() for a in answers] == [[100 + i, 101 + i] for i in range(20)]
    # All 20 were queued before the batcher ran: one predict call for their 40 rows.
    assert calls == [40]


def test_batches_respect_the_row_cap_and_never_mix_model_versions() -> None:
    calls: list[int] = []
    old, new = served("1", calls, delay=0.02), served("2", calls, delay=0.02)

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(max_batch_rows=4)
        try:
            requests = [batcher.predict(old, rows(0))]
            requests += [batcher.predict(old, rows(i, i)) for i in range(1, 4)]
            requests += [batcher.predict(new, rows(7))]
            return await asyncio.gather(*requests)
        finally:
            batcher.close()

    answers = asyncio.run(scenario())
    assert [a.tolist() for a in answers] == [[100], [101, 101], [102, 102], [103, 103], [207]]
    # 1+2 rows (another 2 would pass the cap of 4), then 2+2, then the other version alone.
    assert calls == [3, 4, 1]


def test_requests_arriving_while_the_model_is_busy_form_the_next_batch() -> None:
    calls: list[int] = []
    model = served("1", calls, delay=0.1)

    async def scenario() -> None:
        batcher = MicroBatcher()
        try:
            first = asyncio.ensure_future(batcher.predict(model, rows(1)))
            await asyncio.sleep(0.03)  # the first is being predicted now
            later = [batcher.predict(model, rows(i)) for i in range(5)]
            await asyncio.gather(first, *later)
        finally:
            batcher.close()

    asyncio.run(scenario())
    assert calls == [1, 5]


def test_a_failing_predict_fails_only_its_batch() -> None:
    state = {"fail": True}

    def predict(batch: np.ndarray) -> np.ndarray:
        if state.pop("fail", False):
            raise RuntimeError("boom")
        return batch[:, 0].astype(np.int64)

    model = ServedModel("m", "1", SPEC, predict)

    async def scenario() -> tuple[Any, Any]:
        batcher = MicroBatcher()
        try:
            first = await asyncio.gather(batcher.predict(model, rows(1)), return_exceptions=True)
            second = await batcher.predict(model, rows(2))
            return first[0], second
        finally:
            batcher.close()

    failed, answered = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError)
    assert answered.tolist() == [2]


class FakeRegistry:
    """get_model_version_by_alias answering a settable version (or raising)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.error: Exception | None = None

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        if self.error is not None:
            raise self.error

        class Found:
            version = self.version

        return Found()


def test_the_tracker_swaps_only_to_a_version_that_loads() -> None:
    registry = FakeRegistry("1")
    broken = {"2"}

    def loader(name: str, version: str) -> ServedModel:
        if version in broken:
            raise ValueError("signature has a string column")
        return served(version)

    tracker = ChampionTracker(registry, "m", progress=Progress(quiet=True), loader=loader)
    assert tracker.refresh() is True and tracker.current is not None
    first = tracker.current
    assert tracker.refresh() is False  # alias unchanged: nothing reloaded
    registry.version = "2"
    with pytest.raises(UsageError, match="m v2: cannot be served"):
        tracker.refresh()
    assert tracker.current is first and tracker.swaps == 0
    broken.clear()
    assert tracker.refresh() is True
    assert tracker.current is not None and tracker.current.version == "2"
    assert tracker.swaps == 1


def test_following_survives_a_registry_outage() -> None:
    registry = FakeRegistry("1")
    tracker = ChampionTracker(
        registry,
        "m",
        poll_seconds=0.01,
        progress=Progress(quiet=True),
        loader=lambda name, version: served(version),
    )
    tracker.refresh()
    registry.error = ConnectionError("registry down")

    async def scenario() -> None:
        follower = asyncio.create_task(tracker.follow())
        await asyncio.sleep(0.1)
        assert not follower.done()  # still polling despite the errors
        registry.error = None
        registry.version = "3"
        for _ in range(200):
            if tracker.current is not None and tracker.current.version == "3":
                break
            await asyncio.sleep(0.01)
        follower.cancel()

    asyncio.run(scenario())
    assert tracker.current is not None and tracker.current.version == "3"


def test_refresh_is_serialised() -> None:
    registry = FakeRegistry("1")
    loads: list[str] = []

    def loader(name: str, version: str) -> ServedModel:
        loads.append(version)
        time.sleep(0.05)
        return served(version)

    tracker = ChampionTracker(registry, "m", progress=Progress(quiet=True), loader=loader)
    threads = [threading.Thread(target=tracker.refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["1"]


def test_a_model_failure_is_a_json_500_and_the_server_keeps_serving() -> None:
    import requests

    from cnai.serving.server import BackgroundServer, bind

    state = {"fail": True}

    def predict(batch: np.ndarray) -> np.ndarray:
        if state.pop("fail", False):
            raise RuntimeError("boom")
        return batch[:, 0].astype(np.int64)

    tracker = ChampionTracker(
        FakeRegistry("1"),
        "m",
        poll_seconds=0,
        progress=Progress(quiet=True),
        loader=lambda name, version: ServedModel(name, version, SPEC, predict),
    )
    tracker.refresh()
    server = BackgroundServer(tracker, bind("127.0.0.1", 0)).start()
    try:
        failed = requests.post(f"{server.url}/predict", json={"instances": [[1, 2]]}, timeout=10)
        assert failed.status_code == 500
        assert failed.json() == {"error": "prediction failed: RuntimeError: boom"}
        ok = requests.post(f"{server.url}/predict", json={"instances": [[3, 4]]}, timeout=10)
        assert ok.json() == {"predictions": [3], "model_version": "1"}
    finally:
        server.stop()
