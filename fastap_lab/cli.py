"""Entry-point glue: user-fixable errors become one line on stderr and exit code 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from omegaconf.errors import OmegaConfBaseException

from fastap_lab.errors import FastapLabError

EXIT_USER_ERROR = 2


def find_user_error(exc: BaseException) -> BaseException | None:
    """The FastapLabError (or config error) behind ``exc``, following Hydra's wrapping."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, FastapLabError | OmegaConfBaseException):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FastapLabError) else f"{type(exc).__name__}: {text}"


def run_task(task: Callable[..., Any], *args: Any) -> Any:
    """Run ``task(*args)``; print a user error on one line (no traceback) and exit 2.

    ``HYDRA_FULL_ERROR=1`` re-raises instead, showing the traceback. Programming errors are
    never swallowed: they propagate with their traceback.
    """
    try:
        return task(*args)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
