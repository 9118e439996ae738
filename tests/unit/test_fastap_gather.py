"""The DDP arithmetic of the FastAP module, without processes: ranks simulated in one process.

``FastAPModule.gather_batch`` is called as each rank would call it, with a stand-in for the
trainer and ``all_gather`` that stacks every rank's tensor. The loss each rank computes over its
own anchors, averaged over ranks as DDP averages, must equal the single-process loss on the
concatenated batch (the README's promise), and gradient must reach only the rank's own rows.
``tests/integration/test_ddp.py`` (slow) checks the same through real gloo processes.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fastap_lab.lit.fastap import FastAPModule
from fastap_lab.losses.objectives import FastAPObjective

WORLD, LOCAL = 2, 6  # ranks, rows per rank


class SimulatedRank:
    """What ``gather_batch`` reads from the module: trainer.world_size, global_rank, all_gather.

    ``all_gather(t)`` returns [WORLD, ...]: the tensor every rank passed at the same place,
    found by the storage of this rank's tensor (``detach()`` shares it).
    """

    def __init__(self, rank: int, per_rank: list[dict[str, torch.Tensor]]) -> None:
        self.global_rank, self.per_rank = rank, per_rank
        self.trainer = SimpleNamespace(world_size=len(per_rank))

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        mine = self.per_rank[self.global_rank]
        (key,) = [k for k, v in mine.items() if v.data_ptr() == tensor.data_ptr()]
        return torch.stack([rank[key].detach() for rank in self.per_rank])


def rank_batches(positives: str, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Each rank's embeddings [LOCAL, 8] (leaves) and items, as training_step builds them."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for rank in range(WORLD):
        frames = LOCAL // 2 if positives == "views" else LOCAL
        index = torch.arange(rank * frames, (rank + 1) * frames)  # disjoint, like the sampler
        views = 2 if positives == "views" else 1
        batches.append(
            {
                "embeddings": torch.randn(LOCAL, 8, generator=generator).requires_grad_(True),
                "index": index.repeat(views),
                "label": torch.randint(0, 2, (LOCAL,), generator=generator),
                "time": torch.randint(0, 6, (LOCAL,), generator=generator).float(),
                "group": torch.zeros(LOCAL, dtype=torch.long),
            }
        )
    return batches


def loss_on_rank(rank, batches, objective):
    items = {k: v for k, v in batches[rank].items() if k != "embeddings"}
    simulated = SimulatedRank(rank, batches)
    gathered, items, anchors = FastAPModule.gather_batch(
        simulated, batches[rank]["embeddings"], items
    )
    positives = objective.positive_mask(
        items["index"], items["label"], items["time"], items["group"]
    )
    return objective(gathered, positives, anchors=anchors), gathered, anchors


@pytest.mark.parametrize("positives", ["views", "labels", "temporal"])
def test_ranks_together_give_the_single_process_loss(positives):
    objective = FastAPObjective(bins=10, positives=positives, window=1.0)
    batches = rank_batches(positives)
    concatenated = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    single_mask = objective.positive_mask(
        concatenated["index"], concatenated["label"], concatenated["time"], concatenated["group"]
    )
    single = objective(concatenated["embeddings"], single_mask)

    losses, weights = [], []
    for rank in range(WORLD):
        loss, gathered, anchors = loss_on_rank(rank, batches, objective)
        assert torch.equal(gathered, concatenated["embeddings"])
        assert anchors.tolist() == list(range(rank * LOCAL, (rank + 1) * LOCAL))
        losses.append(loss)
        weights.append(single_mask[anchors].any(dim=1).sum())  # anchors with a positive
    # The single-process loss is the mean over all anchors with a positive: the ranks' losses
    # weighted by their anchor counts (equal counts, as with views, make it the plain mean).
    weights = torch.stack(weights).float()
    combined = (torch.stack(losses) * weights).sum() / weights.sum()
    torch.testing.assert_close(combined, single)
    if positives == "views":
        torch.testing.assert_close(torch.stack(losses).mean(), single)


def test_gradient_reaches_only_the_ranks_own_rows():
    objective = FastAPObjective(bins=10, positives="views")
    batches = rank_batches("views", seed=1)
    for rank in range(WORLD):
        for batch in batches:
            batch["embeddings"].grad = None
        loss, _, _ = loss_on_rank(rank, batches, objective)
        loss.backward()
        own = batches[rank]["embeddings"].grad
        assert own is not None and own.abs().sum() > 0
        assert all(
            batches[other]["embeddings"].grad is None for other in range(WORLD) if other != rank
        )


def test_one_process_ranks_the_batch_itself():
    embeddings = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    items = {"index": torch.arange(4)}
    module = SimpleNamespace(trainer=SimpleNamespace(world_size=1))
    gathered, same_items, anchors = FastAPModule.gather_batch(module, embeddings, items)
    assert gathered is embeddings and same_items is items and anchors.tolist() == [0, 1, 2, 3]
