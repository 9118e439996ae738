"""Issue 14's probe, data / evaluation side: one row per case (2, 4, 6, 7, 8, 9, 11, and the
extra columns of labels.csv). A row is the input a user gives, the exit code of the command
(2 = one ``error:`` line, no traceback; 0 = it ran), the words the user must read (in the
error line, or in the console and metrics.json of a run that went through), and the folders
that must stay byte-identical. Rows run in-process through ``run_task``, the CLIs' own code
path; a few run the real CLIs (marked slow).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from fastap_lab.build import build_datamodule
from fastap_lab.cli import EXIT_USER_ERROR, run_task
from fastap_lab.data.frames import load_frame_folder, load_image
from fastap_lab.data.queries import load_queries
from fastap_lab.data.sources import phantom_root
from fastap_lab.data.video import load_video
from fastap_lab.evaluate import evaluate
from fastap_lab.lit.retrieval_callback import RetrievalEvaluation
from fastap_lab.train import train
from tests.conftest import CONF_DIR
from tests.integration.test_bad_input_matrix import QUIET, tree_digest, write_frames

TINY_PHANTOM = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / "phantom_tiny.yaml"))[
    "phantom"
]
# Trained at 32 px with 4 blocks: the frames group's defaults are 64 px and 10 blocks.
RUN_DATA = ["data.image_size=32", "data.batch_size=16", "data.num_blocks=4", "data.split_gap=1.0"]
QUICK_EVAL = ["eval.device=cpu", "eval.table_k=3", "eval.queries.from_data=false"]


@dataclass
class Probe:
    """What a row works with: its folder, the trained run (when it asks), config and logs."""

    tmp: Path
    make_cfg: Callable
    caplog: pytest.LogCaptureFixture
    watched: list[Path]  # folders that must not change once the input is built
    run: Path | None = None
    data: Path | None = None  # the run's frames, moved away from where it was trained
    record: dict | None = None  # metrics.json of the last evaluation
    before: dict | None = None

    def built(self) -> None:
        """The input is in place: from here on the watched folders must not change."""
        self.before = {folder: tree_digest(folder) for folder in self.watched}

    def evaluate(self, *overrides: str) -> str:
        """Evaluate as the CLI would; the console (INFO and up) and metrics.json as text."""
        self.built()
        arguments = [*QUICK_EVAL, f"paths.output_dir={self.tmp / 'out'}", *overrides]
        self.record = evaluate(self.make_cfg(arguments, config_name="evaluate"), arguments)
        return self.caplog.text + json.dumps(self.record)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """(run folder, its frames folder): a tiny SimSiam run trained on a frames folder that was
    then moved, so the path stored in the checkpoint no longer exists."""
    folder = tmp_path_factory.mktemp("probe")
    shutil.copytree(phantom_root(TINY_PHANTOM, cache_dir), folder / "trained_on")
    overrides = [
        f"paths.output_dir={folder / 'run'}", f"paths.cache_dir={cache_dir}", "data=frames",
        f"data.root={folder / 'trained_on'}", *RUN_DATA, "model.projector_dim=32",
        "model.predictor_dim=8", *QUIET, "+trainer.limit_train_batches=1",
    ]  # fmt: skip
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=overrides))
    (folder / "trained_on").rename(folder / "moved")
    return folder / "run", folder / "moved"


# --------------------------------------------------------------------------- inputs
def frames_with_labels(probe: Probe, labels: str, count: int = 12) -> Path:
    root = write_frames(probe.tmp / "data", labels=labels, count=count)
    probe.built()
    return root


def rows(*lines: str, header: str = "frame,label") -> str:
    return "\n".join([header, *lines]) + "\n"


def write_cut_video(path: Path, count: int = 40) -> None:
    """An mp4 whose header (moov first) lists ``count`` frames, cut to 45 % of its bytes."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(count):
            image = rng.integers(0, 256, (32, 32), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="gray")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 45 // 100])


# --------------------------------------------------------------------------- case 2
def evaluate_with_group(probe: Probe) -> str:
    said = probe.evaluate(f"ckpt_path={probe.run}", "data=frames", f"data.root={probe.data}")
    first = probe.record
    probe.evaluate(f"ckpt_path={probe.run}", f"data.root={probe.data}")
    # `data=frames` adds nothing but the frames: same settings, same numbers as without it.
    second = probe.record
    values = [{k: v["value"] for k, v in r["data_settings"].items()} for r in (first, second)]
    assert values[0] == values[1]
    assert first["metrics"]["mAP"] == second["metrics"]["mAP"]
    return said


def evaluate_explicit_size(probe: Probe) -> str:
    return probe.evaluate(f"ckpt_path={probe.run}", f"data.root={probe.data}", "data.image_size=48")


# --------------------------------------------------------------------------- case 4
def cut_video_without_labels(probe: Probe) -> str:
    write_cut_video(probe.tmp / "cut.mp4")
    probe.built()
    frames = load_video(probe.tmp / "cut.mp4", None, image_size=32, require_labels=False)
    assert 0 < len(frames) < 40 and f"but {len(frames)} could be decoded" in frames.notes[-1]
    return probe.caplog.text + " ".join(frames.notes)


def cut_video_with_labels(probe: Probe) -> str:
    write_cut_video(probe.tmp / "cut.mp4")
    (probe.tmp / "labels.csv").write_text(rows(*(f"{i},{i % 2}" for i in range(40))))
    probe.built()
    return load_video(probe.tmp / "cut.mp4", probe.tmp / "labels.csv", image_size=32)


# --------------------------------------------------------------------------- case 6
def rotated_jpeg(probe: Probe) -> str:
    """A 32x16 (w x h) JPEG with a bright left band and EXIF orientation 6 (rotate 90 degrees
    clockwise to display) reads as the clockwise-rotated 16x32 picture: the band on top."""
    array = np.full((16, 32), 30, np.uint8)
    array[:, :8] = 220
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(array).save(probe.tmp / "rotated.jpg", exif=exif.tobytes(), quality=100)
    Image.fromarray(np.rot90(array, k=-1).copy()).save(probe.tmp / "upright.png")
    probe.built()
    decoded, notes = load_image(probe.tmp / "rotated.jpg", channels=1, image_size=32)
    expected, _ = load_image(probe.tmp / "upright.png", channels=1, image_size=32)
    assert np.abs(decoded.astype(int) - expected).max() <= 8  # JPEG rounding only
    assert decoded[0, :8].mean() > 200 and decoded[0, -8:].mean() < 50
    return " ".join(notes)


# --------------------------------------------------------------------------- case 7
def single_class(probe: Probe) -> str:
    root = frames_with_labels(probe, rows(*(f"f{i}.png,3" for i in range(12))))
    said = probe.evaluate("baseline=pixels", "data=frames", f"data.root={root}", "data.split=none")
    assert probe.record["metrics"]["mAP"] == 1.0 and probe.record["metrics_warning"]
    return said


# --------------------------------------------------------------------------- case 8
def outside_frames(name: str) -> Callable[[Probe], object]:
    def act(probe: Probe):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(probe.tmp / "secret.png")
        root = frames_with_labels(
            probe, rows("f0.png,0", f"{name.replace('TMP', str(probe.tmp))},1")
        )
        return load_frame_folder(root, image_size=8)

    return act


def outside_queries(probe: Probe):
    root = frames_with_labels(probe, "default")
    (root / "queries").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "f_outside.png")
    (root / "queries.csv").write_text("query,label\n../f_outside.png,1\n")
    probe.built()
    return load_queries(root, channels=1, image_size=8)


def dots_inside_frames(probe: Probe) -> str:
    root = frames_with_labels(probe, rows("sub/../f0.png,0", "./f1.png,1"), count=2)
    (root / "frames" / "sub").mkdir()
    probe.built()
    frames = load_frame_folder(root, image_size=8)
    assert frames.names == ["sub/../f0.png", "f1.png"] and len(frames) == 2
    return "read " + ", ".join(frames.names)


# --------------------------------------------------------------------------- case 9
def one_k_policy(probe: Probe) -> str:
    """Training's val/precision@K and evaluation's inference/precision@K drop the same K."""
    root = frames_with_labels(probe, "default", count=12)
    said = probe.evaluate(
        "baseline=pixels", "data=frames", f"data.root={root}", "data.split=none",
        "eval.ks=[1,5,11,12,500]", "data.image_size=8",
    )  # fmt: skip
    record = probe.record
    frames = load_frame_folder(root, image_size=8)
    embeddings = torch.nn.functional.normalize(frames.images.flatten(1).float(), dim=1)
    callback = RetrievalEvaluation(ks=(1, 5, 11, 12, 500), split="all")
    datamodule = SimpleNamespace(split={"gap": 0.0})
    logged = callback.metrics(embeddings, frames, torch.arange(len(frames)), datamodule)
    logged_ks = sorted(int(name.split("@")[1]) for name in logged if "precision@" in name)
    assert logged_ks == record["metrics"]["ks"] == [1, 5, 11]  # gallery: 12 frames - the query
    return said + probe.caplog.text


# --------------------------------------------------------------------------- case 11
def batch_of_one(probe: Probe):
    root = frames_with_labels(probe, "default")
    return build_datamodule(
        probe.make_cfg(["data=frames", f"data.root={root}", "data.batch_size=1"])
    )


def trailing_batch_of_one(probe: Probe) -> str:
    """6 training frames in batches of 5 with drop_last=false: the batch of 1 never happens."""
    root = frames_with_labels(probe, "default")
    overrides = [
        "data=frames", f"data.root={root}", "data.image_size=16", "data.num_blocks=2",
        "data.split_gap=0", "data.batch_size=5", "data.drop_last=false",
        "model.projector_dim=32", "model.predictor_dim=8", *QUIET,
    ]  # fmt: skip
    cfg = probe.make_cfg(overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    assert datamodule.train_index.numel() == 6
    sizes = [len(batch["index"]) for batch in datamodule.train_dataloader()]
    assert sizes == [5]
    train(cfg)  # a real epoch: no BatchNorm error
    return probe.caplog.text


# --------------------------------------------------------------------------- extra columns
def extra_columns(probe: Probe) -> str:
    csv = rows(
        "f0.png,0,0.25,left,1e-3",
        "f1.png,1,-2,right,4",
        header="frame,label,displacement,note,gain",
    )
    frames = load_frame_folder(frames_with_labels(probe, csv, count=2), image_size=8)
    assert sorted(frames.extras) == ["displacement", "gain"]  # `note` is text: ignored
    assert frames.extras["displacement"].tolist() == [0.25, -2.0]
    assert frames.extras["displacement"].dtype == torch.float64
    assert frames.subset(torch.tensor([1])).extras["gain"].tolist() == [4.0]
    return "kept " + ", ".join(sorted(frames.extras))


@dataclass(frozen=True)
class Row:
    case: str
    act: Callable[[Probe], object]  # makes the input under probe.tmp and runs it
    exit_code: int  # of run_task(act): 0 = went through, 2 = one error line
    words: tuple[str, ...]  # in the error line, or in what a run that went through said
    unchanged: tuple[str, ...] = ("data",)  # folders (under tmp; RUN, DATA: the trained run's)
    needs_run: bool = False


ROWS = [
    Row("2 group defaults never replace the checkpoint's preprocessing", evaluate_with_group, 0,
        ("evaluation data: root=", "image_size=32, channels=1, register=False, split=blocks, val_fraction=0.2,"
         " num_blocks=4, split_gap=1.0 (checkpoint)", "normalisation mean=",
         '"image_size": {"value": 32, "from": "checkpoint"}',
         '"num_blocks": {"value": 4, "from": "checkpoint"}',
         '"root": {"value": "DATA", "from": "command line"}'),
        ("RUN/checkpoints", "DATA"), needs_run=True),
    Row("2 a key given explicitly wins", evaluate_explicit_size, 0,
        ("image_size=48 (command line)", '"image_size": {"value": 48, "from": "command line"}'),
        ("RUN/checkpoints", "DATA"), needs_run=True),
    Row("2 the run's data folder is gone: the error's fix is data.root=", lambda p: p.evaluate(f"ckpt_path={p.run}"), EXIT_USER_ERROR,
        ("does not exist", "set data.root="), ("RUN",), needs_run=True),
    Row("4 cut video, no labels: used as far as it decodes, said", cut_video_without_labels, 0,
        ("video ", "cut.mp4: its container lists 40 frames but", "could be decoded", "cut or damaged"),
        (".",)),
    Row("4 cut video, with labels: the video is blamed", cut_video_with_labels, EXIT_USER_ERROR,
        ("error: video ", "cut.mp4: its container lists 40 frames but", "cut or damaged",
         "labels.csv", "lists frame", "whole video"), (".",)),
    Row("6 EXIF orientation applied", rotated_jpeg, 0, ("turned 1 image upright", "EXIF"), (".",)),
    Row("7 a single label: mAP 1 is called meaningless", single_class, 0,
        ("metrics meaningless: all 12 evaluated frames have label 3", '"metrics_warning": "all 12')),
    Row("8 absolute frame name", outside_frames("TMP/secret.png"), EXIT_USER_ERROR,
        ("labels.csv", "line 3", "secret.png", "is an absolute path", "fix the row")),
    Row("8 frame name leading out of frames/", outside_frames("../../secret.png"), EXIT_USER_ERROR,
        ("labels.csv", "line 3", "'../../secret.png' leads outside frames/", "fix the row")),
    Row("8 query name leading out of queries/", outside_queries, EXIT_USER_ERROR,
        ("queries.csv", "line 2", "leads outside queries/")),
    Row("8 '..' that stays inside frames/ is fine", dots_inside_frames, 0, ("read sub/../f0.png, f1.png",)),
    Row("9 one K policy: K beyond the gallery dropped in training and evaluation", one_k_policy, 0,
        ("k=12, k=500 are larger than the gallery (11 frames): not computed",
         "val/ metrics of the all split: k=12, k=500 are larger")),
    Row("11 data.batch_size=1 refused when composed", batch_of_one, EXIT_USER_ERROR,
        ("error: data.batch_size=1", "at least 2 frames per batch")),
    Row("11 drop_last=false never trains on a batch of 1", trailing_batch_of_one, 0,
        ("data.drop_last=false: 6 training frames in batches of 5", "1 frame(s) left out")),
    Row("12 extra labels.csv columns kept when numeric", extra_columns, 0, ("kept displacement, gain",)),
    Row("12 non-numeric displacement names its row", lambda p: load_frame_folder(
        frames_with_labels(p, rows("f0.png,0,1.5", "f1.png,1,high", header="frame,label,displacement"), count=2),
        image_size=8), EXIT_USER_ERROR, ("labels.csv", "line 3", "displacement 'high' is not a finite number")),
]  # fmt: skip


def _place(text: str, probe: Probe) -> str:
    return text.replace("RUN", str(probe.run)).replace("DATA", str(probe.data))


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_probe_row(row, request, tmp_path, make_cfg, caplog, capsys):
    caplog.set_level(logging.INFO)
    probe = Probe(tmp_path, make_cfg, caplog, watched=[])
    if row.needs_run:
        probe.run, probe.data = request.getfixturevalue("trained")
    probe.watched = [
        Path(_place(f, probe)) if f.isupper() or "/" in f else tmp_path / f for f in row.unchanged
    ]
    if row.exit_code == 0:
        said = str(run_task(row.act, probe))
    else:
        with pytest.raises(SystemExit) as exited:
            run_task(row.act, probe)
        assert exited.value.code == row.exit_code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err
        said = lines[0]
    for word in row.words:
        assert _place(word, probe) in said, said[-3000:]
    assert probe.before is not None, "the row never said when its input was complete"
    for folder, digest in probe.before.items():
        assert tree_digest(folder) == digest, folder


# The real CLIs (a subprocess costs seconds: only these few).
@pytest.mark.slow
@pytest.mark.parametrize("case", ["2", "8", "11"])
def test_probe_cli(case, cli, tmp_path, request):
    if case == "2":
        run, data = request.getfixturevalue("trained")
        args = ["evaluate", f"ckpt_path={run}", "data=frames", f"data.root={data}", *QUICK_EVAL]
        expected, words = 0, ["evaluation data: root=", "num_blocks=4, split_gap=1.0 (checkpoint)"]
    else:
        labels = rows("f0.png,0", "/etc/hostname,1") if case == "8" else "default"
        root = write_frames(tmp_path / "data", labels=labels)
        size = "data.batch_size=1" if case == "11" else "data.batch_size=4"
        args = ["train", "data=frames", f"data.root={root}", size, *QUIET]
        expected = EXIT_USER_ERROR
        words = ["line 3", "absolute path"] if case == "8" else ["data.batch_size=1"]
    done = cli(*args)
    text = done.stdout + done.stderr
    assert done.returncode == expected, text[-3000:]
    assert "Traceback" not in text
    if expected:
        assert sum(line.startswith("error:") for line in done.stderr.splitlines()) == 1
    for word in words:
        assert word in text, text[-3000:]
