"""The data settings of an evaluation: the checkpoint's, except what the command line gives.

A model only makes sense on frames prepared as in training, so the checkpoint's preprocessing
(``image_size``, ``channels``) and split settings (``split``, ``val_fraction``,
``num_blocks``, ``split_gap``) are kept unless a ``data.<key>=`` override names them, even
when ``data=frames`` / ``data=video`` brings in its group defaults: the group only says
*which* frames (``root``, ``video``, ``labels_csv``, ``path`` and the DICOM / NIfTI settings,
``phantom``). The input normalisation
always comes with the checkpoint's model. Without a checkpoint (baselines) the data group, else
the training default, takes the checkpoint's place. Every key's origin is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

PREPROCESSING = (
    "image_size",
    "channels",
    "register",
    "split",
    "val_fraction",
    "num_blocks",
    "split_gap",
)
SOURCE = ("root", "video", "labels_csv", "path", "format", "series", "window", "slice", "fps",
          "phantom")  # fmt: skip
LOCATION = (
    "root",
    "video",
    "labels_csv",
    "path",
    "phantom",
)  # which frames; the rest of SOURCE: how
COMMAND_LINE = "command line"


def overridden_data_keys(overrides: Iterable[str]) -> set[str]:
    """The ``data`` keys that command-line overrides set.

    ``data.image_size=32`` -> ``image_size``; ``+data.x=1`` -> ``x``; ``data.phantom.seed=3``
    -> ``phantom``. Group choices (``data=frames``) and deletions (``~data.x``) set no key.
    """
    keys = set()
    for override in overrides:
        name = override.split("=", 1)[0].lstrip("+")
        if "=" in override and name.startswith("data.") and not override.startswith("~"):
            keys.add(name.split(".")[1])
    return keys


@dataclass
class DataSettings:
    """An evaluation's data config and where each of its keys came from.

    The data config an evaluation builds its datamodule from, and where each key came from
    (``checkpoint``, ``command line``, ``data group`` or ``training default``).
    """

    data: dict
    origins: dict[str, str]

    def source(self) -> str:
        """Where the frames come from, as the console prints it (``root=...`` or ``video=...``)."""
        if self.data.get("root") is not None:
            return f"root={self.data['root']}"
        if self.data.get("video") is not None:
            return f"video={self.data['video']} labels_csv={self.data.get('labels_csv')}"
        if self.data.get("path") is not None:
            return (f"{self.data.get('format')} path={self.data['path']}"
                    f" labels_csv={self.data.get('labels_csv')}")  # fmt: skip
        return "the embedded phantom"

    def describe(self, normalisation: dict | None = None) -> str:
        """One line: the frames, then each preprocessing key with its origin."""
        by_origin: dict[str, list[str]] = {}
        for key in PREPROCESSING:
            by_origin.setdefault(self.origins.get(key, "?"), []).append(
                f"{key}={self.data.get(key)}"
            )
        parts = [f"{', '.join(items)} ({origin})" for origin, items in by_origin.items()]
        if normalisation:
            parts.append(
                f"normalisation mean={normalisation['mean']} std={normalisation['std']}"
                " (checkpoint)"
            )
        return f"evaluation data: {self.source()}; " + "; ".join(parts)

    def record(self) -> dict:
        """{key: {"value", "from"}} of the frames and preprocessing keys, for metrics.json."""
        keys = [*SOURCE, "require_labels", *PREPROCESSING]
        return {k: {"value": self.data.get(k), "from": self.origins.get(k)} for k in keys}


def resolve_data_settings(
    command: dict | None,
    stored: dict | None,
    training_default: Callable[[], dict],
    overridden: set[str],
) -> DataSettings:
    """The data config of an evaluation (see the module docstring).

    Args:
        command: this command's ``data`` node: a data group (it has ``_target_``) or the
            all-null placeholder of conf/evaluate.yaml, whose non-null keys were given.
        stored: the checkpoint run's data config, or None (baselines without a checkpoint).
        training_default: the training default's data config (called only when needed).
        overridden: the data keys set on the command line (:func:`overridden_data_keys`).
    """
    command = dict(command or {})
    group = "_target_" in command
    given = set(overridden) | (set() if group else {k for k, v in command.items() if v is not None})
    if stored is not None:
        base, origin = dict(stored), "checkpoint"
    elif group:
        base, origin = command, "data group"
    else:
        base, origin = training_default(), "training default"
    data, origins = dict(base), dict.fromkeys(base, origin)
    # Other frames than the base's: the whole source changes (a root must not be read
    # beside the checkpoint's video); the preprocessing stays.
    if origin != "data group" and (group or given & {"root", "video", "path", "phantom"}):
        # Without a group, how to read the frames (window, fps, …) stays the base's unless given
        # (the placeholder's null means "not given"), as the preprocessing does.
        for key in SOURCE if group else LOCATION:
            data[key] = command.get(key)
            origins[key] = "data group" if group else "not used: other frames given"
    for key in given:
        data[key] = command.get(key)
        origins[key] = COMMAND_LINE
    return DataSettings(data, origins)


def checkpoint_normalisation(run_config: dict | None) -> dict | None:
    """The input normalisation stored in a checkpoint's config, or None.

    {"mean", "std"} of a checkpoint model's input normalisation (its stored augment
    config), or None (no checkpoint, or a config without one).
    """
    augment = (run_config or {}).get("augment") or {}
    return {"mean": augment["mean"], "std": augment.get("std")} if "mean" in augment else None
