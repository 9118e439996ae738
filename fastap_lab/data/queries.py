"""Retrieval queries: internal frames and external images, and their readers.

Retrieval queries: one :class:`Query` for an internal frame or an external image, the
readers of ``ROOT/queries/`` (+ ``queries.csv``) and of image files given one by one, and the
queries of an evaluation (:func:`collect_queries`, from the plain ``eval.queries`` values).

Images are decoded with the rules of :mod:`fastap_lab.data.frames`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data.decode import check_decode_settings, count_noun, load_image
from fastap_lab.data.frames import FrameSet, check_listed_files_exist, list_images
from fastap_lab.data.label_table import LabelTable, read_label_table
from fastap_lab.errors import ConfigError, DataError


@dataclass
class Query:
    """A retrieval query: a frame of the sequence or an external image.

    A retrieval query: a frame of the sequence (``frame_index`` set) or an external image
    (``path`` set). ``image``: uint8 [C, H, W]; ``label``: None when unknown.
    """

    name: str
    image: torch.Tensor
    label: int | None
    frame_index: int | None = None
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``internal`` for a frame of the sequence, ``external`` for an image file."""
        return "internal" if self.frame_index is not None else "external"


def frame_query(frames: FrameSet, index: int) -> Query:
    """Frame ``index`` of ``frames`` as an internal query (its label, None without labels)."""
    label = None if frames.labels is None else int(frames.labels[index])
    return Query(frames.names[index], frames.images[index], label, frame_index=int(index))


def collect_queries(frames: FrameSet, spec, *, channels: int, image_size: int) -> list[Query]:
    """Internal frames ``eval.queries.internal`` then the external query images.

    ``spec``: the plain ``eval.queries`` values (``internal``, ``from_data``, ``external``,
    ``external_labels``); the data folder's ``queries/`` come first among the external ones.
    """
    queries = []
    for i in spec["internal"]:
        if not 0 <= int(i) < len(frames):
            raise ConfigError(
                f"eval.queries.internal: frame {i} does not exist (0..{len(frames) - 1})"
            )
        queries.append(frame_query(frames, int(i)))
    images = (
        load_queries(frames.root, channels=channels, image_size=image_size)
        if spec["from_data"]
        else []
    )
    if spec["external"]:
        labels = None if spec["external_labels"] is None else list(spec["external_labels"])
        images += load_query_files(
            list(spec["external"]), channels=channels, image_size=image_size, labels=labels
        )
    return queries + images


def _query_image(path: Path, name: str, label: int, channels: int, image_size: int) -> Query:
    array, notes = load_image(path, channels=channels, image_size=image_size)
    return Query(name=name, image=torch.from_numpy(array), label=label, path=path, notes=notes)


def load_queries(root: str | Path, *, channels: int, image_size: int) -> list[Query]:
    """``ROOT/queries/*`` in queries.csv order, then unlisted images (label 1) in natural order.

    Returns [] when neither ``ROOT/queries`` nor ``ROOT/queries.csv`` exists.
    """
    check_decode_settings(channels, image_size)
    queries_dir, queries_csv = Path(root) / "queries", Path(root) / "queries.csv"
    if not queries_dir.is_dir() and not queries_csv.is_file():
        return []
    available = list_images(queries_dir) if queries_dir.is_dir() else []
    table = LabelTable.from_keys(queries_csv, "query", [])
    if queries_csv.is_file():
        table = read_label_table(queries_csv, key_column="query", need_label=True)
        check_listed_files_exist(table, queries_dir, available)
    listed = set(table.keys)
    unlisted = [name for name in available if name not in listed]
    labels = list(table.labels or []) + [1] * len(unlisted)
    queries = [
        _query_image(queries_dir / name, name, label, channels, image_size)
        for name, label in zip(list(table.keys) + unlisted, labels, strict=True)
    ]
    for query in queries[len(table.keys) :]:
        query.notes.append("not listed in queries.csv; label 1")
    return queries


def load_query_files(
    paths: list[str | Path],
    *,
    channels: int,
    image_size: int,
    labels: list[int] | None = None,
) -> list[Query]:
    """Query images given one by one (e.g. on the command line); label 1 unless ``labels``."""
    check_decode_settings(channels, image_size)
    if labels is not None and len(labels) != len(paths):
        raise DataError(
            f"got {count_noun(len(paths), 'query file')} but {count_noun(len(labels), 'query label')}; "
            "give one label per query file, or none (every query then gets label 1)"
        )
    queries = []
    for i, path in enumerate(Path(p).expanduser() for p in paths):
        if not path.is_file():
            raise DataError(f"query file {path} does not exist; check the path")
        label = 1 if labels is None else _integer_label(labels[i], path)
        queries.append(_query_image(path, path.name, label, channels, image_size))
    return queries


def _integer_label(value: object, path: Path) -> int:
    is_integral = isinstance(value, (int, np.integer)) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )
    if isinstance(value, bool) or not is_integral:
        raise DataError(f"query {path}: label {value!r} is not an integer; give integer labels")
    return int(value)
