"""Recorded gating runs (issue 13): ``python -m fastap_lab.gate`` on the phantom presets, every
method, several breath-hold references each (one reference is a noisy measure).

    python experiments/scripts/gate_presets.py OUT [--ckpt RUN] [--every 25] [--presets a,b]

Per preset and method: median and worst F1 against labels, |r| against closeness in
displacement, duty cycle, over references = every ``--every``-th label-1 frame; the cross-contrast
rows use the T2 ``invivo.png`` on the T1 sequence and T1 label-1 frames (as image files) on the
T2 ``target/`` sequence. Gate folders go under OUT (one per run).
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path

from hydra import compose, initialize_config_dir
from PIL import Image

from fastap_lab.gate import gate
from fastap_lab.respiration.sequence import load_frames
from fastap_lab.respiratory_config import data_config

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def run_gate(overrides: list[str], out: Path) -> dict:
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose(
            "gate", [*overrides, f"out={out}", "paths.output_dir=.", "gate.progress=false"]
        )
    return gate(cfg)


def phantom_folder(preset: str) -> Path:
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("gate", [f"data={preset}", "paths.output_dir=."])
        return load_frames(data_config(cfg))[0].root


def label_one(root: Path) -> list[int]:
    rows = (root / "labels.csv").read_text().splitlines()[1:]
    return [i for i, row in enumerate(rows) if row.split(",")[1] == "1"]


def summary(name: str, records: list[dict]) -> str:
    f1 = [r["labels"]["f1"] for r in records]
    r = [r["displacement"]["abs_pearson_r"] for r in records if r["displacement"]]
    duty = [r["duty_cycle"] for r in records]
    med = statistics.median
    r_text = f"{med(r):.3f}" if r else "–"
    return (
        f"| {name} | {len(records)} | {med(f1):.3f} | {min(f1):.3f} | {r_text} | {med(duty):.2f} |"
    )


def same_contrast(args, preset: str, out: Path) -> list[str]:
    root = phantom_folder(preset)
    references = label_one(root)[:: args.every]
    methods = [("surrogate", []), ("pixels", ["gate.method=pixels"])]
    if args.ckpt and preset == "phantom":
        methods.append(("embedding", [f"ckpt_path={args.ckpt}"]))
    lines = []
    for method, extra in methods:
        records = [run_gate([f"data={preset}", f"reference={i}", *extra, *args.set], out / f"{preset}-{method}-{i}")
                   for i in references]  # fmt: skip
        lines.append(summary(f"{preset}, {method}", records))
    return lines


def cross_contrast(args, out: Path) -> list[str]:
    root = phantom_folder("phantom_crosscontrast")
    invivo = root / "queries" / "invivo.png"
    lines = []
    for method, extra in (("surrogate", []), ("pixels", ["gate.method=pixels"])):
        for adapt in ("false", "true"):
            record = run_gate(["data=phantom_crosscontrast", f"reference={invivo}", *extra, f"gate.adapt={adapt}",
                               *args.set], out / f"cc-invivo-{method}-{adapt}")  # fmt: skip
            lines.append(
                summary(f"T1 sequence, invivo.png (T2), {method}, adapt={adapt}", [record])
            )
    images = out / "t1_references"
    images.mkdir(parents=True, exist_ok=True)
    frames = sorted((root / "frames").iterdir())
    references = []
    for i in label_one(root)[:: args.every]:
        Image.open(frames[i]).save(images / f"t1_{i}.png")
        references.append(images / f"t1_{i}.png")
    target = ["data=frames", f"data.root={root / 'target'}"]
    methods = [("surrogate", []), ("pixels", ["gate.method=pixels"])]
    if args.ckpt:
        methods.append(("embedding", [f"ckpt_path={args.ckpt}"]))
    for method, extra in methods:
        for adapt in ("false", "true"):
            records = [run_gate([*target, f"reference={p}", *extra, f"gate.adapt={adapt}", *args.set],
                                out / f"cc-t2-{method}-{adapt}-{p.stem}") for p in references]  # fmt: skip
            lines.append(summary(f"T2 sequence, T1 frames, {method}, adapt={adapt}", records))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument(
        "--presets", default="phantom,phantom_subtle,phantom_subtle_drift,phantom_axial"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], help="extra overrides, e.g. gate.duty_cycle=0.3"
    )
    parser.add_argument("--skip-cross", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    lines = ["| sequence, method | references | median F1 | worst F1 | median abs r | median duty |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for preset in args.presets.split(","):
        lines += same_contrast(args, preset, args.out)
        print("\n".join(lines[-3:]), flush=True)
    if not args.skip_cross:
        lines += cross_contrast(args, args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
