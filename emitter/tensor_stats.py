"""Statistics of a tensor, computed on its device without waiting for it: one row per tensor,

    [nonfinite, sum, min, max, norm, low edge, high edge, 64 bucket counts]

(`min`, `max`, `sum` and the buckets cover the finite values; the buckets are
`torch.histc` over [min, max], bit for bit). `tensor_stats` takes one tensor
(about thirty kernels, whatever its size); `group_stats` takes many small
ones at once (about forty kernels, whatever their number), which is what a
model's biases, norms and small layers want on a GPU. `watch()` (torch_hooks)
picks between them with `small_limit`.
"""

from __future__ import annotations

import math

import torch

BINS = 64
HEAD = 7  # nonfinite, sum, min, max, norm, low edge, high edge
CHUNK = 1 << 24  # histc counts in float32: exact up to 2**24 per call
# Up to which size `group_stats` beats `tensor_stats` per tensor. On a GPU a tensor alone
# costs some thirty kernel launches, whatever its size; on a CPU, where an operation costs
# little more than its work, only tensors this small gain (measured).
SMALL = {"cpu": 1 << 13}
SMALL_ON_ACCELERATORS = 1 << 19


def tensor_stats(t: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """The statistics above as one float64 tensor on t's device; queues work, never synchronises."""
    x = flatten(t)
    if x.numel() == 0:
        return torch.zeros(HEAD + bins, dtype=torch.float64, device=x.device)
    finite = torch.isfinite(x)
    nonfinite = x.numel() - finite.sum()
    low = torch.where(finite, x, math.inf).amin()
    high = torch.where(finite, x, -math.inf).amax()
    total = torch.where(finite, x, 0.0).sum()
    norm = torch.linalg.vector_norm(x)  # what p.grad.norm() says, NaN included
    flat = low == high
    low_edge = torch.where(flat, low - 1, low)  # as torch.histc widens a zero range
    high_edge = torch.where(flat, high + 1, high)
    # Scaled into [0, 1], so histc needs no host-side range; NaN and Inf fall outside and are skipped.
    # With a power-of-two bin count this bins exactly as torch.histc(x, bins, low, high) does.
    scaled = (x - low_edge) / (high_edge - low_edge)
    counts = _bucket_counts(scaled, bins)
    head = torch.stack([nonfinite.to(torch.float64), total.double(), low.double(), high.double(), norm.double(),
                        low_edge.double(), high_edge.double()])
    return torch.cat([head, counts.double()])


def _bucket_counts(scaled: torch.Tensor, bins: int) -> torch.Tensor:
    if scaled.is_cuda and torch.are_deterministic_algorithms_enabled():
        return counts_by_sorting(scaled, bins)  # CUDA's histc is refused in deterministic mode
    counts = torch.zeros(bins, dtype=torch.int64, device=scaled.device)
    for chunk in scaled.split(CHUNK):
        counts += torch.histc(chunk, bins, 0, 1).long()
    return counts


def counts_by_sorting(scaled: torch.Tensor, bins: int) -> torch.Tensor:
    """What histc(scaled, bins, 0, 1) counts, by sorting bin indices: deterministic everywhere."""
    inside = (scaled >= 0) & (scaled <= 1)  # False for NaN and Inf
    index = torch.where(inside, (torch.where(inside, scaled, 0) * bins).long().clamp(max=bins - 1), bins)
    bounds = torch.searchsorted(torch.sort(index).values, torch.arange(bins + 1, device=scaled.device))
    return bounds.diff()


def small_limit(device: torch.device) -> int:
    """The largest tensor on `device` whose statistics are computed with the rest of its pass."""
    return SMALL.get(device.type, SMALL_ON_ACCELERATORS)


def flatten(t: torch.Tensor) -> torch.Tensor:
    """t as one dimension of at least single precision: the values the statistics are taken of."""
    x = t.detach().reshape(-1)
    return x if x.is_floating_point() and x.element_size() >= 4 else x.float()


def group_stats(flats: list[torch.Tensor], bins: int = BINS) -> torch.Tensor:
    """`tensor_stats` of many non-empty `flatten` tensors of one device and dtype, as the rows of one tensor.

    Some thirty kernels whatever their number: segmented reductions over their
    concatenation, and one scatter of every value's (row, bucket). Bins exactly
    as `tensor_stats` (the same arithmetic per value); queues work, never
    synchronises (the per-shape constants are copied to the device once).
    """
    x = torch.cat(flats)
    rows, n = len(flats), x.numel()
    lengths, counted, first_bucket = _segments(tuple(f.numel() for f in flats), x.device, x.dtype, bins)

    def reduce(values: torch.Tensor, how: str) -> torch.Tensor:
        return torch.segment_reduce(values, how, lengths=lengths, unsafe=True)

    def each(per_row: torch.Tensor) -> torch.Tensor:  # a row's value beside each of its elements
        return torch.repeat_interleave(per_row, lengths, output_size=n)

    finite = torch.isfinite(x)
    nonfinite = counted - reduce(finite.to(x.dtype), "sum")
    total = reduce(torch.where(finite, x, 0.0).double(), "sum")  # segment sums add in order: in double
    low = reduce(torch.where(finite, x, math.inf), "min")
    high = reduce(torch.where(finite, x, -math.inf), "max")
    norm = torch.stack(torch._foreach_norm(flats))
    widen = (low == high).to(x.dtype)  # as torch.histc widens a zero range
    low_edge, high_edge = low - widen, high + widen
    scaled = (x - each(low_edge)) / each(high_edge - low_edge)
    inside = (scaled >= 0) & (scaled <= 1)  # False for NaN and Inf
    bucket = (torch.where(inside, scaled, 0) * bins).long().clamp(max=bins - 1) + each(first_bucket)
    counts = torch.zeros(rows * bins + 1, dtype=torch.int64, device=x.device)  # the last one takes the rest
    counts.index_add_(0, torch.where(inside, bucket, rows * bins), torch.ones_like(bucket))
    head = torch.stack([nonfinite, low, high, norm, low_edge, high_edge], dim=1).double()
    return torch.cat([head[:, :1], total[:, None], head[:, 1:], counts[:-1].view(rows, bins).double()], dim=1)


_segment_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _segments(sizes: tuple[int, ...], device: torch.device, dtype: torch.dtype,
              bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lengths, lengths as dtype, each row's first bucket) on the device; a model's passes share them."""
    key = (sizes, device, dtype, bins)
    cached = _segment_cache.get(key)
    if cached is None:
        if len(_segment_cache) >= 64:
            _segment_cache.clear()
        host = torch.tensor(sizes, dtype=torch.int64)
        values = (host, host.to(dtype), torch.arange(len(sizes), dtype=torch.int64) * bins)
        if device.type == "cuda":  # an asynchronous copy from pinned memory: no synchronisation
            values = tuple(v.pin_memory().to(device, non_blocking=True) for v in values)
        elif device.type != "cpu":
            values = tuple(v.to(device) for v in values)
        cached = _segment_cache[key] = values
    return cached
