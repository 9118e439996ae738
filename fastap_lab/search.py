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

import torch

from fastap_lab.cli import run_task
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.gallery_search import SearchSettings, run_search

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


# The module docstring is --help's text: the search itself is
# fastap_lab.evaluation.gallery_search.run_search.


def rebuild_checkpoint(checkpoint: str, device: torch.device, layer: str | None):
    """The gallery's checkpoint as an Embedder (imports Lightning: only without ``model=``)."""
    from fastap_lab.embedders import checkpoint_embedder

    return checkpoint_embedder(checkpoint, device, layer)


def search(options: dict) -> dict:
    """Run the search ``options`` describe (see the module docstring); returns search.json."""
    settings = SearchSettings(options["gallery"], options["query"], options["k"],
                              options["search.index"], options["labels"], options["out"],
                              options["batch_size"], options["model"])  # fmt: skip
    result = run_search(settings, rebuild_checkpoint)
    for note in result.record["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(result.text, end="")
    return result.record


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point: print the module docstring for -h / --help, else search."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return {}
    return run_task(lambda: search(parse_options(argv)))


if __name__ == "__main__":
    main()
