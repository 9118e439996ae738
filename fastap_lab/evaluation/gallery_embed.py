"""Embedding every frame of a source into gallery arrays, chunk by chunk.

A video is streamed (``data.chunk`` frames decoded at a time, so 100,000 frames never sit in
memory as images); frames folders and the phantom are read into memory (with ``data.register``,
a video too: registration needs the whole sequence). Keeps float32 embeddings and small
thumbnails only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fastap_lab import __version__, io
from fastap_lab.data.preprocess import PreprocessSpec
from fastap_lab.data.sources import load_source_config
from fastap_lab.data.video import stream_video, video_rate
from fastap_lab.evaluation.embed import Embedder, embed_images, model_identity
from fastap_lab.evaluation.report import json_safe
from fastap_lab.retrieval.gallery import FrameTable, write_gallery


@dataclass
class EmbeddedFrames:
    """The embedded frames of a source, for a gallery.

    ``embeddings`` float32 [N, D], ``thumbs`` uint8 [N, C, t, t] or None, their table,
    notes, and the seconds spent decoding + embedding.
    """

    embeddings: np.ndarray
    thumbs: np.ndarray | None
    table: FrameTable
    notes: list[str]
    seconds: float


def thumbnails(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, C, H, W] -> uint8 [B, C, s, s], area-downsampled when ``size`` < H."""
    if size >= images.shape[-1]:
        return images.clone()
    small = F.interpolate(images.float(), size=(size, size), mode="area")
    return small.round().clamp(0, 255).to(torch.uint8)


def streamed(data: dict) -> bool:
    """A video that can be streamed (no registration, which needs all frames at once)."""
    return data.get("root") is None and data.get("video") is not None and not data.get("register")


def _in_memory_chunks(data: dict, chunk: int) -> tuple[Iterator, int, callable]:
    from fastap_lab.respiration.register import register_frameset

    frames = load_source_config(data)
    if data.get("register"):
        frames = register_frameset(frames)
    table = FrameTable(
        names=list(frames.names), times=frames.times.double().numpy(),
        labels=None if frames.labels is None else frames.labels.numpy().astype(np.int64),
        videos=[frames.group_names[g] for g in frames.groups.tolist()],
    )  # fmt: skip
    chunks = (frames.images[s : s + chunk] for s in range(0, len(frames), chunk))
    return chunks, len(frames), lambda count, notes: table


def _video_chunks(data: dict, chunk: int) -> tuple[Iterator, int, callable]:
    from fastap_lab.gating.stream import listed_or_rate_times, table_columns

    path = Path(data["video"]).expanduser()
    rate, listed = video_rate(path)
    decode = {"channels": data["channels"], "image_size": data["image_size"]}
    chunks = (torch.from_numpy(c) for _, c in stream_video(path, chunk=chunk, **decode))

    def table(count: int, notes: list[str]) -> FrameTable:
        labels, times, _ = table_columns(data.get("labels_csv"), count)
        times, note = listed_or_rate_times(times, count, rate, path, " and no time column")
        notes += [f"{note} (the video's rate)"] if note else []
        return FrameTable([str(i) for i in range(count)], times, labels, [path.name] * count)

    return chunks, listed, table


def embed_source(embedder: Embedder, data: dict, *, batch_size: int, chunk: int,
                 thumb_size: int, progress: bool = True) -> EmbeddedFrames:  # fmt: skip
    """Embed every frame the data config ``data`` names (see the module docstring)."""
    from tqdm import tqdm

    notes: list[str] = []
    started = time.perf_counter()
    chunks, total, table_of = (_video_chunks if streamed(data) else _in_memory_chunks)(data, chunk)
    parts, thumbs = [], []
    with tqdm(total=total or None, unit="frame", disable=not progress, desc="embed") as bar:
        for images in chunks:
            parts.append(embed_images(embedder, images, batch_size).numpy())
            if thumb_size > 0:
                thumbs.append(thumbnails(images, thumb_size).numpy())
            bar.update(len(images))
    embeddings = np.concatenate(parts).astype(np.float32, copy=False)
    table = table_of(len(embeddings), notes)
    if data.get("register"):
        notes.append("data.register=true: the gallery frames were registered onto their temporal"
                     " median; query images are not (a single image has no sequence)")  # fmt: skip
    return EmbeddedFrames(embeddings, np.concatenate(thumbs) if thumbs else None, table, notes,
                          time.perf_counter() - started)  # fmt: skip


@dataclass
class GallerySettings:
    """How ``python -m fastap_lab.embed`` embeds (conf/embed.yaml's ``embed``, checked)."""

    batch_size: int
    chunk_frames: int
    thumb_size: int
    progress: bool
    faiss: bool


def embed_gallery(embedder: Embedder, data: dict, data_record: dict, spec: PreprocessSpec,
                  out: Path, settings: GallerySettings) -> tuple[dict, list[tuple[int, str]]]:  # fmt: skip
    """Embed every frame of ``data`` into a new gallery folder ``out``, written atomically.

    Args:
        embedder: the checkpoint's embedder.
        data: the data config (plain dict) naming the frames.
        data_record: what the data were, for gallery.json.
        spec: the checkpoint's preprocessing, for gallery.json.
        out: the new gallery folder.
        settings: batch size, chunk, thumbnail size, progress bar, FAISS index.

    Returns:
        gallery.json's record and the summary as ``(level, line)`` pairs.
    """
    embedded = embed_source(
        embedder, data, batch_size=settings.batch_size, chunk=settings.chunk_frames,
        thumb_size=settings.thumb_size, progress=settings.progress,
    )  # fmt: skip
    count, dim = embedded.embeddings.shape
    record = {
        "count": count, "dim": dim, "dtype": "float32",
        "model": model_identity(embedder, spec, dim), "data": data_record,
        "labels": embedded.table.labels is not None,
        "thumbs": None if embedded.thumbs is None else {"size": int(embedded.thumbs.shape[-1])},
        "embed_seconds": embedded.seconds, "frames_per_second": count / max(embedded.seconds, 1e-9),
        "notes": embedded.notes, "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "fastap_lab_version": __version__,
    }  # fmt: skip
    with io.atomic_folder(out) as tmp:
        write_gallery(tmp, embedded.embeddings, embedded.table, embedded.thumbs, json_safe(record))
        if settings.faiss:
            from fastap_lab.retrieval.gallery import gallery_index, read_gallery

            gallery_index(read_gallery(tmp))
    lines = [(logging.WARNING, f"note: {note}") for note in embedded.notes]
    lines.append((logging.INFO, f"gallery of {count:d} frames x {dim:d} dims"
                                f" ({record['frames_per_second']:.1f} frames/s): {out}"))  # fmt: skip
    return record, lines
