"""Reading checkpoints safely: ``torch.load(weights_only=True)`` only, never arbitrary pickles.

A Lightning checkpoint written by this project holds tensors, numbers, strings and dicts only
(the run config is stored as a plain dict), so the safe loader reads all of it. A file that needs
the unsafe loader was not written by fastap_lab and is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from fastap_lab.errors import CheckpointError

CHECKPOINT_KEY = "fastap_lab"


def resolve_checkpoint_path(path: str | Path, field: str) -> Path:
    """A ``.ckpt`` file, or a run folder (-> ``<run>/checkpoints/last.ckpt``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "checkpoints" / "last.ckpt"
        if not candidate.is_file():
            raise CheckpointError(
                f"{field}={path}: a folder without checkpoints/last.ckpt; point it at a run"
                " folder of a finished training run or at a .ckpt file"
            )
        return candidate
    if not path.is_file():
        raise CheckpointError(f"{field}={path}: no such file; give a .ckpt file or a run folder")
    return path


def load_checkpoint(path: str | Path, field: str = "ckpt_path") -> dict:
    """Load a checkpoint dict on CPU with the safe (weights-only) unpickler."""
    path = resolve_checkpoint_path(path, field)
    kind = "empty (0 bytes)" if path.stat().st_size == 0 else "text" if _is_text(path) else None
    if kind:
        raise CheckpointError(
            f"{field}={path}: the file is {kind}, not a checkpoint; use the last.ckpt of a"
            " finished run (python -m fastap_lab.train writes it)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  any bytes at all: text and garbage fail in many ways
        raise CheckpointError(
            f"{field}={path}: not a readable fastap_lab checkpoint (truncated, corrupt, not a"
            f" checkpoint, or it holds objects the safe loader refuses: {load_failure(exc)});"
            " use the last.ckpt of a finished run"
        ) from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{field}={path}: no 'state_dict' in it; not a Lightning checkpoint")
    return checkpoint


def _is_text(path: Path) -> bool:
    """The file starts with UTF-8 text (a checkpoint is a zip or pickle: binary at once)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":  # a character cut at byte 512 is still text
            return False
    return b"\x00" not in head and all(b >= 32 or b in b"\t\n\r" for b in head)


def load_failure(exc: BaseException) -> str:
    """The reason ``torch.load`` gave, on one line and never empty (``EOFError`` has no text)."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes: a checkpoint's identity in galleries and exports."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_stage(checkpoint: dict) -> str | None:
    """The stage (``simsiam`` / ``fastap``) a checkpoint was trained by, or None."""
    return (checkpoint.get(CHECKPOINT_KEY) or {}).get("stage")


def submodule_state(checkpoint: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state_dict`` under ``prefix.`` with the prefix removed."""
    start = f"{prefix}."
    return {k[len(start) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(start)}


def load_submodule(module: torch.nn.Module, checkpoint: dict, prefix: str, where: str) -> None:
    """Load ``prefix.*`` weights into ``module``; name missing / unexpected / mis-shaped keys."""
    state = submodule_state(checkpoint, prefix)
    if not state:
        raise CheckpointError(
            f"{where}: no '{prefix}.*' weights in the checkpoint (stage:"
            f" {checkpoint_stage(checkpoint)}); give a SimSiam checkpoint"
        )
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mis_shaped:
        details = "; ".join(
            f"{name} ({len(keys)}): {', '.join(f'{prefix}.{k}' for k in keys[:3])}{' …' if len(keys) > 3 else ''}"
            for name, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape differs", mis_shaped),
            )
            if keys
        )
        raise CheckpointError(
            f"{where}: the checkpoint's {prefix} does not fit this model ({details}); use the same"
            " backbone / projector settings as the run that wrote it"
        )
    module.load_state_dict(state)
