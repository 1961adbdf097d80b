"""`SumTree` invariants (hypothesis) and errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlrl.buffers import SumTree

# Integer priorities keep every float sum exact, so the search can be compared to a cumsum.
operations = st.lists(
    st.tuples(st.lists(st.integers(0, 63), min_size=1, max_size=8), st.integers(0, 50)),
    min_size=1,
    max_size=12,
)


def reference_leaves(capacity, ops):
    leaves = np.zeros(capacity)
    touched = np.zeros(capacity, bool)
    for idx, p in ops:
        idx = [i % capacity for i in idx]
        leaves[idx] = p
        touched[idx] = True
    return leaves, touched


@settings(max_examples=80, deadline=None)
@given(capacity=st.integers(1, 64), ops=operations, data=st.data())
def test_sum_tree_total_min_and_prefix_search_match_the_leaves(capacity, ops, data):
    tree = SumTree(capacity)
    for idx, p in ops:
        idx = np.array([i % capacity for i in idx])
        tree.update(idx, np.full(idx.size, float(p)))
    leaves, touched = reference_leaves(capacity, ops)
    np.testing.assert_array_equal(tree.priorities, leaves)
    assert tree.total == leaves.sum()
    assert tree.min == (leaves[touched].min() if touched.any() else np.inf)
    if tree.total > 0:
        cumsum = np.cumsum(leaves)
        values = np.array(data.draw(st.lists(st.integers(0, int(cumsum[-1]) * 4 - 1), min_size=1, max_size=16))) / 4.0
        found = tree.find_prefix_sum(values)
        # the index whose cumulative interval [cumsum[i] - p_i, cumsum[i]) contains the value
        np.testing.assert_array_equal(found, np.searchsorted(cumsum, values, side="right"))
        assert (leaves[found] > 0).all()


@settings(max_examples=30, deadline=None)
@given(priorities=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=40), frac=st.floats(0.0, 1.0))
def test_sum_tree_search_never_returns_a_zero_priority_slot(priorities, frac):
    tree = SumTree(64)
    tree.update(np.arange(len(priorities)), np.array(priorities))
    found = tree.find_prefix_sum(np.array([frac * tree.total, tree.total, 2 * tree.total]))
    assert (found < len(priorities)).all()
    assert found[1] == found[2] == len(priorities) - 1


def test_sum_tree_repeated_indices_in_one_update_keep_the_last_priority():
    tree = SumTree(5)
    tree.update([1, 1, 3], [2.0, 7.0, 1.0])
    assert tree[np.array([1, 3])].tolist() == [7.0, 1.0]
    assert tree.total == 8.0 and tree.min == 1.0


def test_sum_tree_of_capacity_one_works():
    tree = SumTree(1)
    tree.update([0], [2.5])
    assert (tree.total, tree.min, tree.find_prefix_sum([1.0]).tolist()) == (2.5, 2.5, [0])


@pytest.mark.parametrize("capacity", [0, -3, 2.5, True])
def test_sum_tree_rejects_a_bad_capacity(capacity):
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        SumTree(capacity)


@pytest.mark.parametrize(
    "indices, priorities, message",
    [
        ([4], [1.0], r"indices must lie in \[0, 4\)"),
        ([-1], [1.0], r"indices must lie in \[0, 4\)"),
        ([0.5], [1.0], "indices must be integers"),
        ([0, 1], [1.0], "same length"),
        ([0], [-1.0], "finite and >= 0"),
        ([0], [np.nan], "finite and >= 0"),
    ],
)
def test_sum_tree_update_rejects_bad_arguments(indices, priorities, message):
    with pytest.raises(ValueError, match=message):
        SumTree(4).update(indices, priorities)


def test_sum_tree_search_of_an_empty_tree_is_an_error():
    with pytest.raises(ValueError, match="total priority is 0"):
        SumTree(4).find_prefix_sum([0.0])


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 70), runs=st.lists(st.tuples(st.integers(0, 69), st.integers(1, 9), st.integers(0, 50)), min_size=1, max_size=10))
def test_sum_tree_update_range_gives_the_same_tree_as_update(capacity, runs):
    a, b = SumTree(capacity), SumTree(capacity)
    for start, length, p in runs:
        start = start % capacity
        length = min(length, capacity - start)
        priorities = np.arange(length, dtype=np.float64) + p
        a.update(np.arange(start, start + length), priorities)
        b.update_range(start, priorities)
        assert np.array_equal(a._sum, b._sum) and np.array_equal(a._min, b._min)


@pytest.mark.parametrize(
    "start, priorities, message",
    [(3, [1.0, 1.0], r"do not fit in \[0, 4\)"), (-1, [1.0], "do not fit"), (0, [], "non-empty 1-D"), (0, [-2.0], "finite and >= 0")],
)
def test_sum_tree_update_range_rejects_bad_arguments(start, priorities, message):
    with pytest.raises(ValueError, match=message):
        SumTree(4).update_range(start, priorities)
