"""A stored gallery: embedded frames to search many times.

``python -m fastap_lab.embed`` writes one, ``python -m fastap_lab.search`` reads it. The folder
holds:

- ``embeddings.npy``: float32 [N, D], L2-normalised rows, in frames.csv order;
- ``frames.csv``: ``index,frame,time,label,video`` (label empty when unknown);
- ``thumbs.npy``: uint8 [N, C, t, t] small copies of the frames for search's grid (optional);
- ``gallery.json``: what it is — count, D, the model's identity (checkpoint path + sha256,
  stage, embed layer, preprocessing spec), the data source, creation time, version;
- ``faiss.index``: an exact inner-product FAISS index, built by the first ``search.index=faiss``.

gallery.json is written last: a folder with it is complete.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastap_lab import io
from fastap_lab.data.preprocess import PreprocessSpec
from fastap_lab.errors import DataError
from fastap_lab.evaluation.report import csv_text

GALLERY_JSON, EMBEDDINGS, FRAMES, THUMBS, FAISS_INDEX = (
    "gallery.json", "embeddings.npy", "frames.csv", "thumbs.npy", "faiss.index",
)  # fmt: skip
FORMAT = "fastap_lab gallery"


@dataclass
class FrameTable:
    """What is known of each gallery frame (frames.csv).

    Per gallery frame: ``names`` (file name, or a video's frame index), ``times`` float64
    [N] (NaN unknown), ``labels`` int64 [N] (-1 unknown) or None, ``videos`` (source / group).
    """

    names: list[str]
    times: np.ndarray
    labels: np.ndarray | None
    videos: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def label(self, index: int) -> int | None:
        """The label of frame ``index``, or None when unknown."""
        value = None if self.labels is None else int(self.labels[index])
        return None if value is None or value < 0 else value


def frames_csv(table: FrameTable) -> str:
    """The text of frames.csv: ``index,frame,time,label,video`` (label empty when unknown)."""
    labels = (
        [""] * len(table)
        if table.labels is None
        else [str(v) if v >= 0 else "" for v in table.labels]
    )
    rows = [[i, n, f"{t:.6f}", lab, v] for i, (n, t, lab, v) in
            enumerate(zip(table.names, table.times, labels, table.videos, strict=True))]  # fmt: skip
    return csv_text(["index", "frame", "time", "label", "video"], rows)


def read_frames_csv(path: Path) -> FrameTable:
    """The FrameTable of a frames.csv (labels None when no frame has one)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) if r["label"] else -1 for r in rows], dtype=np.int64)
    return FrameTable(
        names=[r["frame"] for r in rows], times=np.array([float(r["time"]) for r in rows]),
        labels=labels if (labels >= 0).any() else None, videos=[r["video"] for r in rows],
    )  # fmt: skip


def write_gallery(folder: Path, embeddings: np.ndarray, table: FrameTable,
                  thumbs: np.ndarray | None, record: dict) -> None:  # fmt: skip
    """The files of a gallery into ``folder`` (a temporary one, see io.atomic_folder)."""
    io.write_npy(folder / EMBEDDINGS, np.ascontiguousarray(embeddings, dtype=np.float32))
    io.write_text(folder / FRAMES, frames_csv(table))
    if thumbs is not None:
        io.write_npy(folder / THUMBS, thumbs)
    io.write_json(folder / GALLERY_JSON, {"format": FORMAT, **record})


@dataclass
class Gallery:
    """A gallery read back: ``embeddings`` float32 [N, D], its frames, thumbnails or None."""

    folder: Path
    record: dict
    embeddings: np.ndarray
    table: FrameTable
    thumbs: np.ndarray | None

    @property
    def preprocess(self) -> PreprocessSpec:
        """The input preprocessing of the model that embedded the gallery (gallery.json)."""
        return PreprocessSpec.from_dict(self.record["model"]["preprocess"], str(self.folder))

    @property
    def dim(self) -> int:
        """D, the embedding dimension."""
        return int(self.embeddings.shape[1])


def read_gallery(path: str | Path) -> Gallery:
    """Read and check a gallery folder; any problem is one DataError line."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"gallery={folder}: no such folder; give a folder written by"
                        " python -m fastap_lab.embed")  # fmt: skip
    if not (folder / GALLERY_JSON).is_file():
        raise DataError(f"gallery={folder}: not a gallery (no {GALLERY_JSON}); give a folder"
                        " written by python -m fastap_lab.embed")  # fmt: skip
    try:
        record = json.loads((folder / GALLERY_JSON).read_text(encoding="utf-8"))
        embeddings = np.load(folder / EMBEDDINGS, allow_pickle=False)
        table = read_frames_csv(folder / FRAMES)
        thumbs = (
            np.load(folder / THUMBS, allow_pickle=False) if (folder / THUMBS).is_file() else None
        )
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"gallery={folder}: unreadable or incomplete ({exc})") from exc
    if record.get("format") != FORMAT or "model" not in record:
        raise DataError(f"gallery={folder}: {GALLERY_JSON} is not a fastap_lab gallery record")
    if embeddings.ndim != 2 or embeddings.dtype != np.float32 or len(embeddings) != len(table):
        raise DataError(f"gallery={folder}: embeddings {embeddings.dtype}{list(embeddings.shape)}"
                        f" do not fit {len(table)} frames in {FRAMES}; embed it again")  # fmt: skip
    if thumbs is not None and len(thumbs) != len(table):
        thumbs = None
    norms = np.linalg.norm(embeddings, axis=1)
    if len(norms) and float(np.abs(norms - 1.0).max()) > 1e-3:
        # the searches take the rows as unit vectors (cosine = inner product), as faiss.index does
        raise DataError(f"gallery={folder}: {EMBEDDINGS} rows are not unit vectors (norms"
                        f" {norms.min():.3g}..{norms.max():.3g}); embed it again")  # fmt: skip
    return Gallery(folder, record, embeddings, table, thumbs)


def gallery_index(gallery: Gallery):
    """Load or build the gallery's exact FAISS index.

    The gallery's exact FAISS index (``IndexFlatIP``): read from faiss.index, else built and
    stored there (atomically) for the next search. For millions of frames an IVF index
    (``faiss.IndexIVFFlat``) trades exactness for speed; not built here.
    """
    from fastap_lab.retrieval.faiss_search import flat_ip_index, import_faiss

    faiss, path = import_faiss(), gallery.folder / FAISS_INDEX
    if path.is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == len(gallery.embeddings) and index.d == gallery.dim:
            return index
    index = flat_ip_index(gallery.embeddings)
    io.atomic_write(path, lambda f: f.write(faiss.serialize_index(index).tobytes()))
    return index


def search_gallery(gallery: Gallery, queries, k: int, index: str = "exact"):
    """Search the gallery for the nearest neighbours of each query.

    Top-``k`` cosine neighbours of unit query rows float32 [Q, D] in the gallery: (scores
    [Q, k'], indices [Q, k'] long, notes), k' = min(k, N) (clipped with a note). ``index``:
    ``exact`` (chunked matmul, :func:`~fastap_lab.retrieval.topk.topk_search`) or ``faiss``
    (the gallery's stored exact index, :func:`gallery_index`); both rank ties to the lower index.
    """
    import torch

    from fastap_lab.errors import ConfigError
    from fastap_lab.retrieval.faiss_search import topk_search_faiss
    from fastap_lab.retrieval.topk import topk_search

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r}: give the number of neighbours, an integer >= 1")
    if index not in ("exact", "faiss"):
        raise ConfigError(f"search.index={index!r}: choose exact or faiss")
    notes = []
    count = len(gallery.embeddings)
    if k > count:
        notes.append(f"k={k} is more than the gallery's {count} frames: k={count}")
        k = count
    query = torch.as_tensor(queries, dtype=torch.float32)
    stored = torch.from_numpy(gallery.embeddings)
    if index == "faiss":
        scores, indices = topk_search_faiss(query, stored, k, index=gallery_index(gallery))
    else:
        scores, indices = topk_search(query, stored, k, unit_gallery=True)
    return scores, indices, notes


def check_same_model(stored: dict, other: dict, what: str) -> list[str]:
    """Check that a model embeds like the gallery's; return notes on lesser differences.

    Refuse to search a gallery with a model that embeds differently: the ``model`` records
    (gallery.json / preprocess.json) must agree on D, the embedded layer and the preprocessing.
    Another checkpoint with all of those equal is searched with a note (its space differs).
    """
    from fastap_lab.errors import ConfigError

    mine = PreprocessSpec.from_dict(stored["preprocess"], "gallery")
    theirs = PreprocessSpec.from_dict(other["preprocess"], what)
    differs = mine.differences(theirs)
    for key in ("dim", "embed_layer", "stage"):
        if stored.get(key) != other.get(key):
            differs.append(f"{key} {stored.get(key)} != {other.get(key)}")
    if differs:
        raise ConfigError(f"model={what} does not embed like the gallery's model ({'; '.join(differs)});"
                          " search with the model that embedded it, or embed the gallery again")  # fmt: skip
    if stored.get("sha256") != other.get("sha256"):
        return [
            f"{what}: another checkpoint (sha256 {str(other.get('sha256'))[:12]}…) than the"
            f" gallery's ({str(stored.get('sha256'))[:12]}…); its embeddings may not be comparable"
        ]
    return []
