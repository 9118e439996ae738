"""Domain adaptation of a trained network to queries from another contrast: AdaBN.

AdaBN (Li et al. 2016) keeps every learned weight and re-estimates only the BatchNorm running
statistics on unlabelled images of the target domain (here: a sequence acquired with the
query's contrast). Evaluation then uses *domain-specific* BatchNorm: the source gallery is
embedded with the checkpoint's own (source-domain) statistics and the queries from the target
domain with the re-estimated ones, so each domain is standardised by its own moments before the
shared weights see it — which is what lets a query of another contrast land among the source
frames of the same breathing phase.

Owns ``eval.adapt``: its values (:func:`check_adapt`), the target images and the adapted
embedder of the external queries (:func:`adapted_queries`: AdaBN here, or the surrogate's bridge,
:mod:`fastap_lab.evaluation.surrogate_embedding`). Pure: torch only (no Lightning, no Hydra).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from torch import nn

from fastap_lab.data.decode import count_noun, decode_images
from fastap_lab.data.frames import IMAGE_EXTENSIONS, list_images
from fastap_lab.errors import ConfigError, DataError

MODES = ("auto", "adabn", "bridge")  # bridge: evaluation/surrogate_embedding.py
BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def target_image_paths(folder: str | Path, key: str = "eval.adapt.target") -> list[Path]:
    """The image files of a target-domain folder, in natural order.

    The images of a target-domain folder: ``folder/frames/*`` (the frames format) when there
    is a ``frames/`` folder, else every image under ``folder`` (recursive), natural order.

    Raises DataError (one line) when the folder is missing or holds no image.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"{key}={folder}: not a folder; give a folder of target-domain images"
            " (plain images, or the frames format with frames/)"
        )
    images_dir = folder / "frames" if (folder / "frames").is_dir() else folder
    names = list_images(images_dir)
    if not names:
        raise DataError(
            f"{key}={folder}: no images in {images_dir} (accepted:"
            f" {', '.join(IMAGE_EXTENSIONS)}); put the unlabelled target-domain sequence there"
        )
    return [images_dir / name for name in names]


def load_target_images(
    folder: str | Path, *, channels: int, image_size: int, key: str = "eval.adapt.target"
) -> torch.Tensor:
    """uint8 [N, channels, image_size, image_size]: the target folder decoded as the frames are."""
    paths = target_image_paths(folder, key)
    images, _ = decode_images(paths, channels=channels, image_size=image_size, num_workers=4)
    return torch.from_numpy(images)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics, in module order."""
    return [m for m in model.modules() if isinstance(m, BATCHNORM_TYPES) and m.track_running_stats]


@torch.no_grad()
def adapt_batchnorm(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int,
    forward=None,
) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are those of ``images`` (AdaBN).

    Every BatchNorm layer on the ``forward`` path has its running mean / variance reset and re-estimated as the
    cumulative moving average (``momentum=None``) of the batch moments over one pass of
    ``images``; only the BatchNorm layers are put in train mode (dropout and the rest stay in
    eval mode), no gradient is computed and no weight changes. ``model`` itself is untouched.

    Args:
        model: the network (any nn.Module); it is deep-copied.
        images: target-domain inputs [N, ...] as ``forward`` takes them (e.g. uint8 frames).
        batch_size: inputs per forward pass (>= 2: BatchNorm needs two samples per batch).
        forward: ``forward(copy, batch) -> anything``, the pass that runs the layers whose
            statistics matter (default: ``copy(batch)``); e.g. ``lambda m, x: m.embed(x)``.

    Returns:
        The adapted copy, in eval mode, on the device of ``model``'s first parameter or buffer.
    """
    if images.shape[0] < 2:
        raise ConfigError(
            f"eval.adapt.target: {count_noun(images.shape[0], 'image')}; AdaBN needs at least 2"
        )
    adapted = copy.deepcopy(model).eval()
    layers = batchnorm_layers(adapted)
    if not layers:
        raise ConfigError(
            "eval.adapt.mode=adabn: the model has no BatchNorm layer to adapt; drop eval.adapt"
        )
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average over the whole pass
        layer.train()
    device = next(iter([*adapted.parameters(), *adapted.buffers()])).device
    step = max(int(batch_size), 2)
    run = forward or (lambda module, batch: module(batch))
    for start in range(0, images.shape[0], step):
        batch = images[start : start + step]
        if batch.shape[0] < 2 and start > 0:
            break  # a single leftover sample has no batch variance
        run(adapted, batch.to(device))
    for layer, original in zip(layers, batchnorm_layers(model), strict=True):
        layer.momentum = original.momentum
        if int(layer.num_batches_tracked) == 0:
            # Not on the ``forward`` path (e.g. a projector when embedding from the backbone):
            # keep the source statistics instead of the reset ones.
            layer.load_state_dict(original.state_dict())
    return adapted.eval()


def adapted_embedder(embedder, images: torch.Tensor, batch_size: int, target: str, mode: str):
    """A copy of ``embedder`` with BatchNorm statistics re-estimated on ``images`` (AdaBN).

    (an Embedder like ``embedder`` whose network's BatchNorm statistics come from
    ``images``, uint8 [N, C, H, W] target-domain frames; metrics.json's ``adaptation``).
    ``embedder`` is unchanged.

    Only networks can be adapted (a checkpoint, or the untrained baseline); the raw pixel
    baseline has none and is refused with one line.
    """
    module = getattr(embedder.embed, "__self__", None)  # Embedder.embed is module.embed
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"eval.adapt.target: the {embedder.kind} baseline has no network to adapt;"
            " drop eval.adapt.target"
        )
    adapted = adapt_batchnorm(module, images, batch_size, forward=_embed)
    changed = sum(  # layers off the embedding path keep the source statistics
        not torch.equal(new.running_mean, old.running_mean)
        for new, old in zip(batchnorm_layers(adapted), batchnorm_layers(module), strict=True)
    )
    record = {
        "mode": mode, "target": str(Path(target).expanduser().resolve()),
        "num_target_images": int(images.shape[0]), "batchnorm_layers_adapted": changed,
        "queries": "external queries: target-domain BatchNorm statistics (AdaBN)",
        "gallery": "source-domain BatchNorm statistics (the checkpoint's own)",
    }  # fmt: skip
    return dataclasses.replace(embedder, embed=adapted.embed), record


def _embed(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return module.embed(images)


def check_adapt(adapt) -> tuple[str | None, str | None]:
    """(target folder, mode) of the ``eval.adapt`` config, or (None, None) when off."""
    if adapt is None or adapt.get("target") in (None, ""):
        return None, None
    mode = adapt.get("mode") or "auto"
    if mode not in MODES:
        raise ConfigError(f"eval.adapt.mode={mode!r}: choose one of {list(MODES)}")
    return str(adapt["target"]), mode


def adapted_queries(embedder, target_images, target: str | None, mode: str | None, batch_size: int):
    """Adapt the embedder to the external queries as ``eval.adapt`` says.

    (embedder of the external queries, metrics.json ``adaptation``) of ``eval.adapt``, or
    (None, None) when it is off; mode ``auto``: the bridge for the surrogate, AdaBN otherwise.
    ``batch_size``: eval.batch_size (AdaBN's passes over the target images).
    """
    if not target:
        return None, None
    if mode == "auto":
        mode = "bridge" if embedder.kind == "surrogate" else "adabn"
    if mode == "bridge":
        from fastap_lab.evaluation.surrogate_embedding import bridged_embedder

        return bridged_embedder(embedder, target_images, target)
    return adapted_embedder(embedder, target_images, batch_size, target, mode)


def running_statistics(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(running_mean, running_var) clones of every BatchNorm layer, for checks and tests."""
    return [(m.running_mean.clone(), m.running_var.clone()) for m in batchnorm_layers(model)]
