"""The telemetry queue bounds memory and says what it dropped; windows aggregate columns."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from x0tta6bl4.errors import BackPressureError, TelemetryError
from x0tta6bl4.mapek.ingest import IngestAck, TelemetryQueue, WindowAggregator
from x0tta6bl4.telemetry import BatchBuilder, TelemetryBatch


def _batch(rows, kind="link", metrics=("up", "loss"), source="mesh:n0") -> TelemetryBatch:
    builder = BatchBuilder(source, kind, metrics)
    for ts, entity, values in rows:
        builder.add(ts, entity, values)
    return builder.build()


def test_queue_drops_beyond_capacity_and_counts() -> None:
    queue: TelemetryQueue[int] = TelemetryQueue(3)
    assert queue.put([1, 2]) == IngestAck(2, 0, 2, 3)
    ack = queue.put([3, 4, 5])
    assert ack == IngestAck(1, 2, 3, 3)
    with pytest.raises(BackPressureError, match=r"3/3") as info:
        ack.raise_for_drops()
    assert (info.value.num_queued, info.value.max_queued) == (3, 3)
    assert info.value.fix
    assert queue.take(2) == [1, 2] and queue.take(5) == [3]
    assert queue.stats() == {
        "queued": 0,
        "max_queued": 3,
        "messages": 2,
        "accepted": 3,
        "dropped": 2,
    }
    IngestAck(1, 0, 1, 3).raise_for_drops()  # no drops, no error
    assert IngestAck.from_dict(ack.to_dict()) == ack


async def test_wait_returns_when_a_batch_arrives() -> None:
    queue: TelemetryQueue[str] = TelemetryQueue(4)
    waiter = asyncio.create_task(queue.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.put(["ref"])
    await asyncio.wait_for(waiter, 1.0)
    assert queue.take(10) == ["ref"]


def test_queue_needs_positive_capacity() -> None:
    with pytest.raises(TelemetryError, match="max_batches"):
        TelemetryQueue(0)


def test_window_means_counts_and_latest_values() -> None:
    agg = WindowAggregator(start=100.0)
    agg.add(_batch([(101, "a-b", (1.0, 0.0)), (101, "b-c", (1.0, 0.2))]))
    agg.add(_batch([(102, "a-b", (0.0, float("nan"))), (103, "b-c", (1.0, 0.4))]))
    agg.add(_batch([(104, "n1", (3.0,))], kind="node", metrics=("links_up",)))
    window = agg.close(105.0)
    assert (window.start, window.end, window.batches, window.samples) == (100.0, 105.0, 3, 9)
    links = window.kinds["link"]
    assert links.entities == ["a-b", "b-c"] and links.metrics == ["up", "loss"]
    np.testing.assert_allclose(links.mean, [[0.5, 0.0], [1.0, 0.3]])
    np.testing.assert_allclose(links.count, [[2, 1], [2, 2]])
    np.testing.assert_allclose(links.last, [[0.0, 0.0], [1.0, 0.4]])
    np.testing.assert_allclose(links.last_seen, [102, 103])
    assert window.kinds["node"].entities == ["n1"]
    # A new window starts empty but remembers entities, last values and last sightings.
    agg.add(_batch([(106, "a-b", (1.0, 0.1))]))
    again = agg.close(110.0).kinds["link"]
    assert np.isnan(again.mean[1, 0]) and again.mean[0, 0] == 1.0
    np.testing.assert_allclose(again.last_seen, [106, 103])


def test_many_entities_grow_the_tables() -> None:
    agg = WindowAggregator()
    names = [f"n{i}" for i in range(300)]
    batch = TelemetryBatch(
        "ebpf:x", "iface", np.full(300, 5.0), np.asarray(names), {"rx": np.arange(300.0)}
    )
    assert agg.add(batch) == 300
    window = agg.close(6.0).kinds["iface"]
    means = dict(zip(window.entities, window.mean[:, 0], strict=True))
    assert means == {name: float(i) for i, name in enumerate(names)}


def test_rejects_what_is_not_a_batch() -> None:
    with pytest.raises(TelemetryError, match="expected a TelemetryBatch"):
        WindowAggregator().add({"not": "a batch"})  # type: ignore[arg-type]


def test_several_rows_of_one_entity_in_a_batch() -> None:
    agg = WindowAggregator()
    agg.add(_batch([(101, "a-b", (1.0, 0.0)), (102, "a-b", (0.0, 0.5)), (102, "c-d", (1.0, 0.1))]))
    agg.add(_batch([(101, "a-b", (1.0, 0.0)), (102, "a-b", (0.0, 0.5)), (102, "c-d", (1.0, 0.1))]))
    links = agg.close(110.0).kinds["link"]
    np.testing.assert_allclose(links.mean, [[0.5, 0.25], [1.0, 0.1]])
    np.testing.assert_allclose(links.count, [[4, 4], [2, 2]])
    np.testing.assert_allclose(links.last, [[0.0, 0.5], [1.0, 0.1]])  # the newest row wins
    np.testing.assert_allclose(links.last_seen, [102, 102])
