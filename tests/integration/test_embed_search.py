"""``python -m fastap_lab.embed`` galleries and ``python -m fastap_lab.search`` over them: the
stored files and identity, results equal to a direct exact computation, FAISS equal to exact,
a streamed video equal to the same frames in memory, and one-line refusals (exit 2)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fastap_lab.checkpoints import file_sha256
from fastap_lab.compose import compose_config
from fastap_lab.errors import ConfigError
from tests.frame_inputs import write_video
from tests.integration.report_runs import tiny_runs


def run_embed(run: Path, cache_dir: Path, *overrides: str) -> dict:
    from fastap_lab.embed import embed

    given = [f"ckpt_path={run}", f"paths.cache_dir={cache_dir}", "paths.output_dir=.",
             "embed.progress=false", *overrides]  # fmt: skip
    return embed(compose_config("embed", given), given)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cache_dir):
    """(simsiam run, fastap run, a gallery of the simsiam run, its frames, the embedder)."""
    from fastap_lab.data.sources import load_source_config
    from fastap_lab.embedders import checkpoint_embedder

    simsiam, fastap = tiny_runs(tmp_path_factory, cache_dir)
    folder = tmp_path_factory.mktemp("galleries") / "g"
    run_embed(simsiam, cache_dir, f"out={folder}")
    embedder = checkpoint_embedder(simsiam, torch.device("cpu"))
    data = {**embedder.run_config["data"], "cache_dir": str(cache_dir)}
    return simsiam, fastap, folder, load_source_config(data), embedder


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text().splitlines()))


def test_gallery_files_and_identity(setup):
    from fastap_lab.evaluation.embed import embed_images

    run, _, folder, frames, embedder = setup
    assert {p.name for p in folder.iterdir()} == {"embeddings.npy", "frames.csv", "gallery.json",
                                                  "thumbs.npy"}  # fmt: skip
    embeddings = np.load(folder / "embeddings.npy")
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == len(frames)
    expected = embed_images(embedder, frames.images, 64).numpy()
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    rows = read_csv(folder / "frames.csv")
    assert [r["frame"] for r in rows] == frames.names
    assert [int(r["label"]) for r in rows] == frames.labels.tolist()
    np.testing.assert_allclose([float(r["time"]) for r in rows], frames.times.numpy(), atol=1e-6)
    record = json.loads((folder / "gallery.json").read_text())
    model = record["model"]
    assert model["sha256"] == file_sha256(run / "checkpoints" / "last.ckpt")
    assert model["stage"] == "simsiam" and model["embed_layer"] == "backbone"
    assert model["dim"] == record["dim"] == embeddings.shape[1] and record["count"] == len(frames)
    spec = model["preprocess"]
    assert (spec["channels"], spec["image_size"]) == tuple(frames.images.shape[1:3])
    assert (spec["mean"], spec["std"]) == (0.3, 0.25) and record["labels"] is True
    assert np.load(folder / "thumbs.npy").shape == (len(frames), 1, 32, 32)


def test_default_folder_is_numbered_and_out_is_never_overwritten(setup, cache_dir):
    run, _, folder, _, _ = setup
    run_embed(run, cache_dir)
    assert (run / "gallery" / "gallery.json").is_file()
    with pytest.raises(ConfigError, match="never overwritten"):
        run_embed(run, cache_dir, f"out={folder}")


def frame_paths(frames, indices) -> list[str]:
    return [str(frames.root / "frames" / frames.names[i]) for i in indices]


def test_search_equals_a_direct_exact_computation(setup, tmp_path, capsys):
    from fastap_lab.search import main

    _, _, folder, frames, embedder = setup
    queries = [3, 40]
    record = main([f"gallery={folder}", f"query={','.join(frame_paths(frames, queries))}", "k=7",
                   f"out={tmp_path / 's'}", "labels=1,0"])  # fmt: skip
    assert record["k"] == 7 and (tmp_path / "s" / "grid.png").is_file()
    gallery = torch.from_numpy(np.load(folder / "embeddings.npy"))
    with torch.no_grad():
        query = embedder.embed(frames.images[queries])
    scores = query @ gallery.T
    rows = read_csv(tmp_path / "s" / "results.csv")
    for q, path in enumerate(frame_paths(frames, queries)):
        mine = [r for r in rows if r["query"] == Path(path).name]
        order = scores[q].argsort(descending=True, stable=True)[:7].tolist()
        assert [int(r["index"]) for r in mine] == order
        np.testing.assert_allclose([float(r["score"]) for r in mine], scores[q, order], atol=1e-5)
    assert "P@7" in capsys.readouterr().out


def test_faiss_equals_exact_and_is_stored(setup):
    from fastap_lab.retrieval.gallery import read_gallery, search_gallery

    _, _, folder, _, _ = setup
    gallery = read_gallery(folder)
    query = gallery.embeddings[[0, 5, 50]] + 0.01 * np.random.randn(3, gallery.dim).astype(
        np.float32
    )
    exact_scores, exact = search_gallery(gallery, query, 10)[:2]
    faiss_scores, faiss = search_gallery(gallery, query, 10, "faiss")[:2]
    assert (folder / "faiss.index").is_file()
    assert torch.equal(exact, faiss)
    torch.testing.assert_close(exact_scores, faiss_scores, atol=1e-5, rtol=0)
    scores, indices, notes = search_gallery(read_gallery(folder), query, 500, "faiss")
    assert indices.shape == (3, len(gallery.embeddings)) and "k=500" in notes[0]


def test_streamed_video_equals_the_frames_in_memory(setup, tmp_path):
    from fastap_lab.data.video import load_video
    from fastap_lab.evaluation.gallery_embed import embed_source

    _, _, _, _, embedder = setup
    write_video(tmp_path / "clip.mp4", count=12, size=32)
    data = {"video": str(tmp_path / "clip.mp4"), "channels": 1, "image_size": 32, "root": None}
    streamed = embed_source(embedder, data, batch_size=4, chunk=5, thumb_size=16, progress=False)
    frames = load_video(tmp_path / "clip.mp4", None, image_size=32, require_labels=False)
    with torch.no_grad():
        expected = embedder.embed(frames.images).numpy()
    np.testing.assert_allclose(streamed.embeddings, expected, atol=1e-5)
    assert streamed.thumbs.shape == (12, 1, 16, 16) and streamed.table.labels is None
    np.testing.assert_allclose(streamed.table.times, np.arange(12) / 10)


def test_bad_search_input_is_one_line_exit_2(setup, cli, tmp_path):
    _, _, folder, frames, _ = setup
    image = frame_paths(frames, [0])[0]
    (tmp_path / "bad.png").write_text("not an image")
    cases = {
        "no such folder": [f"gallery={tmp_path / 'none'}", f"query={image}"],
        "not a gallery": [f"gallery={tmp_path}", f"query={image}"],
        "does not exist": [f"gallery={folder}", "query=missing.png"],
        "cannot read this image": [f"gallery={folder}", f"query={tmp_path / 'bad.png'}"],
        "must be >= 1": [f"gallery={folder}", f"query={image}", "k=0"],
        "unknown format": [f"gallery={folder}", f"query={image}", "model=m.h5"],
        "key=value": [f"gallery={folder}", f"query={image}", "kk=3"],
        "not unit vectors": [f"gallery={_scaled_copy(folder, tmp_path)}", f"query={image}"],
    }
    for expected, args in cases.items():
        result = cli("search", *args)
        assert result.returncode == 2, (expected, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines


def _scaled_copy(folder: Path, tmp_path: Path) -> Path:
    """A copy of the gallery whose embeddings are no longer unit rows (edited by hand)."""
    copy = tmp_path / "scaled"
    shutil.copytree(folder, copy)
    np.save(copy / "embeddings.npy", np.load(copy / "embeddings.npy") * 2)
    return copy


def test_embed_refuses_a_checkpoint_without_a_model(cli, tmp_path, cache_dir):
    from fastap_lab.errors import CheckpointError

    (tmp_path / "empty.ckpt").write_bytes(b"")
    result = cli("embed", "ckpt_path=empty.ckpt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "empty (0 bytes)" in result.stderr
    with pytest.raises(CheckpointError, match="without checkpoints/last.ckpt"):
        run_embed(tmp_path, cache_dir)
    with pytest.raises(ConfigError, match="ckpt_path is not set"):
        run_embed(tmp_path, cache_dir, "ckpt_path=null")
