"""Optional FAISS backend for top-k tables of very large galleries (``pip install faiss-cpu``).

:func:`topk_search_faiss` returns what :func:`fastap_lab.retrieval.topk.topk_search` returns
(cosine scores and gallery indices, best first, ties to the lower index, the same k' clipping)
using an exact inner-product index (``IndexFlatIP``) over L2-normalised float32 rows. FAISS
knows nothing of the exclusion rule, so each query chunk over-fetches ``k + e`` neighbours,
where ``e`` is the largest number of gallery items any query of the chunk excludes (itself and,
with ``exclusion_window > 0``, its temporal neighbours); dropping the excluded ones leaves at
least ``k`` valid neighbours whenever the query has that many. Scores are FAISS's float32 inner
products, which may differ from torch's matmul in the last bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fastap_lab.errors import ConfigError
from fastap_lab.retrieval.exclusion import GalleryExclusion, check_embeddings, unit_rows
from fastap_lab.retrieval.topk import merge_topk


def import_faiss():
    """The ``faiss`` module, or a ConfigError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(
            "the FAISS backend needs the faiss-cpu package: pip install 'fastap-lab[faiss]'"
        ) from exc
    return faiss


def topk_search_faiss(
    query: Tensor,
    gallery: Tensor,
    k: int,
    *,
    query_index: Tensor | None = None,
    query_times: Tensor | None = None,
    gallery_times: Tensor | None = None,
    query_groups: Tensor | None = None,
    gallery_groups: Tensor | None = None,
    exclusion_window: float = 0.0,
    chunk_size: int = 1024,
    index=None,
) -> tuple[Tensor, Tensor]:
    """Exact cosine top-k through FAISS; arguments and results as in ``topk_search``.

    ``index``: an :func:`flat_ip_index` of ``gallery`` built before (e.g. a stored gallery's
    faiss.index), else built here. Memory: the index holds a float32 copy of the gallery
    (4 * G * D bytes); the exclusion count of a chunk takes chunk_size * G bytes (none without
    exclusions). Results are on the query's device.
    """
    check_embeddings(query, gallery, chunk_size)
    if k < 1:
        raise ConfigError(f"topk_search_faiss: k={k} must be >= 1")
    exclusion = _on_cpu(
        GalleryExclusion(
            query_index, query_times, gallery_times, query_groups, gallery_groups, exclusion_window
        )
    )
    index = flat_ip_index(gallery) if index is None else index
    units = unit_rows(query).detach().float().cpu()
    chunks = [
        _search_chunk(index, units, k, exclusion, slice(start, min(start + chunk_size, len(units))))
        for start in range(0, len(units), chunk_size)
    ]
    if not chunks:
        empty = torch.zeros(0, k)
        return empty.to(query.device), empty.long().to(query.device)
    k_effective = min(k, min(valid for _, _, valid in chunks))
    scores = torch.cat([s[:, :k_effective] for s, _, _ in chunks])
    indices = torch.cat([i[:, :k_effective] for _, i, _ in chunks])
    return scores.to(query.device), indices.to(query.device)


def flat_ip_index(gallery: Tensor | np.ndarray):
    """An exact inner-product index over the L2-normalised gallery rows [G, D]."""
    faiss = import_faiss()
    gallery = torch.as_tensor(gallery)
    units = np.ascontiguousarray(unit_rows(gallery).detach().float().cpu().numpy())
    index = faiss.IndexFlatIP(units.shape[1])
    index.add(units)
    return index


def _search_chunk(index, units: Tensor, k: int, exclusion: GalleryExclusion, rows: slice):
    """(scores [C, k], indices [C, k], fewest valid items of the chunk) for queries ``rows``."""
    num_gallery = index.ntotal
    excludes = exclusion.query_index is not None or exclusion.window > 0
    valid = (
        exclusion.valid_mask(rows, slice(0, num_gallery), num_gallery, units.device)
        if excludes
        else None
    )
    most_excluded = 0 if valid is None else int((~valid).sum(1).max().item())
    fetch = min(num_gallery, k + most_excluded)
    scores, indices = index.search(np.ascontiguousarray(units[rows].numpy()), fetch)
    scores, indices = torch.from_numpy(scores), torch.from_numpy(indices).long()
    # FAISS pads with -1 when fewer than `fetch` items exist; those and excluded ones drop out.
    keep = indices >= 0
    if valid is not None:
        keep &= valid.gather(1, indices.clamp(min=0))
    scores = scores.masked_fill(~keep, float("-inf"))
    scores, indices = merge_topk(scores, indices, k)  # FAISS's tie order is unspecified
    return scores, indices, num_gallery if valid is None else int(valid.sum(1).min().item())


def _on_cpu(exclusion: GalleryExclusion) -> GalleryExclusion:
    """The same exclusion with its tensors on the CPU (where FAISS's results are)."""
    fields = {
        name: (value.cpu() if isinstance(value, Tensor) else value)
        for name, value in vars(exclusion).items()
    }
    return GalleryExclusion(**fields)
