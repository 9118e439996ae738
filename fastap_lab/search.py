"""Search a stored gallery for the frames nearest to each query image.

``python -m fastap_lab.search gallery=DIR query=IMG [query=IMG …] [k=20] [model=FILE]
[search.index=exact|faiss] [labels=…] [out=DIR]`` — the top-K frames of a stored gallery
(:mod:`fastap_lab.retrieval.gallery`) for each query image.

No Hydra: ``key=value`` arguments are parsed here, so with an exported model
(``model=<export>/embedder.onnx|.pt``) neither Hydra nor Lightning is imported. Without
``model=`` the gallery's own checkpoint embeds the queries (that rebuilds the Lightning module).
Queries: ``query=a.png query=b.png``, ``query=a.png,b.png``, ``query=[a.png,b.png]`` or a
folder of images; ``labels=1,0`` gives their labels (then P@K is printed when the gallery has
labels). Writes ``results.csv``, ``grid.png`` and ``search.json`` into ``out`` (must not exist)
or ``<gallery>/search`` (``search-2``, … when taken).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from fastap_lab import __version__, io
from fastap_lab.cli import run_task
from fastap_lab.data.frames import list_images
from fastap_lab.data.queries import Query, load_query_files
from fastap_lab.errors import ConfigError, DataError
from fastap_lab.evaluation.report import csv_text, json_safe, new_output_dir
from fastap_lab.evaluation.tables import RetrievalTable
from fastap_lab.retrieval.gallery import Gallery, read_gallery, search_gallery

DEFAULTS = {"gallery": None, "query": [], "k": 20, "model": None, "search.index": "exact",
            "labels": None, "out": None, "batch_size": 256}  # fmt: skip
LISTS = ("query", "labels")


def parse_options(argv: list[str]) -> dict:
    """Parse the command line into the search options.

    ``key=value`` arguments -> options; ``query``/``labels`` collect (repeatable, comma or
    ``[a,b]`` lists). An unknown key or a word without ``=`` is one ConfigError line.
    """
    options = {**DEFAULTS, "query": [], "labels": None}
    for word in argv:
        key, sep, value = word.partition("=")
        key = "search.index" if key == "index" else key
        if not sep or key not in DEFAULTS:
            raise ConfigError(f"{word!r}: arguments are key=value with key one of {list(DEFAULTS)}")
        if key in LISTS:
            items = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
            options[key] = (options[key] or []) + items
        elif key in ("k", "batch_size"):
            try:
                options[key] = int(value)
            except ValueError:
                raise ConfigError(f"{key}={value!r}: give an integer") from None
        else:
            options[key] = value or None
    if not options["gallery"]:
        raise ConfigError(
            "gallery is not set: give gallery=<folder written by python -m fastap_lab.embed>"
        )
    if options["k"] < 1 or options["batch_size"] < 1:
        raise ConfigError(
            f"k={options['k']}, batch_size={options['batch_size']}: each must be >= 1"
        )
    if not options["query"]:
        raise ConfigError("query is not set: give query=<image> (repeatable) or a folder of images")
    return options


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


def load_queries(options: dict, gallery: Gallery) -> list[Query]:
    """The query images, decoded as the gallery's frames were, with their labels if given."""
    spec = gallery.preprocess
    labels = options["labels"]
    paths = query_paths(options["query"])
    queries = load_query_files(paths, channels=spec.channels, image_size=spec.image_size,
                               labels=None if labels is None else [int(v) for v in labels])  # fmt: skip
    if labels is None:
        for query in queries:
            query.label = None
    return queries


def query_embedder(options: dict, gallery: Gallery):
    """(uint8 [Q, C, H, W] -> float32 [Q, D], description, notes)."""
    from fastap_lab.retrieval.gallery import check_same_model

    batch = options["batch_size"]
    if options["model"]:
        from fastap_lab.exported import load_exported

        model = load_exported(options["model"])
        notes = check_same_model(gallery.record["model"], model.record["model"], options["model"])
        return lambda images: model.embed(images, batch), f"{model.format} {model.path}", notes
    from fastap_lab.embedders import checkpoint_embedder
    from fastap_lab.evaluation.embed import embed_images

    stored = gallery.record["model"]
    embedder = checkpoint_embedder(stored["checkpoint"], torch.device("cpu"), stored["embed_layer"])
    notes = check_same_model(stored, {**stored, "sha256": _sha(stored["checkpoint"])}, "checkpoint")
    return lambda images: embed_images(embedder, images, batch), stored["checkpoint"], notes


def _sha(path: str) -> str:
    from fastap_lab.checkpoints import file_sha256

    return file_sha256(path)


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


def print_tables(tables: list[RetrievalTable], gallery: Gallery) -> None:
    """Print each query's ranked frames (frame, time, label, score), with P@k when known."""
    table = gallery.table
    for result in tables:
        query = result.query
        line = f"query {query.name}" + ("" if query.label is None else f" (label {query.label})")
        if result.positives:
            ((k, same),) = result.positives.items()
            line += f": P@{k} = {same / k:.3f}"
        print(line)
        print(f"{'rank':>4}  {'frame':<24} {'time':>10} {'label':>5} {'score':>9}")
        for rank, (i, score) in enumerate(zip(result.indices, result.scores, strict=True), 1):
            label = table.label(i)
            print(f"{rank:>4}  {table.names[i][:24]:<24} {table.times[i]:>10.3f}"
                  f" {'' if label is None else label:>5} {score:>9.4f}")  # fmt: skip


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


def search(options: dict) -> dict:
    """Run the search ``options`` describe (see the module docstring); returns search.json."""
    gallery = read_gallery(options["gallery"])
    queries = load_queries(options, gallery)
    embed, model, notes = query_embedder(options, gallery)
    notes += [f"query {q.name}: {note}" for q in queries for note in q.notes]
    if gallery.preprocess.register:
        notes.append("the gallery's frames were registered (data.register); the queries are not")
    with torch.inference_mode():
        embeddings = embed(torch.stack([q.image for q in queries]))
    scores, indices, clip_notes = search_gallery(gallery, embeddings.numpy(), options["k"],
                                                 options["search.index"])  # fmt: skip
    notes += clip_notes
    tables = tables_of(queries, scores, indices, gallery)
    out = new_output_dir(options["out"], gallery.folder / "search", "search")
    record = {
        "gallery": str(gallery.folder.resolve()), "model": model, "k": int(indices.shape[1]),
        "index": options["search.index"], "queries": [str(q.path) for q in queries],
        "notes": notes, "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "fastap_lab_version": __version__,
    }  # fmt: skip
    with io.atomic_folder(out) as tmp:
        io.write_text(tmp / "results.csv", results_csv(tables, gallery))
        write_grid(tmp / "grid.png", tables, gallery)
        io.write_json(tmp / "search.json", json_safe(record))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print_tables(tables, gallery)
    print(f"outputs: {out}")
    return record


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point: print the module docstring for -h / --help, else search."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return {}
    return run_task(lambda: search(parse_options(argv)))


if __name__ == "__main__":
    main()
