"""Aspect-ratio buckets: every batch is one working resolution, chosen per batch as the reference's sampler does.

The real run trains on 10 resolutions (`RESOLUTIONS_512`, (W, H), six landscape then four portrait). A source
indexed with ``(idx, ar_idx, num_views)`` crops its views to ``resolution[ar_idx]``; `BucketBatchSampler` (the
reference's ``CustomRandomSampler`` + ``BatchedRandomSampler``) yields batches of such indices that share
``ar_idx`` and ``num_views``. Per epoch (``set_epoch``), with the generator ``default_rng(epoch + 788)``: the sample
order is a permutation, each batch draws its bucket with the first half of the buckets twice as likely as the
second, and its number of views in ``[min_views, num_views]`` (``min_views = num_views`` for the real run's
``fixed_length``). With several processes, process ``rank`` takes every ``world_size``-th batch, all processes the
same number of batches (the tail that does not divide is dropped), so DDP steps stay in lockstep.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from tasks.training.data.options import RESOLUTIONS_512  # noqa: F401  (re-exported: the buckets live here)

EPOCH_SEED_OFFSET = 788  # the sampler's generator is default_rng(epoch + 788)


def bucket_probabilities(n_buckets: int) -> np.ndarray:
    """(n,) probabilities of the buckets: the first ``n // 2`` weigh 2, the others 1."""
    weights = np.ones(n_buckets)
    weights[:n_buckets // 2] *= 2
    return weights / weights.sum()


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(idx, ar_idx, num_views)`` tuples, one bucket and one view count per batch."""

    def __init__(self, dataset_len: int, batch_size: int, n_buckets: int, num_views: int,
                 min_views: int | None = None, drop_last: bool = True, rank: int = 0, world_size: int = 1):
        """min_views: fewest views of a batch (None: always `num_views`, the real run's ``fixed_length``; the
        reference's variable-length mode uses 4)."""
        if batch_size < 1 or n_buckets < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad sampler: batch {batch_size}, buckets {n_buckets}, rank {rank}/{world_size}")
        self.dataset_len, self.batch_size, self.n_buckets = dataset_len, batch_size, n_buckets
        self.num_views, self.min_views = num_views, num_views if min_views is None else min_views
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """(len, 3) int64 rows ``(idx, ar_idx, num_views)`` of this epoch, every process's, in order."""
        if self.epoch is None:
            raise RuntimeError("call set_epoch(epoch) before iterating the sampler")
        rng = np.random.default_rng(seed=self.epoch + EPOCH_SEED_OFFSET)
        order = np.arange(self.dataset_len)
        rng.shuffle(order)
        n_batches = (self.dataset_len + self.batch_size - 1) // self.batch_size
        if self.n_buckets > 1:
            buckets = rng.choice(self.n_buckets, size=n_batches, p=bucket_probabilities(self.n_buckets))
        else:
            buckets = rng.integers(self.n_buckets, size=n_batches)
        views = rng.integers(self.min_views, self.num_views + 1, size=n_batches)
        per_sample = np.repeat(np.c_[buckets, views], self.batch_size, axis=0)[:self.dataset_len]
        return np.c_[order, per_sample]

    def _batches(self) -> list[list[tuple[int, int, int]]]:
        rows = [tuple(int(v) for v in row) for row in self.indices()]
        batches = [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        per_rank = len(batches) // self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank::self.world_size][:per_rank]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        yield from self._batches()

    def __len__(self) -> int:
        full, rest = divmod(self.dataset_len, self.batch_size)
        n = full + (1 if rest and not self.drop_last else 0)
        return n // self.world_size if self.world_size > 1 else n


def training_loader(dataset, batch_size: int, *, num_workers: int = 0, min_views: int | None = None,
                    rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over `dataset` (a source or a mixture) with `BucketBatchSampler` and the default collate.

    Call ``loader.batch_sampler.set_epoch(epoch)`` (and ``dataset.set_epoch(epoch)`` for a mixture) before each
    epoch: `set_loader_epoch` does both. Under Ray Train pass ``add_dist_sampler=False`` to ``prepare_data_loader``:
    the sampler already shards by `rank`."""
    sampler = BucketBatchSampler(len(dataset), batch_size, len(dataset.resolutions), dataset.num_views,
                                 min_views=min_views, rank=rank, world_size=world_size)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                       pin_memory=pin_memory, collate_fn=torch.utils.data.default_collate,
                                       persistent_workers=False)


def set_loader_epoch(loader: torch.utils.data.DataLoader, epoch: int) -> None:
    """Start `epoch`: the mixture's per-epoch draw (if any) and the sampler's order and buckets."""
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    loader.batch_sampler.set_epoch(epoch)
