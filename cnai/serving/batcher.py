"""Concurrent requests predicted together, with no added wait.

Requests queue while the model is busy; when it is free, everything queued for the
same model version (up to ``max_batch_rows`` rows) becomes one matrix and one
``predict`` call in a single worker thread (PyTorch releases the GIL, so the event
loop keeps reading and checking requests meanwhile). Under no load a request is
predicted at once; under load the batch grows by itself. Each request gets its own
rows' predictions back.

Written here because the libraries that batch (Ray Serve, MLServer's adaptive
batching) are whole serving stacks; this is the one behaviour needed, in a few lines
of asyncio.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cnai.serving.model import ServedModel


@dataclass
class _Pending:
    served: ServedModel
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]


class MicroBatcher:
    """Queue of requests drained into batched ``predict`` calls."""

    def __init__(self, max_batch_rows: int = 256) -> None:
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows {max_batch_rows}: must be >= 1")
        self.max_batch_rows = max_batch_rows
        self._queue: deque[_Pending] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnai-predict")
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Number of predict calls made (for tests and metrics)."""

    async def predict(self, served: ServedModel, rows: np.ndarray) -> np.ndarray:
        """Predictions of ``served`` for ``rows`` (batched with concurrent requests)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append(_Pending(served, rows, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await future

    def _take_batch(self) -> list[_Pending]:
        """The queue's head plus the following requests for the same model, within the cap."""
        head = self._queue.popleft()
        batch, rows = [head], len(head.rows)
        while self._queue:
            nxt = self._queue[0]
            if nxt.served is not head.served or rows + len(nxt.rows) > self.max_batch_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(nxt.rows)
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = [p for p in self._take_batch() if not p.future.done()]
                if not batch:
                    continue
                served = batch[0].served
                matrix = (
                    batch[0].rows
                    if len(batch) == 1
                    else np.concatenate([p.rows for p in batch], axis=0)
                )
                self.batches += 1
                try:
                    predictions = await loop.run_in_executor(self._executor, served.predict, matrix)
                    if len(predictions) != len(matrix):
                        raise RuntimeError(
                            f"{served.name} v{served.version} returned {len(predictions)} "
                            f"predictions for {len(matrix)} rows"
                        )
                except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                start = 0
                for pending in batch:
                    end = start + len(pending.rows)
                    if not pending.future.done():
                        pending.future.set_result(predictions[start:end])
                    start = end
        finally:
            self._draining = False

    def close(self) -> None:
        """Stop the worker thread (after the queued batches)."""
        self._executor.shutdown(wait=True)
