"""Cross-contrast queries with and without AdaBN (issue 12, part 4), beside raw pixels.

Gallery: every frame of ROOT/frames (the source contrast). Queries in the other contrast:
the phantom's external queries ROOT/queries/ (invivo.png label 1, invivo_exhale.png label 0)
and every frame of ROOT/target/frames (its labels, ROOT/target/labels.csv, are used for scoring
only). AdaBN adapts to ROOT/target/frames without its labels. Prints, per embedding, the
positives in the top 10 / 50 of each external query and, over the target frames as queries,
the mean P@10 / P@50, and for the label-1 (breath-hold) target frames the mean P@10 and the share
with >= 8 positives in their top 10. Usage:

    python experiments/scripts/adabn_crosscontrast.py ROOT RUN [RUN ...] [--layer projector]

ROOT: a phantom folder written with ``--set target_contrast=t2`` (branch i12a's
cross-contrast preset); RUN: a training run folder or .ckpt.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.queries import load_queries
from fastap_lab.embedders import checkpoint_embedder
from fastap_lab.evaluation.adapt import adapted_embedder, load_target_images
from fastap_lab.evaluation.embed import embed_images, pixels_embedder
from fastap_lab.retrieval.topk import topk_search

CPU = torch.device("cpu")


def positives(query, gallery, query_labels, gallery_labels, k: int) -> torch.Tensor:
    """[Q] number of gallery items with the query's label among its top k (cosine)."""
    _, index = topk_search(query, gallery, k)
    return (gallery_labels[index] == query_labels[:, None]).sum(1)


def score(name, embed_gallery, embed_queries, data) -> dict:
    gallery = embed_gallery(data["frames"].images)
    row = {"embedding": name}
    for query in data["queries"]:
        q = embed_queries(query.image[None])
        label = torch.tensor([query.label])
        row[query.name] = [
            int(positives(q, gallery, label, data["frames"].labels, k)) for k in (10, 50)
        ]
    targets = embed_queries(data["target"])
    p10 = positives(targets, gallery, data["target_labels"], data["frames"].labels, 10)
    p50 = positives(targets, gallery, data["target_labels"], data["frames"].labels, 50)
    hold = data["target_labels"] == 1  # the minority label, as invivo.png's
    row |= {
        "target_P@10": round(float(p10.float().mean()) / 10, 3),
        "target_P@50": round(float(p50.float().mean()) / 50, 3),
        "target_label1_P@10": round(float(p10[hold].float().mean()) / 10, 3),
        "target_label1_share_8_of_10": round(float((p10[hold] >= 8).float().mean()), 3),
    }
    return row


def pixel_rows(data) -> list[dict]:
    frames, target = data["frames"].images, data["target"]
    source = pixels_embedder(frames, 32, CPU)
    rows = [score("raw pixels (32 px)", *(_embed(source),) * 2, data)]
    # the pixel analogue of AdaBN: each domain standardised by its own per-pixel statistics
    own = pixels_embedder(target, 32, CPU)
    rows.append(score("raw pixels, per-domain standardised", _embed(source), _embed(own), data))
    return rows


def model_rows(run: str, layer: str | None, data, target_folder: Path) -> list[dict]:
    embedder = checkpoint_embedder(run, CPU, layer)
    adapted, _ = adapted_embedder(embedder, data["target"], 128, str(target_folder), "adabn")
    tag = f"{Path(run).name} ({embedder.embed_layer or embedder.stage})"
    return [
        score(f"{tag}", _embed(embedder), _embed(embedder), data),
        score(f"{tag} + AdaBN (queries)", _embed(embedder), _embed(adapted), data),
        score(f"{tag} + AdaBN (gallery too)", _embed(adapted), _embed(adapted), data),
    ]


def _embed(embedder):
    return lambda images: embed_images(embedder, images, 128)


def load(root: Path) -> dict:
    frames = load_frame_folder(root, channels=1, image_size=64)
    with open(root / "target" / "labels.csv", newline="") as f:
        target_labels = torch.tensor([int(r["label"]) for r in csv.DictReader(f)])
    return {
        "frames": frames,
        "queries": load_queries(root, channels=1, image_size=64),
        "target": load_target_images(root / "target", channels=1, image_size=64),
        "target_labels": target_labels,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--layer", default=None, help="SimSiam: backbone | projector")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load(args.root)
    rows = pixel_rows(data)
    for run in args.runs:
        rows += model_rows(run, args.layer, data, args.root / "target")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
