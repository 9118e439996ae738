"""Issue 12, step 0: why FastAP *with labels* cannot beat raw pixels on subtle breathing.

Plain PyTorch loop over the project's own pieces (composed config, datamodule, FastAP module,
objective, evaluation), so one factor at a time can be changed cheaply: optimiser steps,
augmentation preset, pooling, stem, image size. For each variant it prints the FastAP value of
the last training batches (does it fit the labels it sees?), the training-set mAP (all-vs-all
among training frames, same exclusion window) and the held-out mAP, beside raw pixels.

    python experiments/scripts/why_labels_fail.py --preset "data.phantom.diaphragm_travel=0.03 \
        data.phantom.jitter_px=3" --variants reference steps augnone grid
"""

from __future__ import annotations

import argparse
import shlex
import time

import torch

from fastap_lab.bench._common import compose_config, endless, plain_loss, quiet_lightning
from fastap_lab.build import build_datamodule, build_module
from fastap_lab.evaluation.embed import pixels_embedder
from fastap_lab.retrieval.metrics import summarize
from fastap_lab.retrieval.search import evaluate_all_vs_all

BASE = ["+experiment=fastap10_labels", "model.pretrained=null", "model.freeze_backbone=false"]
VARIANTS = {  # name: (extra overrides, optimiser steps)
    "reference": ([], 70),  # 10 epochs of 480 training frames at batch 64: 7 steps each
    "steps": ([], 400),
    "augnone": (["augment=none"], 400),
    "noshift": (["augment.max_shift=0", "augment.max_rotation=0"], 400),  # intensity ops only
    # frames registered first (data.register=true), then intensity-only views
    "registered": (["data.register=true", "augment.max_shift=0", "augment.max_rotation=0"], 400),
    "grid": (["augment=none", "backbone.pool=grid"], 400),
    "small_stem": (["augment=none", "backbone.stem=small"], 400),
}


def held_out_and_train_map(embed, datamodule, window: float) -> tuple[float, float]:
    frames = datamodule.frames
    out = []
    for index in (datamodule.val_index, datamodule.train_index):
        with torch.no_grad():
            emb = torch.cat(
                [embed(frames.images[index[i : i + 256]]) for i in range(0, len(index), 256)]
            )
        metrics = evaluate_all_vs_all(
            emb, frames.labels[index], frames.times[index], frames.groups[index], window
        )
        out.append(summarize(metrics)["mAP"])
    return out[0], out[1]


def run_variant(name: str, preset: list[str], seed: int) -> dict:
    extra, steps = VARIANTS[name]
    cfg = compose_config([*BASE, *preset, *extra, f"seed={seed}"])
    torch.manual_seed(seed)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    module = build_module(cfg)
    module.train()
    optimizer = torch.optim.AdamW(
        [p for p in module.parameters() if p.requires_grad], lr=cfg.optimizer.lr,
        weight_decay=cfg.optimizer.weight_decay,
    )  # fmt: skip
    batches, last = endless(datamodule.train_dataloader()), []
    start = time.perf_counter()
    for _ in range(steps):
        loss = plain_loss(module, next(batches), torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        last = [*last[-9:], 1 - loss.item()]
    module.eval()
    held_out, train = held_out_and_train_map(module.embed, datamodule, cfg.data.split_gap)
    return dict(variant=name, steps=steps, fastap_last10=sum(last) / len(last),
                train_mAP=train, held_out_mAP=held_out, seconds=time.perf_counter() - start)  # fmt: skip


def pixels_row(preset: list[str], extra: tuple[str, ...] = ()) -> dict:
    cfg = compose_config([*BASE, *preset, *extra])
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    images = datamodule.frames.images[datamodule.train_index]
    embedder = pixels_embedder(images, None, torch.device("cpu"))
    held_out, train = held_out_and_train_map(embedder.embed, datamodule, cfg.data.split_gap)
    name = "raw pixels" + (" (registered frames)" if extra else "")
    return dict(variant=name, steps=0, fastap_last10=float("nan"), train_mAP=train,
                held_out_mAP=held_out, seconds=0.0)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="", help="Hydra overrides selecting the data")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--registered-pixels", action="store_true", help="also pixels of registered frames"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet_lightning()
    preset = shlex.split(args.preset)
    print(f"data: {args.preset or 'default phantom'}; torch threads {torch.get_num_threads()}")
    print("| variant | steps | FastAP (last 10 batches) | train mAP | held-out mAP | s |")
    print("| --- | --- | --- | --- | --- | --- |")
    extra_rows = ["pixels_registered"] if args.registered_pixels else []
    rows = (
        pixels_row(preset) if v == "pixels"
        else pixels_row(preset, ("data.register=true",)) if v == "pixels_registered"
        else run_variant(v, preset, args.seed)
        for v in ["pixels", *extra_rows, *args.variants]
    )  # fmt: skip
    for row in rows:
        print(f"| {row['variant']} | {row['steps']} | {row['fastap_last10']:.3f} |"
              f" {row['train_mAP']:.3f} | {row['held_out_mAP']:.3f} | {row['seconds']:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
