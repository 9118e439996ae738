"""The FastAP stage: built from a SimSiam checkpoint, frozen parts stay frozen, bad checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from fastap_lab.build import build_datamodule, build_module, build_trainer
from fastap_lab.errors import CheckpointError, ConfigError
from tests.conftest import CONF_DIR, TINY

FASTAP = [
    "model=fastap",
    "loss=fastap",
    "optimizer=adamw",
    "model.projector_dim=32",
    "model.embedding_dim=8",
]


def _compose(tmp: Path, cache_dir: Path, overrides: list[str]):
    # TINY targets the SimSiam model and the phantom; drop what the chosen groups lack.
    dropped = ("model.predictor",) if "model=fastap" in overrides else ()
    dropped += ("data.phantom",) if "data=frames" in overrides else ()
    tiny = [o for o in TINY if not o.startswith(dropped)]
    base = [f"paths.output_dir={tmp}", f"paths.cache_dir={cache_dir}", *tiny]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=base + overrides)


@pytest.fixture(scope="module")
def simsiam_run(tmp_path_factory, cache_dir) -> Path:
    """A one-epoch tiny SimSiam run folder with checkpoints/last.ckpt."""
    run = tmp_path_factory.mktemp("simsiam_run")
    cfg = _compose(run, cache_dir, ["trainer.max_epochs=1", "logger={}"])
    module = build_module(cfg)
    build_trainer(cfg).fit(module, datamodule=build_datamodule(cfg))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    return run


def _fastap(tmp_path, cache_dir, simsiam_run, extra=()):
    cfg = _compose(tmp_path, cache_dir, [*FASTAP, f"model.pretrained={simsiam_run}", *extra])
    return cfg, build_module(cfg), build_datamodule(cfg)


def _bn_stats(module: torch.nn.Module) -> list[torch.Tensor]:
    return [b.clone() for name, b in module.named_buffers() if "running" in name]


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], after: list[torch.Tensor]) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_weights_come_from_the_simsiam_checkpoint(tmp_path, cache_dir, simsiam_run):
    _, module, _ = _fastap(tmp_path, cache_dir, simsiam_run)
    state = torch.load(simsiam_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for name, value in module.backbone.state_dict().items():
        assert torch.equal(value, state[f"backbone.{name}"])
    for name, value in module.projector.state_dict().items():
        assert torch.equal(value, state[f"projector.{name}"])


class ModeRecorder(L.Callback):
    """(backbone, projector, head) .training flags at every training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool, bool]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.append(
            (module.backbone.training, module.projector.training, module.head.training)
        )


@pytest.mark.parametrize("freeze_projector", [False, True])
def test_frozen_parts_get_no_gradient_and_keep_bn_stats(
    tmp_path, cache_dir, simsiam_run, freeze_projector
):
    cfg, module, datamodule = _fastap(
        tmp_path,
        cache_dir,
        simsiam_run,
        [f"model.freeze_projector={freeze_projector}", "debug=fast_dev_run"],
    )
    backbone, backbone_bn = _params(module.backbone), _bn_stats(module.backbone)
    projector, projector_bn = _params(module.projector), _bn_stats(module.projector)
    head = _params(module.head)
    module.eval()  # fit must set the modes itself (Lightning never calls .train())
    modes = ModeRecorder()
    build_trainer(cfg, callbacks=[modes]).fit(module, datamodule=datamodule)
    assert modes.seen and all(
        not backbone_training and projector_training is not freeze_projector and head_training
        for backbone_training, projector_training, head_training in modes.seen
    )
    assert not _changed(backbone, _params(module.backbone))
    assert not _changed(backbone_bn, _bn_stats(module.backbone))  # eval mode: no BN drift
    assert _changed(projector, _params(module.projector)) is not freeze_projector
    assert _changed(projector_bn, _bn_stats(module.projector)) is not freeze_projector
    assert _changed(head, _params(module.head))
    assert all(not p.requires_grad for p in module.backbone.parameters())


def test_labels_positives_with_m_per_class_batches(tmp_path, cache_dir, simsiam_run):
    extra = [
        "loss.positives=labels",
        "data.sampler=m_per_class",
        "data.m_per_class=4",
        "debug=fast_dev_run",
    ]
    cfg, module, datamodule = _fastap(tmp_path, cache_dir, simsiam_run, extra)
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.callback_metrics["train/anchors_with_positive"] == 1.0
    metrics = trainer.callback_metrics
    assert metrics["train/fastap"].item() == pytest.approx(1 - metrics["train/loss"].item())


def test_labels_positives_need_the_m_per_class_sampler(tmp_path, cache_dir, simsiam_run):
    cfg, module, datamodule = _fastap(
        tmp_path, cache_dir, simsiam_run, ["loss.positives=labels", "debug=fast_dev_run"]
    )
    with pytest.raises(ConfigError, match="data.sampler=m_per_class"):
        build_trainer(cfg).fit(module, datamodule=datamodule)


def test_embeddings_are_unit_length(tmp_path, cache_dir, simsiam_run):
    _, module, datamodule = _fastap(tmp_path, cache_dir, simsiam_run)
    datamodule.setup()
    embeddings = module.eval().embed(datamodule.frames.images[:6])
    assert embeddings.shape == (6, 8)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(6), atol=1e-5)


def test_wrong_stage_checkpoint_is_refused(tmp_path, cache_dir, simsiam_run):
    cfg, module, datamodule = _fastap(
        tmp_path / "fastap", cache_dir, simsiam_run, ["trainer.max_epochs=1", "logger={}"]
    )
    build_trainer(cfg).fit(module, datamodule=datamodule)
    fastap_ckpt = tmp_path / "fastap" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="a fastap checkpoint, not a SimSiam one"):
        _fastap(tmp_path, cache_dir, fastap_ckpt)


def test_architecture_mismatch_names_the_keys(tmp_path, cache_dir, simsiam_run):
    with pytest.raises(CheckpointError, match=r"shape differs \(\d+\): projector\.0\.weight"):
        _fastap(tmp_path, cache_dir, simsiam_run, ["model.projector_dim=48"])
    with pytest.raises(CheckpointError, match=r"missing \(\d+\): backbone\.net\.layer1\.2\."):
        _fastap(tmp_path, cache_dir, simsiam_run, ["backbone=resnet34"])


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "empty_dir"])
def test_unreadable_pretrained(tmp_path, cache_dir, simsiam_run, kind):
    path = tmp_path / "bad.ckpt"
    if kind == "text":
        path.write_text("not a checkpoint")
    elif kind == "truncated":
        data = (simsiam_run / "checkpoints" / "last.ckpt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty_dir":
        path.mkdir()
    with pytest.raises(CheckpointError, match="model.pretrained="):
        _fastap(tmp_path, cache_dir, path)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("loss.bins=0", "loss.bins"),
        ("loss.sigma=-0.1", "loss.sigma"),
        ("loss.positives=pairs", "loss.positives"),
    ],
)
def test_bad_loss_settings(tmp_path, cache_dir, override, field):
    extra = ["loss.kernel=gaussian", "loss.sigma=0.05"] if "sigma" in override else []
    cfg = _compose(tmp_path, cache_dir, [*FASTAP, *extra, override])
    with pytest.raises(Exception) as info:
        build_module(cfg)
    from fastap_lab.cli import find_user_error

    assert field in str(find_user_error(info.value))


def test_fastap_without_a_simsiam_run_says_what_to_run(cli):
    done = cli("train", "+experiment=smoke_fastap")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "python -m fastap_lab.train +experiment=smoke" in done.stderr


@pytest.mark.slow
def test_two_stages_chain_through_the_cli(cli, tmp_path):
    first = cli("train", "+experiment=smoke", "trainer.max_epochs=1")
    assert first.returncode == 0, first.stderr[-2000:]
    (simsiam_run,) = (tmp_path / "outputs" / "smoke").iterdir()
    second = cli("train", "+experiment=smoke_fastap", "trainer.max_epochs=1")
    assert second.returncode == 0, second.stderr[-2000:]
    (fastap_run,) = (tmp_path / "outputs" / "smoke_fastap").iterdir()
    from omegaconf import OmegaConf

    effective = OmegaConf.load(fastap_run / "config.yaml")
    assert effective.model.pretrained == str(simsiam_run / "checkpoints" / "last.ckpt")
    ckpt = torch.load(fastap_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["fastap_lab"]["stage"] == "fastap"
    assert any(k.startswith("head.") for k in ckpt["state_dict"])


def test_labels_positives_on_unlabelled_data(tmp_path, cache_dir, simsiam_run):
    from tests.integration.test_datamodule import _folder

    root = _folder(tmp_path / "frames_data", labels=False)
    data = ["data=frames", f"data.root={root}", "data.require_labels=false", "data.num_blocks=5"]
    extra = [*data, "loss.positives=labels", "data.sampler=m_per_class", "debug=fast_dev_run"]
    cfg, module, datamodule = _fastap(tmp_path, cache_dir, simsiam_run, extra)
    with pytest.raises(ConfigError, match="loss.positives=labels but the data has no labels"):
        build_trainer(cfg).fit(module, datamodule=datamodule)
