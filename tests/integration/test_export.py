"""``python -m fastap_lab.export``: ONNX (onnxruntime) and TorchScript embedders equal the
PyTorch embedder within 1e-4 for a SimSiam and a FastAP checkpoint, at any batch size; the
folder rule; search with an exported model imports neither Lightning nor Hydra, and refuses a
model that embeds unlike the gallery's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fastap_lab.compose import compose_config
from fastap_lab.errors import ConfigError
from tests.conftest import CONF_DIR
from tests.integration.report_runs import tiny_runs


def run_export(run: Path, *overrides: str) -> dict:
    from fastap_lab.export import export

    return export(compose_config("export", [f"ckpt_path={run}", "paths.output_dir=.", *overrides]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    return tiny_runs(tmp_path_factory, cache_dir)


@pytest.mark.parametrize("stage", [0, 1], ids=["simsiam", "fastap"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_equals_pytorch(runs, stage, fmt, tmp_path):
    import onnxruntime

    from fastap_lab.embedders import checkpoint_embedder
    from fastap_lab.exported import load_exported

    run = runs[stage]
    record = run_export(run, f"format={fmt}", f"out={tmp_path / 'e'}")
    embedder = checkpoint_embedder(run, torch.device("cpu"))
    spec = embedder.preprocess
    images = torch.randint(0, 256, (7, spec.channels, spec.image_size, spec.image_size),
                           dtype=torch.uint8, generator=torch.Generator().manual_seed(1))  # fmt: skip
    with torch.no_grad():
        expected = embedder.embed(images).numpy()
    inputs = spec.prepare(images).numpy()
    file = tmp_path / "e" / record["file"]
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": inputs})[0]
    else:
        got = torch.jit.load(str(file))(torch.from_numpy(inputs)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        load_exported(file).embed(images[:3]).numpy(), expected[:3], atol=1e-4
    )
    stored = json.loads((tmp_path / "e" / "preprocess.json").read_text())
    assert (
        stored["output"]["shape"] == ["N", expected.shape[1]]
        and stored["model"]["dim"] == expected.shape[1]
    )
    assert (
        stored["model"]["preprocess"]["mean"] == spec.mean
        and stored["max_abs_difference_vs_pytorch"] <= 1e-4
    )


def test_default_folder_projector_layer_and_refusals(runs, tmp_path):
    simsiam = runs[0]
    record = run_export(simsiam, "format=torchscript", "embed_layer=projector")
    assert record["model"]["embed_layer"] == "projector" and record["output"]["shape"] == ["N", 32]
    run_export(simsiam, "format=torchscript")
    assert (simsiam / "export" / "embedder.pt").is_file()
    assert (simsiam / "export-2" / "embedder.pt").is_file()
    with pytest.raises(ConfigError, match="never overwritten"):
        run_export(simsiam, f"out={simsiam / 'export'}")
    with pytest.raises(ConfigError, match="choose onnx or torchscript"):
        run_export(simsiam, "format=tflite")


NO_FRAMEWORKS = """
import sys
from fastap_lab.search import main
main(sys.argv[1:])
loaded = {name.split(".")[0] for name in sys.modules} & {"lightning", "hydra", "pytorch_lightning"}
print("loaded:", ",".join(sorted(loaded)) or "none")
"""


def test_search_with_an_exported_model_needs_no_lightning_or_hydra(runs, tmp_path, cache_dir):
    from tests.integration.test_embed_search import run_embed

    simsiam, fastap = runs
    run_export(simsiam, "format=onnx", f"out={tmp_path / 'onnx'}")
    run_embed(simsiam, cache_dir, f"out={tmp_path / 'g'}")
    frames_dir = next(Path(cache_dir).glob("*/frames"))
    query = str(sorted(frames_dir.iterdir())[0])
    args = [
        f"gallery={tmp_path / 'g'}",
        f"query={query}",
        "k=5",
        f"model={tmp_path / 'onnx' / 'embedder.onnx'}",
    ]
    env = {"PYTHONPATH": str(CONF_DIR.parent), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS, *args], capture_output=True,
                            text=True, timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "loaded: none" in result.stdout and "rank" in result.stdout
    run_export(fastap, "format=onnx", f"out={tmp_path / 'other'}")
    from fastap_lab.search import main

    with pytest.raises(SystemExit) as stop:
        main([*args[:3], f"model={tmp_path / 'other'}"])
    assert stop.value.code == 2


def test_unknown_format_on_the_command_line_is_one_line(runs, cli):
    result = cli("export", f"ckpt_path={runs[0]}", "format=tflite")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: format='tflite': choose onnx or torchscript"
    ]
