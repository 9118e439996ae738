"""Review one query: its top-K frames and the frames around each hit in time (notebook 02).

The reference report's first recommended action: look at what a query actually retrieves,
and at the neighbourhood in time of each hit, with scores and labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fastap_lab.analysis.runs import RunEmbeddings
from fastap_lab.data.queries import Query, load_queries, load_query_files
from fastap_lab.errors import DataError
from fastap_lab.evaluation.embed import pixels_embedder
from fastap_lab.retrieval.topk import topk_search


@dataclass
class Hit:
    """A retrieved frame (``index`` into the run's frames) and its neighbours in time.

    ``context`` lists frame indices of the same video in time order, the hit included;
    ``context_scores`` are their cosine scores against the query.
    """

    rank: int
    index: int
    score: float
    context: list[int]
    context_scores: list[float]


@dataclass
class QueryReview:
    """A query and its top-K hits in the gallery.

    A query (:class:`fastap_lab.data.queries.Query`) and its top-K hits in ``gallery``
    (``evaluated``: the metrics' frames, or ``all``).
    """

    query: Query
    gallery: str
    exclusion_window: float
    hits: list[Hit]

    @property
    def name(self) -> str:
        """The query's name (a frame name or the external image's file name)."""
        return self.query.name

    @property
    def image(self) -> torch.Tensor:
        """The query image, uint8 [C, H, W]."""
        return self.query.image

    @property
    def label(self) -> int | None:
        """The query's label, or None when it has none."""
        return self.query.label

    @property
    def frame_index(self) -> int | None:
        """The query's frame index in the sequence, or None for an external image."""
        return self.query.frame_index


def review_query(
    run: RunEmbeddings,
    query: int | str | Path,
    k: int = 10,
    context: int = 2,
    gallery: str = "evaluated",
    exclusion_window: float | None = None,
) -> QueryReview:
    """Top-``k`` review of a frame index (internal query) or an image file (external query).

    Internal queries never retrieve themselves, nor (like the metrics) frames of their video
    within ``exclusion_window`` (default: the run's evaluation window). An image under the
    data's ``queries/`` folder takes its label from ``queries.csv``; other files are unlabelled.
    External images are embedded with the run's checkpoint (or its pixels baseline).
    """
    if gallery not in ("evaluated", "all"):
        raise DataError(f"gallery={gallery!r}: choose 'evaluated' (held-out frames) or 'all'")
    if k < 1 or context < 0:
        raise DataError(f"k={k}, context={context}: need k >= 1 and context >= 0")
    found_query, vector = _query(run, query)
    frame_index = found_query.frame_index
    every_frame = torch.arange(len(run.frame_names))
    members = every_frame[run.evaluated] if gallery == "evaluated" else every_frame
    window = run.exclusion_window if exclusion_window is None else float(exclusion_window)
    internal = frame_index is not None
    anchor = frame_index if internal else 0  # an external query has no time: window 0 below
    own_position = (members == anchor).nonzero().flatten().tolist() if internal else []
    scores, found = topk_search(
        vector[None], run.embeddings[members], min(k, len(members)),
        query_index=torch.tensor(own_position[:1] or [-1]),
        query_times=run.times[[anchor]], gallery_times=run.times[members],
        query_groups=run.videos[[anchor]], gallery_groups=run.videos[members],
        exclusion_window=window if internal else 0.0,
    )  # fmt: skip
    all_scores = run.embeddings @ vector
    hits = [
        _hit(run, rank, int(members[i]), float(s), context, all_scores)
        for rank, (s, i) in enumerate(zip(scores[0].tolist(), found[0].tolist(), strict=True), 1)
        if i >= 0  # fewer valid frames than k
    ]
    return QueryReview(found_query, gallery, window, hits)


def _query(run: RunEmbeddings, query) -> tuple[Query, torch.Tensor]:
    """(the Query, its embedding [D]) of a frame index or an image file."""
    frames = run.frames()
    if isinstance(query, int):
        if not 0 <= query < len(run.frame_names):
            raise DataError(f"query frame {query} does not exist (0..{len(run.frame_names) - 1})")
        label = None if run.labels is None else int(run.labels[query])
        found = Query(run.frame_names[query], frames.images[query], label, frame_index=query)
        return found, run.embeddings[query]
    path = Path(query).expanduser()
    size, channels = frames.images.shape[-1], frames.images.shape[1]
    known = {
        q.path.resolve(): q for q in load_queries(frames.root, channels=channels, image_size=size)
    }
    found = (
        known.get(path.resolve()) or load_query_files([path], channels=channels, image_size=size)[0]
    )
    if path.resolve() not in known:  # a file outside queries/: its label is unknown
        found.label = None
    with torch.inference_mode():
        vector = _embedder(run)(found.image[None]).float()[0]
    return found, vector


def _embedder(run: RunEmbeddings):
    record = run.evaluation.metrics
    device = torch.device("cpu")
    if record.get("checkpoint"):
        from fastap_lab.embedders import checkpoint_embedder  # glue: rebuilds the Lightning module

        return checkpoint_embedder(record["checkpoint"], device, record.get("embed_layer")).embed
    if record.get("model") == "pixels":
        return pixels_embedder(
            run.frames().images, (record.get("baseline") or {}).get("size"), device
        ).embed
    raise DataError(
        f"{run.evaluation.path}: a {record.get('model')} evaluation cannot embed a new image;"
        " review an internal query (a frame index) or use a checkpoint run"
    )


def _hit(run: RunEmbeddings, rank: int, index: int, score: float, context: int, all_scores) -> Hit:
    same_video = (run.videos == run.videos[index]).nonzero().flatten()
    in_time = same_video[run.times[same_video].argsort(stable=True)]
    position = int((in_time == index).nonzero()[0])
    window = in_time[max(0, position - context) : position + context + 1].tolist()
    return Hit(rank, index, score, window, [float(all_scores[i]) for i in window])


def hits_rows(run: RunEmbeddings, review: QueryReview) -> list[dict]:
    """The review's top-K as table rows: rank, frame, score, label, time, relevant."""
    rows = []
    for hit in review.hits:
        label = None if run.labels is None else int(run.labels[hit.index])
        relevant = "" if label is None or review.label is None else label == review.label
        rows.append({
            "rank": hit.rank, "frame": run.frame_names[hit.index], "score": hit.score,
            "label": "" if label is None else label, "time": float(run.times[hit.index]),
            "relevant": relevant,
        })  # fmt: skip
    return rows
