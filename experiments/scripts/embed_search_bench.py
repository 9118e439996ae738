"""Embed and search figures (issue 16 / 17): embedding frames/s on this CPU, a checkpoint's
network beside raw pixels, and query latency on a synthetic 100,000-frame gallery, exact
(chunked matmul, ``search.index=exact``) vs FAISS (``IndexFlatIP``, ``search.index=faiss``).

    python experiments/scripts/embed_search_bench.py [--ckpt RUN] [--threads 2] [--frames 2048]
        [--gallery 100000] [--dims 512 128] [--repeats 5]

Without ``--ckpt``: the default SimSiam ResNet-18 (64 px, ``untrained``: the same network and
cost as a trained checkpoint). Prints one Markdown table per measurement with the load average.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from fastap_lab.evaluation.embed import embed_images, pixels_embedder
from fastap_lab.retrieval.faiss_search import flat_ip_index, topk_search_faiss
from fastap_lab.retrieval.topk import topk_search


def best_seconds(function, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def embedder_of(args, cache_dir: str):
    from fastap_lab.embedders import checkpoint_embedder, untrained_embedder

    if args.ckpt:
        return checkpoint_embedder(args.ckpt, torch.device("cpu")), f"checkpoint {args.ckpt}"
    data = {"channels": 1, "image_size": 64}
    return untrained_embedder(data, cache_dir, 0, torch.device("cpu")), "ResNet-18 SimSiam, 64 px"


def embed_rates(args) -> list[tuple[str, float]]:
    embedder, name = embedder_of(args, "/tmp")
    spec_size = embedder.preprocess.image_size if embedder.preprocess else 64
    frames = torch.randint(0, 256, (args.frames, 1, spec_size, spec_size), dtype=torch.uint8)
    dim = embed_images(embedder, frames[:2], 2).shape[1]
    seconds = best_seconds(lambda: embed_images(embedder, frames, 256), max(1, args.repeats // 2))
    pixels = pixels_embedder(frames[:256], 32, torch.device("cpu"))
    pixel_seconds = best_seconds(lambda: embed_images(pixels, frames, 256), args.repeats)
    return [(f"{name} (D={dim}, {spec_size} px)", args.frames / seconds),
            (f"raw pixels, 32 px (D={32 * 32})", args.frames / pixel_seconds)]  # fmt: skip


def query_latency(count: int, dim: int, repeats: int) -> list[tuple[str, int, float, float]]:
    """(backend, queries at once, ms per call, ms per query) on a unit [count, dim] gallery."""
    generator = torch.Generator().manual_seed(0)
    gallery = F.normalize(torch.randn(count, dim, generator=generator), dim=1)
    queries = F.normalize(torch.randn(10, dim, generator=generator), dim=1)
    started = time.perf_counter()
    index = flat_ip_index(gallery)
    build_ms = 1000 * (time.perf_counter() - started)
    rows = []
    for batch in (1, 10):
        q = queries[:batch]
        exact = best_seconds(lambda q=q: topk_search(q, gallery, 20, unit_gallery=True), repeats)
        faiss = best_seconds(lambda q=q: topk_search_faiss(q, gallery, 20, index=index), repeats)
        rows += [("exact (torch matmul + top-k)", batch, 1000 * exact, 1000 * exact / batch),
                 ("FAISS IndexFlatIP", batch, 1000 * faiss, 1000 * faiss / batch)]  # fmt: skip
    print(f"FAISS index build, {count} x {dim}: {build_ms:.0f} ms")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    print("\n| embedder | frames / s |\n| --- | --- |")
    for name, rate in embed_rates(args):
        print(f"| {name} | {rate:,.0f} |")
    for dim in args.dims:
        rows = query_latency(args.gallery, dim, args.repeats)
        print(f"\n{args.gallery:,} x {dim} float32 gallery, k = 20, best of {args.repeats}:")
        print(
            "| backend | queries at once | ms per call | ms per query |\n| --- | --- | --- | --- |"
        )
        for backend, batch, call_ms, query_ms in rows:
            print(f"| {backend} | {batch} | {call_ms:.1f} | {query_ms:.2f} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    np.random.seed(0)
    main()
