"""Which part of the external query's domain shift breaks retrieval? (issue 6 investigation)

Renders the phantom's hold-position query (label 1) with each nuisance of ``invivo.png`` on
its own -- other tissue contrast, pose/zoom, blur + shading -- and, in the main contrast, with
one tissue at a time in the query's contrast; embeds each with every given run's checkpoint
(and raw pixels) and counts label-1 frames among its top 10 / 50 in the held-out gallery the
run's evaluation used. Usage:

    python experiments/scripts/invivo_shift.py outputs/simsiam100/<run> [more runs ...]
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data import phantom_render as pr
from fastap_lab.data import phantom_sequence as sequence
from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.phantom_render import MAIN_CONTRAST, QUERY_CONTRAST, FrameState
from fastap_lab.data.phantom_spec import PhantomSpec
from fastap_lab.embedders import checkpoint_embedder
from fastap_lab.evaluation.embed import pixels_embedder

POSE = {"shift": (0.04, -0.03), "rotation": 0.02, "zoom": 1.08, "cardiac": 0.4}


def variants(spec: PhantomSpec) -> dict[str, np.ndarray]:
    anatomy = pr.make_anatomy(sequence._streams(spec)["anatomy"])
    shading = pr.bias_field(spec.image_size, np.array([0.3, -0.25, 0.2, 0.15, -0.1]))
    rng = np.random.default_rng(0)

    def render(contrast, pose: bool, blur_shade: bool) -> np.ndarray:
        state = FrameState(spec.hold_position, **(POSE if pose else {}))
        image = sequence._scene(spec, anatomy, contrast, state)
        if blur_shade:
            image = pr.box_blur(image) * shading
        return pr.to_uint8(pr.add_speckle_and_noise(image, rng, 0.14, spec.noise))

    return {
        "main contrast, no shift": render(MAIN_CONTRAST, False, False),
        "main contrast + pose/zoom": render(MAIN_CONTRAST, True, False),
        "main contrast + blur/shading": render(MAIN_CONTRAST, False, True),
        "query contrast only": render(QUERY_CONTRAST, False, False),
        "all (= invivo.png)": render(QUERY_CONTRAST, True, True),
    }


def gallery(run: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inference = run / "inference"
    rows = np.genfromtxt(
        inference / "frames.csv", delimiter=",", names=True, dtype=None, encoding=None
    )
    held_out = torch.as_tensor(np.asarray(rows["split"] == "val"))
    embeddings = torch.as_tensor(np.load(inference / "embeddings.npy"))
    return embeddings, torch.as_tensor(np.ascontiguousarray(rows["label"])), held_out


def positives(embed, images: dict[str, np.ndarray], gallery_embeddings, labels) -> dict[str, str]:
    out = {}
    for name, image in images.items():
        query = embed(torch.as_tensor(image)[None, None])
        order = (gallery_embeddings @ query[0]).argsort(descending=True)
        out[name] = f"{int(labels[order[:10]].sum())}/10, {int(labels[order[:50]].sum())}/50"
    return out


def tissue_variants(spec: PhantomSpec) -> dict[str, np.ndarray]:
    """The hold position in the main contrast with one tissue at a time set to its
    query-contrast value: which tissue's intensity does the model read?"""
    anatomy = pr.make_anatomy(sequence._streams(spec)["anatomy"])
    rng = np.random.default_rng(0)
    out = {}
    for field in dataclasses.fields(MAIN_CONTRAST):
        main, query = getattr(MAIN_CONTRAST, field.name), getattr(QUERY_CONTRAST, field.name)
        if main == query:
            continue
        contrast = dataclasses.replace(MAIN_CONTRAST, **{field.name: query})
        image = sequence._scene(spec, anatomy, contrast, FrameState(spec.hold_position))
        out[f"{field.name} {main}->{query}"] = pr.to_uint8(
            pr.add_speckle_and_noise(image, rng, 0.14, spec.noise)
        )
    return out


def table(title: str, images: dict[str, np.ndarray], runs: list[Path]) -> None:
    print(f"\n{title}\n\n| model | " + " | ".join(images) + " |")
    print("|---" * (len(images) + 1) + "|")
    for run in runs:
        embeddings, labels, held_out = gallery(run)
        embedder = checkpoint_embedder(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
        with torch.inference_mode():
            row = positives(embedder.embed, images, embeddings[held_out], labels[held_out])
        print(f"| {run.parent.name} | " + " | ".join(row.values()) + " |")
    data_root = json.loads((runs[0] / "inference" / "metrics.json").read_text())["data_root"]
    frame_set = load_frame_folder(data_root, channels=1, image_size=64)
    pixels = pixels_embedder(frame_set.images, 32, torch.device("cpu"))
    row = positives(
        pixels.embed, images, pixels.embed(frame_set.images)[held_out], labels[held_out]
    )
    print("| raw pixels | " + " | ".join(row.values()) + " |")


def main(runs: list[str]) -> None:
    spec, paths = PhantomSpec(), [Path(r) for r in runs]
    table("Hold-position query, one part of the domain shift at a time:", variants(spec), paths)
    table(
        "Main contrast, one tissue at a time in the query's contrast:", tissue_variants(spec), paths
    )


if __name__ == "__main__":
    main(sys.argv[1:])
