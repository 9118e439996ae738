"""AdaBN (evaluation/adapt.py): BatchNorm statistics re-estimated on an unlabelled target-domain
folder, used for the external queries only; the option composes; bad folders are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from torch import nn

from fastap_lab.embedders import checkpoint_embedder
from fastap_lab.errors import ConfigError, DataError
from fastap_lab.evaluation import adapt
from fastap_lab.evaluation_task import evaluate
from tests.conftest import CONF_DIR, train_tiny_run

QUICK_EVAL = ["eval.device=cpu", "eval.table_k=3"]


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3),
    )  # fmt: skip


def test_running_statistics_become_the_target_moments():
    model = small_net().eval()
    before = adapt.running_statistics(model)
    target = 3.0 + 2.0 * torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    adapted = adapt.adapt_batchnorm(model, target, batch_size=8)
    with torch.no_grad():
        conv_out = model[0](target)  # the first BN layer's input (the conv is not changed)
    batches = conv_out.split(8)  # cumulative average of the 4 batches' moments
    mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(adapted[1].running_mean, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(adapted[1].running_var, var, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(adapted[1].running_mean, before[0][0])
    assert not torch.allclose(adapted[7].running_mean, before[1][0])  # the last BN too
    for (mean0, var0), (mean1, var1) in zip(before, adapt.running_statistics(model), strict=True):
        assert torch.equal(mean0, mean1) and torch.equal(var0, var1)  # the original is untouched
    assert not adapted.training and all(not m.training for m in adapted.modules())
    assert adapted[1].momentum == model[1].momentum == 0.1  # restored after the pass
    for name, weight in model.state_dict().items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(weight, adapted.state_dict()[name])  # weights unchanged


def test_only_batchnorm_runs_in_train_mode_and_untouched_layers_keep_their_statistics():
    model = small_net().eval()
    seen = []
    model[3].register_forward_hook(lambda module, args, out: seen.append(module.training))
    # forward only up to the first BN: the BatchNorm1d at the end is not on the path
    adapted = adapt.adapt_batchnorm(
        model, torch.randn(6, 1, 8, 8), batch_size=3, forward=lambda m, x: m[:4](x)
    )
    assert seen == [False, False]  # dropout stayed in eval mode
    assert int(adapted[1].num_batches_tracked) == 2
    assert torch.equal(adapted[7].running_mean, model[7].running_mean)
    assert torch.equal(adapted[7].running_var, model[7].running_var)


def test_target_folder_formats_and_bad_folders(tmp_path):
    plain, frames = tmp_path / "plain", tmp_path / "seq"
    (frames / "frames").mkdir(parents=True)
    (frames / "queries").mkdir()
    plain.mkdir()
    for i in range(3):
        image = Image.fromarray(np.full((20, 20), 40 * i, np.uint8))
        image.save(plain / f"t{i}.png")
        image.save(frames / "frames" / f"f{i}.png")
    image.save(frames / "queries" / "q.png")  # not a target frame
    images = adapt.load_target_images(plain, channels=1, image_size=16)
    assert images.shape == (3, 1, 16, 16) and images.dtype == torch.uint8
    assert [p.name for p in adapt.target_image_paths(frames)] == ["f0.png", "f1.png", "f2.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"eval.adapt.target=.*empty: no images in"):
        adapt.target_image_paths(tmp_path / "empty")
    with pytest.raises(DataError, match="not a folder"):
        adapt.target_image_paths(tmp_path / "missing")
    with pytest.raises(ConfigError, match="eval.adapt.mode='tent'"):
        adapt.check_adapt({"target": str(plain), "mode": "tent"})
    assert adapt.check_adapt({"target": None, "mode": "adabn"}) == (None, None)


def test_option_composes():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=["eval.adapt.target=/data/t2", "eval.adapt.mode=adabn"])
    assert adapt.check_adapt(cfg.eval.adapt) == ("/data/t2", "adabn")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        assert compose("evaluate").eval.adapt.target is None


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, cache_dir):
    return train_tiny_run(tmp_path_factory.mktemp("adapt") / "run", cache_dir)


def test_external_queries_use_the_target_statistics_and_the_gallery_does_not(
    smoke_run, cache_dir, tmp_path
):
    target = tmp_path / "target"
    target.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # a brighter, noisier "contrast" than the phantom's frames
        Image.fromarray(rng.integers(120, 255, (32, 32), dtype=np.uint8)).save(target / f"{i}.png")

    def run(folder, *extra):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "evaluate",
                [f"ckpt_path={smoke_run}", f"paths.cache_dir={cache_dir}",
                 f"paths.output_dir={tmp_path / folder}", *QUICK_EVAL, *extra],
            )  # fmt: skip
        return evaluate(cfg)

    plain = run("a")
    adapted = run("b", f"eval.adapt.target={target}")
    record = json.loads((smoke_run / "inference-2" / "metrics.json").read_text())
    assert record["adaptation"]["num_target_images"] == 8 and plain["adaptation"] is None
    # the run embeds at its backbone: the projector's BatchNorm layers keep their statistics
    module = checkpoint_embedder(smoke_run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    backbone = len(adapt.batchnorm_layers(module.embed.__self__.backbone))
    assert record["adaptation"]["batchnorm_layers_adapted"] == backbone
    assert backbone < len(adapt.batchnorm_layers(module.embed.__self__))
    assert record["metrics"] == plain["metrics"] == adapted["metrics"]  # the gallery: source BN
    a, b = (np.load(smoke_run / d / "embeddings.npy") for d in ("inference", "inference-2"))
    np.testing.assert_array_equal(a, b)
    tables_a = {p.name: p.read_text() for p in (smoke_run / "inference" / "tables").glob("*")}
    tables_b = {p.name: p.read_text() for p in (smoke_run / "inference-2" / "tables").glob("*")}
    assert tables_a.keys() == tables_b.keys()
    internal = [name for name in tables_a if name.startswith("internal_")]
    external = [name for name in tables_a if name.startswith("external_")]
    assert internal and all(tables_a[name] == tables_b[name] for name in internal)
    assert external and all(tables_a[name] != tables_b[name] for name in external)


def test_empty_target_folder_is_one_line(cli, tmp_path, smoke_run):
    (tmp_path / "empty").mkdir()
    done = cli("evaluate", f"ckpt_path={smoke_run}", f"eval.adapt.target={tmp_path / 'empty'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: eval.adapt.target=") and "no images" in last
