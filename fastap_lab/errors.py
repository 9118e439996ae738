"""Errors a user can fix.

Entry points catch :class:`FastapLabError` and print its message on one line, without a
traceback (set ``HYDRA_FULL_ERROR=1`` to see it). A message names the file / field / value at
fault and says what to do, e.g.::

    labels.csv (/data/run1/labels.csv): column 'label' is missing (found: frame, time);
    add a 'label' column with integer labels, or use data.labels=none
"""


class FastapLabError(Exception):
    """Base class of user-fixable errors (bad input, bad config, bad checkpoint)."""


class DataError(FastapLabError):
    """A data folder, image, video or CSV file is missing or malformed."""


class ConfigError(FastapLabError):
    """A config value is out of range or inconsistent with the data."""


class CheckpointError(FastapLabError):
    """A checkpoint is missing, unreadable, or of the wrong stage / architecture."""


class TrainingDivergedError(FastapLabError):
    """The loss became NaN or infinite."""
