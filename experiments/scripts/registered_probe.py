"""Is the label learnable from the pixels at all? A linear probe on the held-out split.

    python experiments/scripts/registered_probe.py PHANTOM_FOLDER [PHANTOM_FOLDER ...]

For each frames folder (64 px, gray): the project's default split (``data.split=blocks``,
2 of 10 blocks held out, 2 s gap); every frame rigidly registered (integer phase correlation)
to the median training frame and z-scored; logistic regression (C = 0.01) fit on the training
frames' labels; printed: the held-out average precision of its score, with and without the
registration, and the held-out positive fraction (chance). A classification AP, not the
retrieval mAP of ``evaluate``: it says whether labels are readable, not how an embedding ranks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.splits import split_frames


def register(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each frame [N, H, W] rolled by the integer shift that best aligns it to ``reference``."""
    spectrum = np.conj(np.fft.fft2(reference - reference.mean()))
    out = np.empty_like(frames)
    for index, frame in enumerate(frames):
        cross = np.fft.fft2(frame - frame.mean()) * spectrum
        peak = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
        dy, dx = np.unravel_index(int(peak.argmax()), peak.shape)
        out[index] = np.roll(frame, (-dy, -dx), axis=(0, 1))
    return out


def standardise(frames: np.ndarray) -> np.ndarray:
    flat = frames.reshape(len(frames), -1)
    return (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)


def probe(root: Path) -> dict[str, float]:
    frame_set = load_frame_folder(root, channels=1, image_size=64)
    frames = frame_set.images[:, 0].double().numpy()
    labels = frame_set.labels.numpy()
    train, val = (i.numpy() for i in split_frames(frame_set.times, frame_set.groups, gap=2.0))
    registered = register(frames, np.median(frames[train], axis=0))
    result = {"chance": float(labels[val].mean())}
    for name, inputs in (("raw", frames), ("registered", registered)):
        features = standardise(inputs)
        model = LogisticRegression(C=0.01, max_iter=5000).fit(features[train], labels[train])
        score = model.decision_function(features[val])
        result[name] = float(average_precision_score(labels[val], score))
    return result


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        figures = probe(Path(folder))
        print(folder, " ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
