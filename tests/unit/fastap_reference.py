"""Helpers of the FastAP tests: the paper's formula one anchor at a time, value and gradient,
seeded random cases."""

import torch


def naive_fastap(embeddings, positives, bins, sigma=None):
    """Straight from the paper's formula, one anchor at a time, dense over all centres."""
    unit = embeddings / embeddings.norm(dim=1, keepdim=True)
    n = unit.shape[0]
    centres = torch.linspace(0, 4, bins + 1, dtype=unit.dtype)
    delta = 4 / bins
    per_anchor = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        dist = ((unit[i] - unit[others]) ** 2).sum(dim=1)  # [N-1]
        is_pos = torch.tensor([bool(positives[i, j]) for j in others])
        if not is_pos.any():
            continue
        if sigma is None:
            weights = torch.relu(1 - (dist[:, None] - centres[None, :]).abs() / delta)
        else:
            gauss = torch.exp(-((dist[:, None] - centres[None, :]) ** 2) / (2 * sigma**2))
            weights = gauss / gauss.sum(dim=1, keepdim=True)
        h_pos = weights[is_pos].sum(dim=0)
        h_all = weights.sum(dim=0)
        cum_pos, cum_all = h_pos.cumsum(0), h_all.cumsum(0)
        # A term is at most H_k, so those below 1e-100 are dropped: their float64 gradient
        # (1 / H_k²) would overflow while they are worth nothing.
        terms = [h_pos[k] * cum_pos[k] / cum_all[k] for k in range(bins + 1) if cum_all[k] > 1e-100]
        per_anchor.append(1 - sum(terms) / is_pos.sum())
    if not per_anchor:
        return embeddings.sum() * 0
    return torch.stack(per_anchor).mean()


def value_and_grad(loss_fn, embeddings):
    leaf = embeddings.detach().clone().requires_grad_(True)
    loss = loss_fn(leaf)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def random_case(n, d, num_labels, seed):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(n, d, dtype=torch.float64, generator=generator)
    labels = torch.randint(0, num_labels, (n,), generator=generator)
    return embeddings, labels
