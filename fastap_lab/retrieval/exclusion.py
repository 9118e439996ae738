"""Which gallery items a query may see, and the checks every cosine search makes on its inputs.

One rule (:class:`GalleryExclusion`) for the metrics (:mod:`fastap_lab.retrieval.search`), the
exact top-k (:mod:`fastap_lab.retrieval.topk`) and FAISS (:mod:`fastap_lab.retrieval.faiss_search`):
an item is left out of a query's gallery when it is the query itself (``query_index``) or, with
``exclusion_window > 0``, when it lies within ``exclusion_window`` time units of the query in
the same group (video), because adjacent frames are near-duplicates that would make retrieval
trivially easy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fastap_lab.errors import ConfigError


@dataclass(frozen=True)
class GalleryExclusion:
    """Which gallery items each query must not see. All tensors on one device.

    Attributes:
        query_index: [Q] long, gallery index of the query itself, -1 if external; or None.
        query_times / gallery_times: [Q] / [G] times, used when ``window > 0``.
        query_groups / gallery_groups: [Q] / [G] long group (video) ids; None = one group.
        window: items with |t_g - t_q| <= window in the same group are excluded (if > 0).
    """

    query_index: Tensor | None = None
    query_times: Tensor | None = None
    gallery_times: Tensor | None = None
    query_groups: Tensor | None = None
    gallery_groups: Tensor | None = None
    window: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ConfigError(f"exclusion_window={self.window} must be >= 0 (0 disables it)")
        if self.window > 0 and (self.query_times is None or self.gallery_times is None):
            raise ConfigError(
                f"exclusion_window={self.window} needs frame times for queries and gallery; "
                "provide times or set exclusion_window=0"
            )
        if (self.query_groups is None) != (self.gallery_groups is None):
            raise ValueError("give both query_groups and gallery_groups, or neither")

    @property
    def excludes_nothing(self) -> bool:
        """True when every gallery item stays in every query's gallery (no mask is needed)."""
        return self.query_index is None and self.window == 0

    def valid_mask(self, rows: slice, cols: slice, num_cols: int, device: torch.device) -> Tensor:
        """[rows, cols] bool, True where the gallery item stays in the query's gallery.

        ``rows`` / ``cols`` are slices with explicit start and stop into queries / gallery;
        ``num_cols`` is ``cols.stop - cols.start``.
        """
        num_rows = rows.stop - rows.start
        valid = torch.ones(num_rows, num_cols, dtype=torch.bool, device=device)
        gallery_positions = torch.arange(cols.start, cols.stop, device=device)
        if self.query_index is not None:
            valid &= self.query_index[rows, None] != gallery_positions
        if self.window > 0:
            time_gap = self.query_times[rows, None].double() - self.gallery_times[cols].double()
            near = time_gap.abs() <= self.window
            if self.query_groups is not None:
                near &= self.query_groups[rows, None] == self.gallery_groups[cols]
            valid &= ~near
        return valid


def unit_rows(embeddings: Tensor) -> Tensor:
    """L2-normalised rows; half precision is upcast so cosine ties are not quantisation."""
    if embeddings.dtype not in (torch.float32, torch.float64):
        embeddings = embeddings.float()
    return F.normalize(embeddings, dim=1)


def check_embeddings(query: Tensor, gallery: Tensor, chunk_size: int) -> None:
    """Raise when the embeddings are not [Q, D] / [G, D] or the chunk size is below 1."""
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query {tuple(query.shape)} and gallery {tuple(gallery.shape)} must be [Q, D], [G, D]"
        )
    if chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size} must be >= 1")
