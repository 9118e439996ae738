"""Bad input through train / evaluate: one ``error:`` line naming the file / field / value,
exit code 2, no traceback, an earlier run folder left byte-identical and no partial outputs.

Most cases run in-process through ``run_task`` (the code path of the CLIs, minus Hydra's
composition, which ``compose`` reproduces); a few go through the real CLIs as subprocesses.
The unit-level messages are tested in test_frames_io.py / test_cli_errors.py / test_evaluate.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastap_lab.build import AtomicCheckpointIO, build_datamodule
from fastap_lab.checkpoints import CHECKPOINT_KEY, load_checkpoint
from fastap_lab.cli import EXIT_USER_ERROR, run_task
from fastap_lab.errors import CheckpointError
from fastap_lab.evaluation_task import evaluate
from fastap_lab.train import train
from tests.conftest import TINY

QUIET = [
    "logger={}", "callbacks.retrieval=null", "callbacks.best_checkpoint=null",
    "eval_after_train=false", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
]  # fmt: skip
SMALL_FRAMES = [
    "data.image_size=16", "data.batch_size=4", "data.num_blocks=2", "data.split_gap=0",
    "model.projector_dim=32", "model.predictor_dim=8",
]  # fmt: skip


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256): equal digests = byte-identical."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory, cache_dir):
    """A finished tiny SimSiam run (checkpoints/last.ckpt) that failures must not touch."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    run = tmp_path_factory.mktemp("earlier") / "run"
    overrides = [f"paths.output_dir={run}", f"paths.cache_dir={cache_dir}", *TINY, *QUIET]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=[*overrides, "+trainer.limit_train_batches=1"]))
    return run


def write_frames(root: Path, labels: str | None = "default", count: int = 12) -> Path:
    """``root/frames/f{i}.png`` (8x8 gray) and ``root/labels.csv`` (``labels`` rows, or none)."""
    (root / "frames").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(root / "frames" / f"f{i}.png")
    if labels == "default":
        labels = "frame,label\n" + "".join(f"f{i}.png,{i % 2}\n" for i in range(count))
    if labels is not None:
        (root / "labels.csv").write_text(labels)
    return root


def with_rows(*rows: str) -> str:
    return "frame,label\n" + "".join(f"{row}\n" for row in rows)


def _empty_frames(root):
    (root / "frames").mkdir(parents=True)
    (root / "labels.csv").write_text("frame,label\n")


def _corrupt_image(root):
    write_frames(root)
    (root / "frames" / "f3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _undecodable_video(root):
    root.mkdir(parents=True)
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")


# (id, data builder or None, overrides relative to the data folder ROOT, needles of the message)
TRAIN_CASES = [
    ("empty_frames", _empty_frames, [], ["error:", "frames", "no images found"]),
    ("labels_missing", lambda r: write_frames(r, labels=None), [], ["labels.csv"]),
    ("labels_empty", lambda r: write_frames(r, labels=""), [], ["labels.csv", "empty"]),
    ("no_label_column", lambda r: write_frames(r, labels="frame,time\nf0.png,0\n"), [], ["'label'"]),
    ("duplicate_frames", lambda r: write_frames(r, labels=with_rows("f0.png,0", "f0.png,1")), [], ["f0.png"]),
    ("names_missing_file", lambda r: write_frames(r, labels=with_rows("f0.png,0", "gone.png,1")), [], ["gone.png"]),
    ("label_not_integer", lambda r: write_frames(r, labels=with_rows("f0.png,0", "f1.png,1.5")), [], ["'1.5'", "integer"]),
    ("label_nan", lambda r: write_frames(r, labels=with_rows("f0.png,0", "f1.png,nan")), [], ["'nan'"]),
    ("corrupt_image", _corrupt_image, [], ["f3.png"]),
    ("undecodable_video", _undecodable_video, ["data=video", "data.video=ROOT/clip.mp4", "data.require_labels=false"], ["clip.mp4", "cannot decode"]),
    ("batch_larger_than_data", write_frames, ["data.batch_size=64"], ["data.batch_size=64", "data.drop_last"]),
    ("bins_zero", write_frames, ["model=fastap", "loss=fastap", "loss.bins=0"], ["loss.bins=0"]),
    ("negative_sigma", write_frames, ["model=fastap", "loss=fastap", "loss.kernel=gaussian", "loss.sigma=-0.1"], ["loss.sigma=-0.1"]),
    ("sigma_zero", write_frames, ["model=fastap", "loss=fastap", "loss.kernel=gaussian", "loss.sigma=0"], ["loss.sigma=0"]),
    ("batch_size_zero", write_frames, ["data.batch_size=0"], ["data.batch_size=0", ">= 1"]),
    ("val_fraction_one", write_frames, ["data.val_fraction=1.0"], ["data.val_fraction=1.0", "(0, 1)"]),
    ("val_fraction_zero", write_frames, ["data.val_fraction=0"], ["data.val_fraction=0", "(0, 1)"]),
    ("resume_missing_checkpoint", write_frames, ["ckpt_path=ROOT/nope.ckpt"], ["ckpt_path=", "nope.ckpt"]),
]  # fmt: skip


def without_predictor(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith("model.predictor_dim")]


def run_in_process(task, cfg, capsys) -> str:
    """``run_task(task, cfg)`` as the CLI runs it: exit code 2, one error line; its stderr."""
    with pytest.raises(SystemExit) as exited:
        run_task(task, cfg)
    assert exited.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, err[-2000:]
    return error_lines[0]


def _resolve(overrides: list[str], root: Path) -> list[str]:
    return [o.replace("ROOT", str(root)) for o in overrides]


@pytest.mark.parametrize(
    ("builder", "overrides", "needles"),
    [case[1:] for case in TRAIN_CASES],
    ids=[case[0] for case in TRAIN_CASES],
)
def test_train_refuses_bad_input(
    builder, overrides, needles, make_cfg, tmp_path, earlier_run, capsys
):
    before = tree_digest(earlier_run)
    root = tmp_path / "data"
    builder(root)
    data = [] if "data=video" in overrides else ["data=frames", f"data.root={root}"]
    small = SMALL_FRAMES
    if "model=fastap" in overrides:  # the FastAP head has no predictor; start from the run
        small = [*without_predictor(SMALL_FRAMES), f"model.pretrained={earlier_run}"]
    cfg = make_cfg([*data, *QUIET, *small, *_resolve(overrides, root)])
    message = run_in_process(train, cfg, capsys)
    for needle in needles:
        assert needle in message, message
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert tree_digest(earlier_run) == before


def _truncated(run: Path, tmp_path: Path) -> Path:
    data = (run / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 3])
    return tmp_path / "cut.ckpt"


EVALUATE_CASES = [
    ("checkpoint_missing", lambda run, tmp: [f"ckpt_path={tmp / 'none.ckpt'}"], ["none.ckpt"]),
    ("checkpoint_truncated", lambda run, tmp: [f"ckpt_path={_truncated(run, tmp)}"], ["cut.ckpt", "truncated"]),
    ("k_zero", lambda run, tmp: [f"ckpt_path={run}", "eval.ks=[0]"], ["eval.ks=[0]"]),
    ("external_query_missing", lambda run, tmp: [f"ckpt_path={run}", f"eval.queries.external=[{tmp / 'q.png'}]"], ["q.png"]),
    ("empty_frames", lambda run, tmp: [f"ckpt_path={run}", "data=frames", f"data.root={tmp / 'data'}"], ["no images found"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "needles"),
    [case[1:] for case in EVALUATE_CASES],
    ids=[case[0] for case in EVALUATE_CASES],
)
def test_evaluate_refuses_bad_input(arguments, needles, make_cfg, tmp_path, earlier_run, capsys):
    _empty_frames(tmp_path / "data")
    before = tree_digest(earlier_run)
    cfg = make_cfg(["eval.device=cpu", *arguments(earlier_run, tmp_path)], config_name="evaluate")
    message = run_in_process(evaluate, cfg, capsys)
    for needle in needles:
        assert needle in message, message
    # Refused before an output folder is claimed: no inference*/ anywhere, nothing changed.
    assert tree_digest(earlier_run) == before
    assert not list(tmp_path.rglob("embeddings.npy"))


def test_fastap_pretrained_refuses_a_fastap_checkpoint(make_cfg, tmp_path, earlier_run, capsys):
    checkpoint = load_checkpoint(earlier_run)
    checkpoint[CHECKPOINT_KEY] = {**checkpoint[CHECKPOINT_KEY], "stage": "fastap"}
    torch.save(checkpoint, tmp_path / "fastap.ckpt")
    cfg = make_cfg(
        [
            *without_predictor(TINY),
            *QUIET,
            "model=fastap",
            "loss=fastap",
            f"model.pretrained={tmp_path / 'fastap.ckpt'}",
        ]
    )
    message = run_in_process(train, cfg, capsys)
    assert "model.pretrained=" in message and "fastap checkpoint" in message


def test_mixed_sizes_and_channels_are_resized_with_a_note(make_cfg, tmp_path):
    root = write_frames(tmp_path / "data")
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(root / "frames" / "f0.png")
    datamodule = build_datamodule(make_cfg(["data=frames", f"data.root={root}", *SMALL_FRAMES]))
    datamodule.setup()
    assert datamodule.frames.images.shape[1:] == (1, 16, 16)
    assert datamodule.frames.notes, "resizing / converting frames should leave a note"


class RunsCodeOnLoad:
    """Unpickling this calls ``open(marker, "w")``: code a checkpoint must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_checkpoint(folder: Path) -> tuple[Path, Path]:
    marker = folder / "code_ran"
    path = folder / "evil.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "payload": RunsCodeOnLoad(marker)}, path)
    return path, marker


def test_checkpoint_that_runs_code_is_refused_everywhere(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        AtomicCheckpointIO().load_checkpoint(path)  # what trainer.fit(ckpt_path=…) calls
    assert not marker.exists()
    # The file really is malicious: the explicit opt-in (trusted files only) runs its code.
    AtomicCheckpointIO(allow_unsafe=True).load_checkpoint(path)
    assert marker.exists()


# The CLI contract end to end (a subprocess costs seconds: only these few).
@pytest.mark.parametrize("case", ["empty_frames", "evil_resume", "truncated_evaluate"])
def test_cli_contract(case, cli, tmp_path, earlier_run):
    before = tree_digest(earlier_run)
    if case == "empty_frames":
        _empty_frames(tmp_path / "data")
        args = ["train", "data=frames", f"data.root={tmp_path / 'data'}", *QUIET]
    elif case == "evil_resume":
        path, marker = malicious_checkpoint(tmp_path)
        args = ["train", *TINY, *QUIET, f"ckpt_path={path}"]
    else:
        args = ["evaluate", f"ckpt_path={_truncated(earlier_run, tmp_path)}", "eval.device=cpu"]
    done = cli(*args)
    text = done.stdout + done.stderr
    assert done.returncode == EXIT_USER_ERROR, text[-3000:]
    assert "Traceback" not in text
    assert sum(line.startswith("error:") for line in done.stderr.splitlines()) == 1
    assert tree_digest(earlier_run) == before
    assert not list(tmp_path.rglob("embeddings.npy"))
    if case == "evil_resume":
        assert not marker.exists()
