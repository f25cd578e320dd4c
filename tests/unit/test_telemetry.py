from __future__ import annotations

import numpy as np
import pytest

from x0tta6bl4.errors import TelemetryError
from x0tta6bl4.telemetry import BatchBuilder, TelemetryBatch, unpack


def test_builder_makes_columns_and_resets() -> None:
    builder = BatchBuilder("mesh:n1", "link", ("rtt_ms", "loss"))
    builder.add(1.0, "n1-n2", (0.3, 0.0))
    builder.add(2.0, "n1-n3", (0.4, 0.25))
    batch = builder.build()
    assert len(batch) == 2 and batch.samples == 4
    assert batch.entity.tolist() == ["n1-n2", "n1-n3"]
    np.testing.assert_array_equal(batch.metrics["loss"], [0.0, 0.25])
    assert len(builder) == 0 and len(builder.build()) == 0


def test_wrong_arity_and_ragged_columns_are_rejected() -> None:
    builder = BatchBuilder("mesh:n1", "link", ("rtt_ms", "loss"))
    with pytest.raises(TelemetryError, match="expected 2"):
        builder.add(1.0, "n1-n2", (0.3,))
    with pytest.raises(TelemetryError, match="differ in length"):
        TelemetryBatch("x", "node", np.zeros(2), np.array(["a", "b"]), {"cpu": np.zeros(3)})


def test_unpack_takes_a_batch_or_a_list_and_names_anything_else() -> None:
    builder = BatchBuilder("ebpf:x", "iface", ("packets",))
    builder.add(1.0, "a/eth0", (3.0,))
    batch = builder.build()
    assert [b is batch for b in unpack(batch)] == [True]
    assert [b is batch for b in unpack([batch, batch])] == [True, True]
    assert unpack([]) == []
    with pytest.raises(TelemetryError, match="got dict"):
        unpack([batch, {"packets": 3}])
