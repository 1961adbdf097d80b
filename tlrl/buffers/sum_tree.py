"""`SumTree`: array-backed sum and min segment trees over priorities, vectorized.

Both trees live in flat float64 arrays of length `2 * size` (`size` = capacity rounded up to
a power of two); node k has children 2k and 2k+1, the root is node 1 and leaf i is node
`size + i`. Every operation works on a whole batch of indices or values with one numpy call
per tree level, never one Python step per item.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


class SumTree:
    """Priorities of `capacity` slots with O(log n) batched update, total, min and prefix-sum search.

    Args:
        capacity: number of leaves (slots); all start at priority 0.

    >>> tree = SumTree(4)
    >>> tree.update([0, 1, 2], [1.0, 2.0, 3.0])
    >>> tree.total, tree.min
    (6.0, 1.0)
    >>> tree.find_prefix_sum([0.5, 1.0, 2.9, 5.99]).tolist()
    [0, 1, 1, 2]
    """

    def __init__(self, capacity: int):
        if not isinstance(capacity, (int, np.integer)) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self._capacity = int(capacity)
        self._depth = max(0, (self._capacity - 1).bit_length())
        self._size = 1 << self._depth
        self._sum = np.zeros(2 * self._size, np.float64)
        self._min = np.full(2 * self._size, np.inf, np.float64)
        self._shifts = np.arange(1, self._depth + 1, dtype=np.int64)[:, None]

    @property
    def capacity(self) -> int:
        """Number of leaves."""
        return self._capacity

    @property
    def total(self) -> float:
        """Sum of all priorities."""
        return float(self._sum[1])

    @property
    def min(self) -> float:
        """Smallest priority among the slots ever updated (`inf` if none)."""
        return float(self._min[1])

    @property
    def priorities(self) -> np.ndarray:
        """Read-only view of the leaf priorities, `[capacity]`."""
        view = self._sum[self._size : self._size + self._capacity]
        view.flags.writeable = False
        return view

    def __getitem__(self, indices: ArrayLike) -> np.ndarray:
        """Priorities of `indices`."""
        return self._sum[self._check_indices(indices) + self._size]

    def _check_indices(self, indices: ArrayLike) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self._capacity):
            raise ValueError(f"indices must lie in [0, {self._capacity}), got range [{idx.min()}, {idx.max()}]")
        return idx.astype(np.int64, copy=False)

    def update(self, indices: ArrayLike, priorities: ArrayLike) -> None:
        """Set `priorities` (finite, >= 0) at `indices` (1-D, same length; for repeated indices the last one wins)."""
        idx = self._check_indices(indices)
        p = np.asarray(priorities, dtype=np.float64)
        if idx.ndim != 1 or p.shape != idx.shape:
            raise ValueError(f"indices and priorities must be 1-D of the same length, got {idx.shape} and {p.shape}")
        if p.size and not (np.isfinite(p).all() and p.min() >= 0):
            raise ValueError("priorities must be finite and >= 0")
        node = idx + self._size
        self._sum[node] = p
        self._min[node] = p
        if self._depth == 0:
            return
        # All ancestors at once, [depth, B]: row k holds the nodes k+1 levels above the leaves.
        parents = node >> self._shifts
        lefts = parents + parents
        rights = lefts + 1
        # Then one level at a time, bottom up, with 1-D takes and array-array ops only (numpy's
        # 2-D fancy indexing and array-scalar ops cost several times more per call). Repeated
        # parents are harmless: each writes the same value from children already updated.
        sum_, min_ = self._sum, self._min
        for parent, left, right in zip(parents, lefts, rights):
            sum_[parent] = sum_.take(left) + sum_.take(right)
            min_[parent] = np.minimum(min_.take(left), min_.take(right))

    def update_range(self, start: int, priorities: ArrayLike) -> None:
        """Set the contiguous leaves `start, start + 1, ...` to `priorities`; same result as `update`.

        Cheaper for a run of neighbours (a replay row of n_envs slots): each level's parents
        form a contiguous run too, updated with slices, and once the run is a single node the
        rest of the path is walked with scalars.
        """
        p = np.asarray(priorities, dtype=np.float64)
        if p.ndim != 1 or p.size == 0:
            raise ValueError(f"priorities must be a non-empty 1-D array, got shape {p.shape}")
        if not isinstance(start, (int, np.integer)) or not 0 <= start <= self._capacity - p.size:
            raise ValueError(f"leaves {start}..{start}+{p.size} do not fit in [0, {self._capacity})")
        if not (np.isfinite(p).all() and p.min() >= 0):
            raise ValueError("priorities must be finite and >= 0")
        sum_, min_ = self._sum, self._min
        lo = int(start) + self._size
        hi = lo + p.size  # [lo, hi): the nodes of the current level
        sum_[lo:hi] = p
        min_[lo:hi] = p
        node = 0  # set once a level's run is a single node
        for _ in range(self._depth):
            lo, hi = lo >> 1, ((hi - 1) >> 1) + 1
            if hi - lo == 1:
                node = lo
                break
            np.add(sum_[2 * lo : 2 * hi : 2], sum_[2 * lo + 1 : 2 * hi : 2], out=sum_[lo:hi])
            np.minimum(min_[2 * lo : 2 * hi : 2], min_[2 * lo + 1 : 2 * hi : 2], out=min_[lo:hi])
        while node >= 1:  # one node per level up to the root (the same float ops as above)
            left = 2 * node
            sum_[node] = sum_[left] + sum_[left + 1]
            min_[node] = min(min_[left], min_[left + 1])
            node >>= 1

    def find_prefix_sum(self, values: ArrayLike) -> np.ndarray:
        """For each value v in [0, total), the index i with sum(p[:i]) <= v < sum(p[:i+1]).

        Zero-priority slots are never returned while the total is positive; values at or above
        the total give the last slot with a positive priority (at or before where they land).
        """
        v = np.array(values, dtype=np.float64, copy=True)
        if v.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {v.shape}")
        if self._sum[1] <= 0:
            raise ValueError("cannot search a SumTree whose total priority is 0")
        if v.size and not (v.min() >= 0):
            raise ValueError("prefix-sum values must be >= 0")
        sum_ = self._sum
        node = np.ones(v.shape, np.int64)
        for _ in range(self._depth):  # in-place array-array ops: a few calls per level for the whole batch
            np.add(node, node, out=node)  # left child
            left = sum_.take(node)
            right = np.greater_equal(v, left)
            np.multiply(left, right, out=left)
            np.subtract(v, left, out=v)
            np.add(node, right, out=node, casting="unsafe")  # right child where v >= left sum
        leaf = node - self._size
        # Rounding can push a value at the very end of the total past the last positive leaf
        # (into zero-priority slots): send those to the last positive slot at or before them.
        empty = sum_.take(node) == 0
        if empty.any():
            positive = np.flatnonzero(sum_[self._size : self._size + self._capacity] > 0)
            pick = np.searchsorted(positive, leaf[empty], side="right") - 1
            leaf[empty] = positive[np.maximum(pick, 0)]
        return leaf
