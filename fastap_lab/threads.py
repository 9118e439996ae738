"""Blocks of work on the CPU's threads without torch's per-op thread barriers.

Used by the ranking metrics (``retrieval``) and the FastAP loss (``losses``); pure torch, no
Lightning or Hydra.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch


def map_blocks(function, blocks: list, device: torch.device) -> list:
    """``[function(b) for b in blocks]``, on worker threads on the CPU.

    On the CPU on ``torch.get_num_threads()`` worker threads, each running torch
    single-threaded (inside a worker, nested calls run inline).

    Why not torch's own intra-op threads: a block's work is dozens of memory-bound ops, and
    each OpenMP region ends in a barrier that waits for its slowest thread; on a shared
    machine a thread whose core is busy stalls every op (measured: FastAP on 2 threads 5-10x
    slower than on 1 at load 17 on 2 cores). Whole blocks per worker join once, and a worker
    that falls behind simply takes fewer blocks. When other processes already fill the
    cores (:func:`idle_cores`), the blocks run one after another on the calling thread,
    torch single-threaded there too: with more runnable threads than cores every hand-over
    between two threads (an OpenMP barrier, a pool's queue, the GIL) waits out a scheduler
    time slice, and one thread was measured 2-4x faster.
    """
    if device.type != "cpu":
        return [function(block) for block in blocks]
    if block_workers(len(blocks)) <= 1:
        with one_torch_thread():
            return [function(block) for block in blocks]
    # set_num_threads in a worker sets that thread's OpenMP team size only, not the caller's.
    workers = block_workers(len(blocks))
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(pool.map(function, blocks))


def block_workers(num_blocks: int) -> int:
    """Worker threads :func:`map_blocks` would use now for ``num_blocks`` CPU blocks (1: inline)."""
    return max(1, min(torch.get_num_threads(), num_blocks, idle_cores()))


@contextmanager
def one_torch_thread():
    """Torch on one intra-op thread in this thread for the duration, then as before."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def idle_cores(loadavg_path: str = "/proc/loadavg") -> int:
    """Cores not busy with other runnable threads right now, at least 1.

    Linux's /proc/loadavg gives the instantaneous number of runnable threads (4th field,
    "running/total", the caller's own thread included); elsewhere every core counts as idle.
    This process's OpenMP workers count too while they spin after a two-thread op, so right
    after one the blocks usually run inline; leaving them out was measured slower (the spinning
    thread then competes with the block workers; experiments/BENCHMARKS.md).
    """
    cores = os.cpu_count() or 1
    try:
        with open(loadavg_path) as loadavg:
            running = int(loadavg.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return cores
    return max(1, cores - (running - 1))
