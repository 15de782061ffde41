"""DuplicateFilter and row_hashes: repeats found within and across calls, memory as documented."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fedmarket.data.ingest.dedup import DuplicateFilter, row_hashes


def test_mark_keeps_the_first_copy_within_and_across_calls() -> None:
    seen = DuplicateFilter()
    first = seen.mark(np.array([5, 3, 5, 9, 3, 5], dtype=np.uint64))
    assert first.tolist() == [False, False, True, False, True, True]
    second = seen.mark(np.array([9, 1, 1, 7], dtype=np.uint64))
    assert second.tolist() == [True, False, True, False]
    assert len(seen) == 5 and seen.nbytes == 5 * 8  # 8 bytes per distinct kept row
    assert seen.mark(np.array([], dtype=np.uint64)).tolist() == []


def test_mark_agrees_with_a_python_set_on_random_hashes() -> None:
    rng = np.random.default_rng(0)
    seen, reference = DuplicateFilter(), set()
    for _ in range(5):
        batch = rng.integers(0, 300, 200).astype(np.uint64)
        expected = []
        for h in batch.tolist():
            expected.append(h in reference)
            reference.add(h)
        assert seen.mark(batch).tolist() == expected
    assert len(seen) == len(reference)


def test_row_hashes_depend_on_every_cell_and_on_column_order() -> None:
    base = {
        "a": pa.array(["x", "y", None, "x"], pa.large_string()),
        "b": pa.array(["y", "x", "", "y"], pa.large_string()),
        "n": pa.array([1, 1, 1, 1]),
        "f": pa.array([0.5, 0.5, 0.5, 0.5]),
    }
    h = row_hashes(base)
    assert h.dtype == np.uint64
    assert h[0] == h[3]  # identical rows
    assert len({int(v) for v in h[:3]}) == 3  # swapped strings, null vs "" differ
    changed = row_hashes({**base, "f": pa.array([0.5, 0.5, 0.5, 0.25])})
    assert changed[0] != changed[3]
    assert (
        row_hashes({"a": base["a"], "b": base["b"]})[0]
        != row_hashes({"b": base["a"], "a": base["b"]})[1]
    )  # ("x","y") vs ("y","x") in the other order


def test_mark_keeps_the_first_copy_in_large_batches_with_many_copies() -> None:
    # Large enough for numpy's unstable SIMD argsort to reorder equal hashes.
    rng = np.random.default_rng(1)
    seen, reference = DuplicateFilter(), set()
    for _ in range(3):
        batch = rng.integers(0, 5_000, 50_000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        expected = np.zeros(len(batch), dtype=bool)
        for i, h in enumerate(batch.tolist()):
            expected[i] = h in reference
            reference.add(h)
        np.testing.assert_array_equal(seen.mark(batch), expected)
    assert len(seen) == len(reference)
    assert np.all(np.diff(seen._seen.astype(np.float64)) >= 0)  # still sorted
