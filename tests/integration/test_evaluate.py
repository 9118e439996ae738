"""``python -m fastap_lab.evaluate`` on a tiny SimSiam checkpoint: files, contents, baselines,
bad input. One checkpoint is trained per module; evaluations run in-process (one CLI run)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from sklearn.metrics import average_precision_score

from fastap_lab.build import build_module
from fastap_lab.errors import CheckpointError, ConfigError, DataError
from fastap_lab.evaluation_task import evaluate
from fastap_lab.train import train
from tests.conftest import CONF_DIR, TINY

OUTPUTS = [
    "embeddings.npy", "labels.npy", "frames.csv", "metrics.json", "per_query.csv",
    "retrieval_tables.md", "retrieval_grid.png", "diagnostics.json", "diagnostics.png",
]  # fmt: skip
TRAIN = [
    *TINY,
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=1",
    "logger={}",
    "eval_after_train=false",
]


def train_config(run, cache_dir):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        overrides = [f"paths.output_dir={run}", f"paths.cache_dir={cache_dir}", *TRAIN]
        return compose("train", overrides=overrides)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, cache_dir):
    run = tmp_path_factory.mktemp("smoke") / "run"
    train(train_config(run, cache_dir))
    return run


@pytest.fixture(scope="module")
def first_evaluation(smoke_run, cache_dir, tmp_path_factory):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        overrides = [
            f"paths.output_dir={tmp_path_factory.mktemp('hydra')}",
            f"paths.cache_dir={cache_dir}",
        ]
        cfg = compose(
            "evaluate", overrides=[*overrides, f"ckpt_path={smoke_run}", "eval.device=cpu"]
        )
    return evaluate(cfg), smoke_run / "inference"


def evaluate_with(make_cfg, *overrides):
    """In-process evaluation as the CLI runs it (the overrides name the data keys given);
    small tables keep the grid quick (plotting dominates on a CPU)."""
    arguments = ["eval.device=cpu", "eval.table_k=3", "eval.queries.from_data=false", *overrides]
    return evaluate(make_cfg(arguments, config_name="evaluate"), arguments)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_output_is_written(first_evaluation):
    record, out = first_evaluation
    assert all((out / name).is_file() for name in OUTPUTS), sorted(p.name for p in out.iterdir())
    assert len(list((out / "tables").glob("*.csv"))) == 3  # frame 0 + the phantom's 2 queries
    assert (out / "retrieval_grid.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(record))
    assert record["stage"] == "simsiam" and record["split"] == "val" and record["device"] == "cpu"
    assert (
        record["exclusion_window"] == 1.0 and record["exclusion_window_source"] == "data.split_gap"
    )
    assert {"torch_version", "utc_time", "checkpoint", "data_root"} <= set(record)


def test_embeddings_are_the_checkpoints(first_evaluation, smoke_run, cache_dir):
    record, out = first_evaluation
    root = Path(record["data_root"])  # the session's cache holds other tests' phantoms too
    frames = read_csv(out / "frames.csv")
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(frames), 512)
    np.testing.assert_array_equal(np.load(out / "labels.npy"), [int(r["label"]) for r in frames])
    # Independently: the training config's module with the checkpoint's weights.
    module = build_module(train_config(smoke_run / "again", cache_dir))
    checkpoint = torch.load(smoke_run / "checkpoints" / "last.ckpt", weights_only=True)
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    images = torch.stack([
        torch.from_numpy(np.array(Image.open(root / "frames" / r["frame"])))[None]
        for r in frames[:8]
    ])  # fmt: skip
    np.testing.assert_allclose(embeddings[:8], module.embed(images).numpy(), atol=1e-5)


def reference_ap(embeddings, rows, window):
    """sklearn AP of each val frame against the other val frames outside the time window."""
    val = [i for i, r in enumerate(rows) if r["split"] == "val"]
    times = {i: float(rows[i]["time"]) for i in val}
    aps = []
    for q in val:
        gallery = [g for g in val if g != q and abs(times[g] - times[q]) > window]
        relevant = [rows[g]["label"] == rows[q]["label"] for g in gallery]
        scores = [float(embeddings[q] @ embeddings[g]) for g in gallery]
        aps.append(average_precision_score(relevant, scores) if any(relevant) else None)
    return val, aps


def test_metrics_match_sklearn(first_evaluation):
    record, out = first_evaluation
    rows = read_csv(out / "frames.csv")
    per_query = read_csv(out / "per_query.csv")
    val, aps = reference_ap(np.load(out / "embeddings.npy").astype(np.float64), rows, 1.0)
    assert [int(r["index"]) for r in per_query] == val
    assert len(per_query) == record["metrics"]["num_queries"] == len(val)
    for row, ap in zip(per_query, aps, strict=True):
        assert (row["ap"] == "") if ap is None else float(row["ap"]) == pytest.approx(ap, abs=1e-6)
    kept = [ap for ap in aps if ap is not None]
    assert record["metrics"]["mAP"] == pytest.approx(np.mean(kept), abs=1e-6)
    assert record["metrics"]["num_queries_without_relevant"] == len(aps) - len(kept)


def test_tables_rank_the_gallery_by_cosine(first_evaluation):
    _, out = first_evaluation
    embeddings = np.load(out / "embeddings.npy").astype(np.float64)
    rows = read_csv(out / "frames.csv")
    (table_path,) = (out / "tables").glob("internal_00_*.csv")
    table = read_csv(table_path)
    scores = embeddings[1:] @ embeddings[0]  # frame 0 does not retrieve itself
    expected = (np.argsort(-scores, kind="stable") + 1)[:10]
    assert [r["frame"] for r in table] == [rows[i]["frame"] for i in expected]
    assert [float(r["score"]) for r in table] == pytest.approx(np.sort(scores)[::-1][:10], abs=6e-5)
    # Labels from frames.csv, not from the table's own label column.
    assert [r["label"] for r in table] == [rows[i]["label"] for i in expected]
    hits = sum(rows[i]["label"] == rows[0]["label"] for i in expected)
    assert f"in top 10: {hits}/10" in (out / "retrieval_tables.md").read_text()


def test_second_evaluation_goes_to_inference_2(first_evaluation, make_cfg, smoke_run):
    _, out = first_evaluation
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    record = evaluate_with(
        make_cfg, f"ckpt_path={smoke_run}/checkpoints/last.ckpt", "eval.ks=[1,500]"
    )
    second = smoke_run / "inference-2"
    assert (second / "metrics.json").is_file()
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # K beyond the gallery is dropped (not clipped), as the training callback does.
    gallery = record["num_frames_evaluated"] - 1
    assert record["metrics"]["ks"] == [1] and f"precision@{gallery}" not in record["metrics"]
    assert any("k=500 is larger than the gallery" in note for note in record["notes"])


def test_simsiam_checkpoint_evaluated_at_its_projector(make_cfg, smoke_run, cache_dir):
    record = evaluate_with(make_cfg, f"ckpt_path={smoke_run}", "eval.embed_layer=projector")
    folder = (
        smoke_run
        / f"inference-{max(int(p.name.split('-')[1]) for p in smoke_run.glob('inference-*'))}"
    )
    embeddings = torch.from_numpy(np.load(folder / "embeddings.npy"))
    module = build_module(train_config(smoke_run, cache_dir))
    module.load_state_dict(torch.load(smoke_run / "checkpoints" / "last.ckpt")["state_dict"])
    module.eval()
    images = torch.stack(
        [torch.from_numpy(np.array(Image.open(p)))[None] for p in _frame_paths(folder)]
    )
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            module.projector(module.backbone(module.augment.normalize(images))), dim=1
        )
    assert record["embed_layer"] == "projector" and embeddings.shape[1] == expected.shape[1] == 32
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match="eval.embed_layer='head'"):
        evaluate_with(make_cfg, f"ckpt_path={smoke_run}", "eval.embed_layer=head")


def _frame_paths(folder):
    root = json.loads((folder / "metrics.json").read_text())["data_root"]
    return [f"{root}/frames/{row['frame']}" for row in read_csv(folder / "frames.csv")]


def test_pixels_baseline_is_standardised_pixels(make_cfg, tmp_path, cache_dir):
    record = evaluate_with(make_cfg, "baseline=pixels", "data=phantom", *TINY[:5])
    assert record["model"] == "pixels" and record["checkpoint"] is None
    out = tmp_path / "run"
    frames = read_csv(out / "frames.csv")
    root = Path(record["data_root"])
    pixels = np.stack(
        [
            np.array(Image.open(root / "frames" / r["frame"]), np.float64).ravel() / 255
            for r in frames
        ]
    )
    z = (pixels - pixels.mean(0)) / np.maximum(pixels.std(0), 1e-6)
    expected = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(out / "embeddings.npy"), expected, atol=1e-4)


def test_untrained_baseline_is_seeded(make_cfg, tmp_path):
    first = evaluate_with(
        make_cfg,
        "baseline=untrained",
        "data=phantom",
        *TINY[:5],
        "paths.output_dir=" + str(tmp_path / "a"),
    )
    evaluate_with(
        make_cfg,
        "baseline=untrained",
        "data=phantom",
        *TINY[:5],
        "paths.output_dir=" + str(tmp_path / "b"),
    )
    assert first["model"] == "untrained" and first["embedding_dim"] == 512
    a, b = (np.load(tmp_path / d / "embeddings.npy") for d in "ab")
    np.testing.assert_array_equal(a, b)


def test_bad_checkpoints(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path is not set"):
        evaluate_with(make_cfg)
    with pytest.raises(CheckpointError, match="no such file"):
        evaluate_with(make_cfg, f"ckpt_path={tmp_path / 'nowhere.ckpt'}")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="the file is text, not a checkpoint"):
        evaluate_with(make_cfg, f"ckpt_path={tmp_path / 'notes.ckpt'}")
    (tmp_path / "binary.ckpt").write_bytes(bytes(range(128, 256)))
    with pytest.raises(CheckpointError, match="not a readable fastap_lab checkpoint"):
        evaluate_with(make_cfg, f"ckpt_path={tmp_path / 'binary.ckpt'}")


def test_external_queries(make_cfg, smoke_run, tmp_path):
    with pytest.raises(DataError, match="missing.png"):
        evaluate_with(
            make_cfg,
            f"ckpt_path={smoke_run}",
            f"eval.queries.external=[{tmp_path / 'missing.png'}]",
        )
    odd = tmp_path / "odd.png"
    Image.fromarray(np.full((48, 40, 3), 90, np.uint8)).save(odd)
    record = evaluate_with(
        make_cfg,
        f"ckpt_path={smoke_run}",
        f"eval.queries.external=[{odd}]",
        "eval.queries.external_labels=[0]",
    )
    assert any(note.startswith("query odd.png:") for note in record["notes"])
    assert record["positives_in_tables"]["odd.png"] is not None


def test_unlabelled_frames_skip_metrics_only(make_cfg, smoke_run, tmp_path):
    root = tmp_path / "plain"
    (root / "frames").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32), np.uint8)).save(
            root / "frames" / f"f{i:02d}.png"
        )
    record = evaluate_with(
        make_cfg, f"ckpt_path={smoke_run}", "data=frames", f"data.root={root}",
        "data.require_labels=false", "data.image_size=32", "data.split=none",
    )  # fmt: skip
    out = smoke_run / sorted(p.name for p in smoke_run.glob("inference*"))[-1]
    assert record["metrics"] is None and record["metrics_skipped"] == "the data has no labels"
    assert record["split"] == "all" and not (out / "per_query.csv").exists()
    assert all((out / name).is_file() for name in OUTPUTS if name != "per_query.csv")
    assert np.load(out / "embeddings.npy").shape == (12, 512)


@pytest.mark.slow  # a fresh interpreter imports torch, Hydra and Lightning (~10 s here)
def test_cli_error_is_one_line(cli, tmp_path):
    done = cli("evaluate", f"ckpt_path={tmp_path / 'nowhere.ckpt'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ckpt_path=")


def test_the_old_baseline_words_get_one_line(cli):
    result = cli("evaluate", "model=pixels")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: model=pixels is now baseline=pixels (a baseline is an evaluation choice, not a model)"
    )
