"""Cross-contrast queries through the surrogate bridge (issue 12, part 4), beside raw pixels.

Gallery: every frame of ROOT/frames (the source contrast). Queries in the other contrast: the
external queries ROOT/queries/ (+ queries.csv) and every frame of ROOT/target/frames, a second,
unlabelled sequence in the queries' contrast (its labels.csv is read for scoring only). The
bridge (``baseline=surrogate`` with ``eval.adapt.target``) sees the target frames without labels.
Each target frame is rendered again as an outside image (shifted by one pixel), so that it is
*placed* on the target surrogate like any query, not looked up. Prints one JSON line per ROOT:
external queries' positives in the top 10 / 50, the target frames' mean P@10 (all, and the
label-1 ones), the same for raw pixels (32 px, standardised), and the bridge's record. Usage:

    python experiments/scripts/bridge_crosscontrast.py ROOT [ROOT ...] [--every 5]

ROOT: a phantom folder written with ``--set target_contrast=t2``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.queries import load_queries
from fastap_lab.evaluation.embed import embed_images, pixels_embedder
from fastap_lab.evaluation.surrogate_embedding import bridged_embedder, surrogate_embedder
from fastap_lab.retrieval.topk import topk_search

CPU = torch.device("cpu")


def positives(query, gallery, query_labels, gallery_labels, k: int) -> torch.Tensor:
    """[Q] gallery items with the query's label among each query's top k (cosine)."""
    _, index = topk_search(query, gallery, k)
    return (gallery_labels[index] == query_labels[:, None]).sum(1)


def score(embed_gallery, embed_queries, source, queries, target, every: int) -> dict:
    gallery = embed_images(embed_gallery, source.images, 256)
    row = {}
    for query in queries:
        q = embed_images(embed_queries, query.image[None], 1)
        label = torch.tensor([query.label])
        row[query.name] = [int(positives(q, gallery, label, source.labels, k)) for k in (10, 50)]
    picked = torch.arange(0, len(target), every)
    moved = torch.roll(target.images[picked], shifts=1, dims=-1)  # not a frame of the sequence
    p10 = positives(embed_images(embed_queries, moved, 64), gallery, target.labels[picked],
                    source.labels, 10).float() / 10  # fmt: skip
    hold = target.labels[picked] == 1
    row |= {"target_P@10": round(float(p10.mean()), 3),
            "target_label1_P@10": round(float(p10[hold].mean()), 3)}  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=5, help="every n-th target frame as a query")
    args = parser.parse_args()
    for root in args.roots:
        source = load_frame_folder(root, channels=1, image_size=64)
        target = load_frame_folder(root / "target", channels=1, image_size=64)
        queries = load_queries(root, channels=1, image_size=64)
        surrogate = surrogate_embedder(source, CPU)
        bridged, record = bridged_embedder(surrogate, target.images, str(root / "target"))
        pixels = pixels_embedder(source.images, 32, CPU)
        result = {
            "root": str(root),
            "bridge": score(surrogate, bridged, source, queries, target, args.every),
            "pixels": score(pixels, pixels, source, queries, target, args.every),
            "orientation_agreement": record["orientation_agreement"],
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
