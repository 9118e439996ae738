"""Querying a stored gallery with image files: the work behind ``python -m fastap_lab.search``.

Owns loading the query images as the gallery's frames were decoded, embedding them (an exported
model, or the gallery's own checkpoint rebuilt by a function the caller gives), the ranked table
of each query, the search folder (``results.csv``, ``grid.png``, ``search.json``, written
atomically) and the text the command prints (:func:`run_search`). The gallery itself:
:mod:`fastap_lab.retrieval.gallery`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from fastap_lab import __version__, io
from fastap_lab.data.frames import list_images
from fastap_lab.data.queries import Query, load_query_files
from fastap_lab.errors import DataError
from fastap_lab.evaluation.embed import Embedder
from fastap_lab.evaluation.report import csv_text, json_safe, new_output_dir
from fastap_lab.evaluation.tables import RetrievalTable
from fastap_lab.retrieval.gallery import Gallery, check_same_model, read_gallery, search_gallery

# (checkpoint, device, embed layer) -> the checkpoint's Embedder (fastap_lab.embedders: Lightning)
RebuildCheckpoint = Callable[[str, torch.device, str | None], Embedder]


@dataclass
class SearchSettings:
    """What to search: the options of ``python -m fastap_lab.search``.

    Attributes:
        gallery: the gallery folder.
        query: image files or folders of images.
        k: how many frames per query.
        index: ``exact`` or ``faiss``.
        labels: the queries' labels (as given), or None.
        out: the output folder (must not exist), or None for ``<gallery>/search[-N]``.
        batch_size: images embedded at a time.
        model: an exported model (``embedder.onnx`` / ``embedder.pt``), or None for the
            gallery's checkpoint.
    """

    gallery: str
    query: list[str]
    k: int = 20
    index: str = "exact"
    labels: list[str] | None = None
    out: str | None = None
    batch_size: int = 256
    model: str | None = None


@dataclass
class SearchResult:
    """A finished search: search.json's ``record``, its folder and the text for stdout."""

    record: dict
    out: Path
    text: str


def query_paths(values: list[str]) -> list[Path]:
    """Image files; a folder stands for its images (natural order)."""
    paths = []
    for value in values:
        path = Path(value).expanduser()
        if path.is_dir():
            names = list_images(path)
            if not names:
                raise DataError(f"query={path}: a folder without images (.png, .jpg, .tif, …)")
            paths += [path / name for name in names]
        else:
            paths.append(path)
    return paths


def load_queries(settings: SearchSettings, gallery: Gallery) -> list[Query]:
    """The query images, decoded as the gallery's frames were, with their labels if given."""
    spec = gallery.preprocess
    labels = settings.labels
    paths = query_paths(settings.query)
    queries = load_query_files(paths, channels=spec.channels, image_size=spec.image_size,
                               labels=None if labels is None else [int(v) for v in labels])  # fmt: skip
    if labels is None:
        for query in queries:
            query.label = None
    return queries


def query_embedder(settings: SearchSettings, gallery: Gallery, rebuild: RebuildCheckpoint):
    """(uint8 [Q, C, H, W] -> float32 [Q, D], description, notes).

    ``settings.model`` when given (no Lightning), else the gallery's checkpoint via ``rebuild``.
    """
    batch = settings.batch_size
    if settings.model:
        from fastap_lab.exported import load_exported

        model = load_exported(settings.model)
        notes = check_same_model(gallery.record["model"], model.record["model"], settings.model)
        return lambda images: model.embed(images, batch), f"{model.format} {model.path}", notes
    from fastap_lab.checkpoints import file_sha256
    from fastap_lab.evaluation.embed import embed_images

    stored = gallery.record["model"]
    embedder = rebuild(stored["checkpoint"], torch.device("cpu"), stored["embed_layer"])
    sha = file_sha256(stored["checkpoint"])
    notes = check_same_model(stored, {**stored, "sha256": sha}, "checkpoint")
    return lambda images: embed_images(embedder, images, batch), stored["checkpoint"], notes


def tables_of(queries, scores, indices, gallery: Gallery) -> list[RetrievalTable]:
    """One RetrievalTable per query (its positives among the top k when labels are known)."""
    tables = []
    for query, row_scores, row_indices in zip(
        queries, scores.tolist(), indices.tolist(), strict=True
    ):
        positives = None
        if query.label is not None and gallery.table.labels is not None:
            same = sum(gallery.table.label(i) == query.label for i in row_indices)
            positives = {len(row_indices): same}
        tables.append(RetrievalTable(query, row_indices, row_scores, positives))
    return tables


def tables_text(tables: list[RetrievalTable], gallery: Gallery) -> str:
    """Each query's ranked frames (frame, time, label, score), with P@k when known; one line each."""
    table, lines = gallery.table, []
    for result in tables:
        query = result.query
        line = f"query {query.name}" + ("" if query.label is None else f" (label {query.label})")
        if result.positives:
            ((k, same),) = result.positives.items()
            line += f": P@{k} = {same / k:.3f}"
        lines.append(line)
        lines.append(f"{'rank':>4}  {'frame':<24} {'time':>10} {'label':>5} {'score':>9}")
        for rank, (i, score) in enumerate(zip(result.indices, result.scores, strict=True), 1):
            label = table.label(i)
            lines.append(f"{rank:>4}  {table.names[i][:24]:<24} {table.times[i]:>10.3f}"
                         f" {'' if label is None else label:>5} {score:>9.4f}")  # fmt: skip
    return "".join(f"{line}\n" for line in lines)


def results_csv(tables: list[RetrievalTable], gallery: Gallery) -> str:
    """The text of results.csv: one row per query and rank."""
    table, rows = gallery.table, []
    for result in tables:
        for rank, (i, score) in enumerate(zip(result.indices, result.scores, strict=True), 1):
            label = table.label(i)
            rows.append([result.query.name, rank, i, table.names[i], f"{table.times[i]:.6f}",
                         "" if label is None else label, table.videos[i], repr(float(score))])  # fmt: skip
    return csv_text(["query", "rank", "index", "frame", "time", "label", "video", "score"], rows)


def write_grid(path: Path, tables: list[RetrievalTable], gallery: Gallery) -> None:
    """grid.png from the gallery's thumbnails (blank frames when it stored none)."""
    from types import SimpleNamespace

    from fastap_lab.evaluation.grid import write_grid as draw

    spec = gallery.preprocess
    thumbs = gallery.thumbs if gallery.thumbs is not None else None
    images = (torch.from_numpy(thumbs) if thumbs is not None
              else torch.zeros(len(gallery.table), spec.channels, 8, 8, dtype=torch.uint8))  # fmt: skip
    labels = None if gallery.table.labels is None else torch.from_numpy(gallery.table.labels)
    draw(path, tables, SimpleNamespace(images=images, labels=labels))


def run_search(settings: SearchSettings, rebuild: RebuildCheckpoint) -> SearchResult:
    """Search the gallery for each query and write the search folder.

    Args:
        settings: what to search.
        rebuild: rebuilds the gallery's checkpoint when ``settings.model`` is unset.

    Returns:
        search.json's record (its ``notes`` for stderr), the folder, and the ranked tables
        followed by ``outputs: <folder>`` as the text for stdout.
    """
    gallery = read_gallery(settings.gallery)
    queries = load_queries(settings, gallery)
    embed, model, notes = query_embedder(settings, gallery, rebuild)
    notes += [f"query {q.name}: {note}" for q in queries for note in q.notes]
    if gallery.preprocess.register:
        notes.append("the gallery's frames were registered (data.register); the queries are not")
    with torch.inference_mode():
        embeddings = embed(torch.stack([q.image for q in queries]))
    scores, indices, clip_notes = search_gallery(gallery, embeddings.numpy(), settings.k,
                                                 settings.index)  # fmt: skip
    notes += clip_notes
    tables = tables_of(queries, scores, indices, gallery)
    out = new_output_dir(settings.out, gallery.folder / "search", "search")
    record = {
        "gallery": str(gallery.folder.resolve()), "model": model, "k": int(indices.shape[1]),
        "index": settings.index, "queries": [str(q.path) for q in queries],
        "notes": notes, "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "fastap_lab_version": __version__,
    }  # fmt: skip
    with io.atomic_folder(out) as tmp:
        io.write_text(tmp / "results.csv", results_csv(tables, gallery))
        write_grid(tmp / "grid.png", tables, gallery)
        io.write_json(tmp / "search.json", json_safe(record))
    return SearchResult(record, out, tables_text(tables, gallery) + f"outputs: {out}\n")
