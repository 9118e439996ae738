"""Entry-point glue: user-fixable errors become one line on stderr and exit code 2.

Also the one home of where a Hydra command writes when given ``out=DIR``
(:func:`output_dir`) and of how a command says a library's summary (:func:`log_lines`).

In a Hydra multirun (``-m``) a failing job does not end the sweep: its error line goes to the
log and to ``<job dir>/error.txt`` (with the traceback for programming errors), and the job
returns None (Optuna marks the trial failed), so the other jobs still run and the sweep summary records the failure.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from fastap_lab import io
from fastap_lab.errors import FastapLabError
from fastap_lab.runs import ERROR_FILE

EXIT_USER_ERROR = 2
# File-system refusals the user fixes (permissions, read-only mounts, a full disk), not bugs.
FILE_SYSTEM_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
log = logging.getLogger(__name__)


def find_user_error(exc: BaseException) -> BaseException | None:
    """The user error behind ``exc``, unwrapped from Hydra's and OmegaConf's errors.

    The FastapLabError (or config / file-system error) behind ``exc``, following Hydra's
    and OmegaConf's wrapping; our own error wins over the wrapper that carries it (a resolver's
    ConfigError inside OmegaConf's InterpolationResolutionError).
    """
    seen: set[int] = set()
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, FastapLabError | OmegaConfBaseException) or (
            isinstance(current, OSError) and current.errno in FILE_SYSTEM_ERRNOS
        ):
            found.append(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    ours = [error for error in found if isinstance(error, FastapLabError)]
    return (ours or found or [None])[0]


def one_line(exc: BaseException) -> str:
    """``exc`` on one line: its message (type-prefixed unless ours), or a file-system error's fix."""
    if isinstance(exc, OSError) and exc.errno in FILE_SYSTEM_ERRNOS:
        return (
            f"{exc.filename}: {exc.strerror} (cannot write or read there); make the folder"
            " writable / free disk space, or write elsewhere (run from another folder,"
            " hydra.run.dir=…, FASTAP_LAB_CACHE=…)"
        )
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FastapLabError) else f"{type(exc).__name__}: {text}"


def run_task(task: Callable[..., Any], *args: Any) -> Any:
    """Run ``task(*args)``; print a user error on one line (no traceback) and exit 2.

    ``HYDRA_FULL_ERROR=1`` re-raises instead, showing the traceback. Programming errors are
    never swallowed: they propagate with their traceback. In a multirun job every error is
    recorded instead (:func:`record_job_failure`) and the job returns None.
    """
    try:
        return task(*args)
    except Exception as exc:
        job_dir = multirun_job_dir()
        if job_dir is not None:
            return record_job_failure(exc, job_dir)
        user_error = find_user_error(exc)
        if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None


def multirun_job_dir() -> Path | None:
    """The running job's output folder when Hydra runs a multirun, else None."""
    if "hydra" not in sys.modules:  # an entry point without Hydra (search) is never a multirun
        return None
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def record_job_failure(exc: BaseException, job_dir: Path) -> None:
    """Log the one-line error, write ``<job dir>/error.txt``, return None (the sweep goes on).

    First line of error.txt: the user error's message, or the last line of the traceback
    (``Type: message``) for a programming error, whose full traceback follows.
    """
    user_error = find_user_error(exc)
    line = one_line(user_error or exc)
    details = "" if user_error else "\n" + "".join(traceback.format_exception(exc))
    io.write_text(job_dir / ERROR_FILE, f"{line}\n{details}")
    print(f"error: {line}", file=sys.stderr)
    log.error("job failed (%s): %s", job_dir / ERROR_FILE, line)
    return None


def output_dir(cfg: DictConfig, default: Path | None = None) -> Path:
    """The folder a command writes into, created now and never an earlier one.

    ``out`` (``out-2``, … when it exists); else ``default`` (``-2``, … when taken) when given,
    e.g. a run's ``gate/``; else Hydra's new run folder (``paths.output_dir``).
    """
    from fastap_lab.evaluation.report import claim_output_dir  # torch: not for the report

    if cfg.get("out"):
        return claim_output_dir(Path(cfg.out).expanduser())
    if default is not None:
        return claim_output_dir(default)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def log_lines(logger: logging.Logger, lines: list[tuple[int, str]]) -> None:
    """Log a library's summary, ``(level, line)`` each, on the command's ``logger``."""
    for level, line in lines:
        logger.log(level, "%s", line)
