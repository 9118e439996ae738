"""A query of another contrast bridged to its breathing position (synthetic sequences with known
motion), and ``evaluate baseline=surrogate eval.adapt.target=…`` on the tiny cross-contrast phantom."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from fastap_lab.evaluation.embed import pixels_embedder
from fastap_lab.evaluation.surrogate_embedding import bridged_embedder, surrogate_embedder
from fastap_lab.evaluation_task import evaluate
from tests.conftest import CONF_DIR
from tests.integration.report_runs import QUICK_EVAL
from tests.unit.test_bridge import CPU, Frames, _zoomed, anatomy, breathing, sequence


def test_a_query_of_another_contrast_is_bridged_to_its_breathing_position():
    fps = 4.0
    gallery_d = breathing(240, fps, 3.0, 0.0, hold=(100, 140, 2.4))
    target_d = breathing(200, fps, 3.0, 1.3, hold=(20, 44, 0.3))  # other realisation and hold
    gallery = surrogate_embedder(Frames(sequence(gallery_d, "t1"), fps), CPU)
    bridged, record = bridged_embedder(gallery, sequence(target_d, "t2"), "target")
    assert abs(record["orientation_agreement"]) > 0.8
    gallery_embeddings = gallery.embed(sequence(gallery_d, "t1"))
    for position in (0.3, 1.5, 2.4):
        query = torch.from_numpy(_zoomed(anatomy(position, "t2")))[None, None]
        top = (gallery_embeddings @ bridged.embed(query)[0]).argsort(descending=True)[:10]
        assert np.abs(gallery_d[top.numpy()] - position).mean() < 0.45, position
    pixels = pixels_embedder(sequence(gallery_d, "t1"), 32, CPU)
    query = torch.from_numpy(_zoomed(anatomy(2.4, "t2")))[None, None]
    top = (pixels.embed(sequence(gallery_d, "t1")) @ pixels.embed(query)[0]).argsort()[-10:]
    assert np.abs(gallery_d[top.numpy()] - 2.4).mean() > 0.45  # raw pixels cannot do this


def _evaluate(cache_dir, out, *extra):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", [*CROSS, f"paths.cache_dir={cache_dir}",
                                   f"paths.output_dir={out}", *QUICK_EVAL, *extra])  # fmt: skip
    return evaluate(cfg)


CROSS = ["baseline=surrogate", "data=phantom_tiny", "data.phantom.target_contrast=t2"]


def test_evaluate_bridges_the_external_queries_and_leaves_the_gallery_alone(cache_dir, tmp_path):
    plain = _evaluate(cache_dir, tmp_path / "plain")
    target = Path(plain["data_root"]) / "target"
    bridged = _evaluate(cache_dir, tmp_path / "bridged", f"eval.adapt.target={target}")
    assert plain["adaptation"] is None and plain["model"] == "surrogate"
    assert bridged["adaptation"]["mode"] == "bridge"  # eval.adapt.mode=auto picks it
    assert abs(bridged["adaptation"]["orientation_agreement"]) > 0.5
    assert bridged["metrics"] == plain["metrics"]  # internal queries and gallery: unchanged
    external = {p.name for p in (tmp_path / "plain" / "tables").glob("external_*")}
    assert external
    assert any((tmp_path / "plain" / "tables" / name).read_text()
               != (tmp_path / "bridged" / "tables" / name).read_text() for name in external)  # fmt: skip


def test_an_orientation_that_is_a_guess_is_warned_about(cache_dir, tmp_path, caplog, monkeypatch):
    import fastap_lab.respiration.placement as placement

    plain = _evaluate(cache_dir, tmp_path / "plain")
    monkeypatch.setattr(placement, "field_agreement", lambda first, second: 0.1)
    target = f"eval.adapt.target={Path(plain['data_root']) / 'target'}"
    with caplog.at_level(logging.WARNING, logger="fastap_lab.evaluate"):
        record = _evaluate(cache_dir, tmp_path / "bridged", target)
    assert record["adaptation"]["orientation_agreement"] == 0.1
    warning = "eval.adapt: the target and gallery sequences' breathing motions agree only 0.10"
    assert warning in caplog.text


def test_a_mode_that_does_not_fit_the_embedding_is_one_line(cli, tmp_path):
    (tmp_path / "t").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "t" / "0.png")
    cases = [
        (["baseline=pixels", "eval.adapt.mode=bridge"], "needs baseline=surrogate"),
        (["baseline=surrogate", "eval.adapt.mode=adabn"], "no network to adapt"),
    ]
    for overrides, expected in cases:
        done = cli("evaluate", "data=phantom_tiny", f"eval.adapt.target={tmp_path / 't'}",
                   *overrides)  # fmt: skip
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert expected in done.stderr.strip().splitlines()[-1]


def test_the_gate_places_an_image_of_another_contrast_through_its_sequence(
    cli, cache_dir, tmp_path
):
    plain = _evaluate(cache_dir, tmp_path / "e")  # generates the tiny cross-contrast phantom
    root = Path(plain["data_root"])
    common = ["data=phantom_tiny", "data.phantom.target_contrast=t2",
              f"reference={root / 'queries' / 'invivo.png'}"]  # fmt: skip
    done = cli("gate", *common, f"gate.target={root / 'target'}", f"out={tmp_path / 'g'}")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "g" / "gate.json").read_text())
    assert record["bridge"]["num_target_images"] == len(
        list((root / "target" / "frames").iterdir())
    )
    assert "gate.target" in record["reference_placement"]
    cases = [
        (["gate.method=pixels"], "gate.method=surrogate only"),
        (["reference=3"], "needs no bridge"),
    ]
    for extra, expected in cases:
        done = cli("gate", *common, f"gate.target={root / 'target'}", *extra)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert expected in done.stderr.strip().splitlines()[-1]
