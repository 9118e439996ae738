"""map_blocks: results in block order, torch single-threaded in workers and inline when busy."""

import torch

from fastap_lab import threads


def test_blocks_keep_their_order_and_workers_run_torch_on_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda: 2)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = threads.map_blocks(
            lambda block: (block, torch.get_num_threads()), list(range(7)), torch.device("cpu")
        )
        assert torch.get_num_threads() == 2  # the caller's setting is untouched
    finally:
        torch.set_num_threads(previous)
    assert [block for block, _ in results] == list(range(7))
    assert {threads_in_worker for _, threads_in_worker in results} == {1}


def test_busy_machine_runs_blocks_inline(monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = threads.map_blocks(
            lambda block: torch.get_num_threads(), [0, 1, 2], torch.device("cpu")
        )
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(previous)
    assert results == [1, 1, 1]  # on the calling thread, torch single-threaded meanwhile


def test_idle_cores_reads_the_runnable_count(monkeypatch, tmp_path):
    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    loadavg.write_text("3.10 2.00 1.50 3/612 12345\n")  # the caller + 2 others running
    assert threads.idle_cores(str(loadavg)) == 2
    loadavg.write_text("9.00 9.00 9.00 9/612 12345\n")
    assert threads.idle_cores(str(loadavg)) == 1
    loadavg.write_text("garbage\n")
    assert threads.idle_cores(str(loadavg)) == 4
    assert threads.idle_cores(str(tmp_path / "missing")) == 4
