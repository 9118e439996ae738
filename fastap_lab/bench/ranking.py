"""Retrieval-metric speed and exactness: ours vs torchmetrics vs scikit-learn vs a bare sort.

``python -m fastap_lab.bench ranking --sizes 1000 4000 --classes 2 3 10 50 --big 50000``

Workloads (``--classes``, default 2 then 50), all-vs-all cosine retrieval, self-match excluded:

* 2 classes, the users' case: a breathing sequence. A 1-D latent (chest position) follows
  irregular breaths with breath-holds; frames embed it smoothly in D dims plus noise, and
  the label is "latent within ``HOLD_TOLERANCE`` of the hold position": 30-50 % of the
  gallery is relevant to every query, and float32 cosines tie about once per row.
* C > 2 classes: random clustered embeddings around C centres (50: ~2 % relevant, sparse).

Timed side by side on the same scores, each row printed with the load average:

* ours: ``evaluate_all_vs_all`` (chunked, exact, tie-aware AP).
* torchmetrics ``RetrievalMAP`` + ``RetrievalPrecision(top_k=10)`` on (cos + 1) / 2 + 1e-6, so
  every score is positive and torchmetrics (which drops scores <= 0) is correct; queries
  without a relevant item are left out of its mean (``empty_target_action="skip"``), as ours
  does. Not run when the quadratic extrapolation of the previous size predicts more than
  ``--torchmetrics-limit`` seconds for one run.
* sklearn: a per-query ``average_precision_score`` loop (N <= ``--sklearn-max``), also the
  exactness reference: max |AP_ours - AP_sklearn| is printed.
* floor: a row-chunked ``torch.sort`` (values + indices) of the N x N score matrix, the work
  no exact sort-based method avoids; and the same with the stable sort ours uses
  (``stable_descending_order``: packed int64 keys sorted by NumPy on the CPU), so
  "ours / own sort" is what the metrics cost beyond their sort.

Ours, torchmetrics and the floor are each timed as the best of ``--repeats`` runs (the run least
disturbed by other load; torchmetrics' first call is several times slower than later ones), so
their ratio compares like with like; sklearn runs once. torchmetrics runs in a fresh process
whose peak RSS is printed; a size whose quadratic extrapolation exceeds ``--memory-limit-gb``
is skipped.

``--big N`` runs ours all-vs-all on the first workload in a fresh subprocess and reports its
peak RSS and time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.retrieval import RetrievalMAP, RetrievalPrecision

from fastap_lab.bench._workloads import workload
from fastap_lab.retrieval.metrics import summarize
from fastap_lab.retrieval.ordering import stable_descending_order
from fastap_lab.retrieval.search import evaluate_all_vs_all


def timed(function, *args, repeats: int = 1, **kwargs):
    """Run ``function`` ``repeats`` times; its result and the best wall time.

    (result, best wall seconds over ``repeats`` runs): the best run is the least disturbed
    by other load on a shared machine.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def run_ours(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-query AP by our all-vs-all evaluation."""
    return evaluate_all_vs_all(embeddings, labels, ks=(10,))["ap"]


def off_diagonal_scores(embeddings: torch.Tensor, labels: torch.Tensor):
    """Positive-shifted cosine scores, targets and query ids, [N * (N - 1)] each."""
    unit = F.normalize(embeddings, dim=1)
    num_items = len(labels)
    keep = ~torch.eye(num_items, dtype=torch.bool)
    scores = (unit @ unit.T + 1) / 2 + 1e-6
    targets = labels[:, None] == labels[None, :]
    query_ids = torch.arange(num_items)[:, None].expand(num_items, num_items)
    return scores[keep], targets[keep], query_ids[keep]


def run_torchmetrics(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """The mAP of torchmetrics' RetrievalMAP (and its precision@10) on the same scores."""
    scores, targets, query_ids = off_diagonal_scores(embeddings, labels)
    average_precision = RetrievalMAP(empty_target_action="skip")(scores, targets, indexes=query_ids)
    RetrievalPrecision(top_k=10, empty_target_action="skip")(scores, targets, indexes=query_ids)
    return float(average_precision)


def run_sklearn(embeddings: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per-query AP by scikit-learn's ``average_precision_score``."""
    from sklearn.metrics import average_precision_score

    unit = F.normalize(embeddings.double(), dim=1)
    scores, targets = (unit @ unit.T).numpy(), (labels[:, None] == labels[None, :]).numpy()
    aps = np.empty(len(labels))
    for query in range(len(labels)):
        others = np.arange(len(labels)) != query
        has_relevant = targets[query, others].any()  # else undefined: NaN, as in ours
        aps[query] = (
            average_precision_score(targets[query, others], scores[query, others])
            if has_relevant
            else np.nan
        )
    return aps


def run_sort_floor(embeddings: torch.Tensor, sort=torch.sort, rows_per_chunk: int = 1024) -> None:
    """Only the similarity products and row sorts: the floor any ranking evaluation pays."""
    unit = F.normalize(embeddings, dim=1)
    for start in range(0, len(unit), rows_per_chunk):
        sort(unit[start : start + rows_per_chunk] @ unit.T)


def torch_sort(scores: torch.Tensor):
    """Torch's descending row sort (the sort floor's reference)."""
    return torch.sort(scores, dim=1, descending=True)


def benchmark_size(classes: int, num_items: int, args, torchmetrics_runs: dict) -> None:
    """Time and compare every implementation at one size; prints a table row."""
    embeddings, labels = workload(classes, num_items, args.dim)
    ours_ap, ours_s = timed(run_ours, embeddings, labels, repeats=args.repeats)
    _, floor_s = timed(run_sort_floor, embeddings, torch_sort, repeats=args.repeats)
    _, packed_s = timed(run_sort_floor, embeddings, stable_descending_order, repeats=args.repeats)
    ours_map = np.nanmean(ours_ap.numpy())
    relevant_share = (labels[:, None] == labels[None, :]).float().mean().item()
    print(
        f"classes={classes:<3d} N={num_items:6d}  ours {ours_s * 1e3:9.0f} ms   mAP {ours_map:.4f}"
        f"   {100 * relevant_share:.0f} % relevant   load {_load()}"
    )
    print(
        f"          sort floor: torch.sort {floor_s * 1e3:.0f} ms, ours {packed_s * 1e3:.0f} ms"
        f"   ours / torch.sort floor = {ours_s / floor_s:.2f}, ours / own sort = "
        f"{ours_s / packed_s:.2f}"
    )
    seconds, gib = _predicted(num_items, torchmetrics_runs)
    if seconds <= args.torchmetrics_limit and gib <= args.memory_limit_gb:
        run = run_child("--child-torchmetrics", classes, num_items, args)
        torchmetrics_runs[num_items] = run
        print(
            f"          torchmetrics {run['seconds'] * 1e3:9.0f} ms   torchmetrics / ours = "
            f"{run['seconds'] / ours_s:.1f}x   |mAP diff| {abs(run['mAP'] - ours_map):.2e}   "
            f"peak RSS {run['peak_mib']:.0f} MiB"
        )
    else:
        print(
            f"          torchmetrics skipped: predicted {seconds:.0f} s, {gib:.1f} GiB peak "
            f"(limits {args.torchmetrics_limit:.0f} s, {args.memory_limit_gb:.1f} GiB)"
        )
    if num_items <= args.sklearn_max:
        sk_ap, sk_s = timed(run_sklearn, embeddings, labels)
        # Same float64 scores on both sides, so the difference measures exactness alone.
        ours_ap64 = run_ours(embeddings.double(), labels).numpy()
        max_diff = np.nanmax(np.abs(sk_ap - ours_ap64))
        print(
            f"          sklearn {sk_s * 1e3:9.0f} ms   sklearn / ours = {sk_s / ours_s:.1f}x   "
            f"max |AP ours - sklearn| {max_diff:.2e}"
        )
    else:
        print("          sklearn skipped")


def _load() -> str:
    """The 1 / 5 / 15-minute load averages: on a shared machine, how busy the other cores were."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _predicted(num_items: int, runs: dict[int, dict]) -> tuple[float, float]:
    """Predicted seconds and peak GiB of a torchmetrics run at ``num_items``.

    Seconds and peak GiB of a torchmetrics run at ``num_items``, extrapolated quadratically
    from the largest size measured (it keeps every (query, item) pair in memory).
    """
    if not runs:
        return 0.0, 0.0
    run = runs[max(runs)]
    growth = (num_items / max(runs)) ** 2
    pairs_mib = (run["peak_mib"] - run["start_mib"]) * growth
    return run["seconds"] * growth, (run["start_mib"] + pairs_mib) / 1024


def run_child_measurement(kind: str, classes: int, num_items: int, dim: int, repeats: int) -> dict:
    """In the child process: best-of-``repeats`` seconds, mAP and this process's peak RSS."""
    embeddings, labels = workload(classes, num_items, dim)
    start_mib = _peak_rss_mib()
    if kind == "torchmetrics":
        map_value, seconds = timed(run_torchmetrics, embeddings, labels, repeats=repeats)
    else:
        per_query, seconds = timed(evaluate_all_vs_all, embeddings, labels, repeats=repeats)
        map_value = summarize(per_query)["mAP"]
    peak_mib = _peak_rss_mib()
    return {"seconds": seconds, "mAP": map_value, "peak_mib": peak_mib, "start_mib": start_mib}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_child(flag: str, classes: int, num_items: int, args) -> dict:
    """A measurement in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, "-m", "fastap_lab.bench", "ranking", flag, str(num_items)]
    command += ["--classes", str(classes)]
    command += ["--dim", str(args.dim), "--threads", str(torch.get_num_threads())]
    command += ["--repeats", str(args.repeats if flag == "--child-torchmetrics" else 1)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def benchmark_big(num_items: int, args) -> None:
    """Time our evaluation alone at ``num_items`` in a child process; prints the result."""
    classes = args.classes[0]
    result = run_child("--child-big", classes, num_items, args)
    print(
        f"big classes={classes} N={num_items} x {args.dim}: ours all-vs-all {result['seconds']:.1f} s, "
        f"peak RSS {result['peak_mib']:.0f} MiB, mAP {result['mAP']:.4f}"
    )


def _default_memory_limit_gb() -> float:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return round(0.6 * physical, 1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = argparse.ArgumentParser(prog="python -m fastap_lab.bench ranking")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[2, 50],
        help="workloads: 2 = breathing sequence with binary hold labels, C > 2 = C clusters",
    )
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--big", type=int, default=0, help="N for the subprocess memory run")
    parser.add_argument("--sklearn-max", type=int, default=4000)
    parser.add_argument("--torchmetrics-limit", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=_default_memory_limit_gb(),
        help="skip torchmetrics above this predicted peak (default: 60%% of physical memory)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="best-of for ours, torchmetrics, floor"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--child-big", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-torchmetrics", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.classes) < 2:
        parser.error(f"--classes {min(args.classes)}: each workload needs at least 2 classes")
    return args


def main(argv: list[str]) -> int:
    """Run the ranking benchmark (or one measurement, as a child); returns the exit code."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for kind, num_items in (("big", args.child_big), ("torchmetrics", args.child_torchmetrics)):
        if num_items:
            measurement = run_child_measurement(
                kind, args.classes[0], num_items, args.dim, args.repeats
            )
            print(json.dumps(measurement))
            return 0
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
        f"dim {args.dim}, best of {args.repeats}; load average {_load()}"
    )
    for classes in args.classes:
        torchmetrics_runs: dict[int, dict] = {}
        for num_items in args.sizes:
            benchmark_size(classes, num_items, args, torchmetrics_runs)
    if args.big:
        benchmark_big(args.big, args)
    return 0
