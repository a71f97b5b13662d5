#!/usr/bin/env python3
"""hnswlib on the exact data of `benches/hnsw.rs`, for a like-for-like comparison.

    MMDB_BENCH_DUMP=/tmp/hnswdata cargo bench --features __internals --bench hnsw   # writes base.f32, queries.f32, gt.u32, meta.json
    pip install hnswlib numpy
    python3 benches/hnswlib_peer.py /tmp/hnswdata [--m 16] [--efc 200] [--efs 16,32,64,128,256] [--repeat 1] [--index FILE]

Prints build wall/CPU seconds and, per ef, recall@10 and QPS on one thread and on all threads
(plus queries per CPU-second), in the same shape as the Rust bench. Cosine data (unit vectors):
hnswlib's 'ip' space, which is what mmdb searches with (dot product).
"""

import argparse
import json
import os
import struct
import tempfile
import time

import hnswlib
import numpy as np


def timed(f):
    w, c = time.perf_counter(), time.process_time()
    r = f()
    return r, time.perf_counter() - w, time.process_time() - c


def memory_mib():
    """(VmRSS, VmHWM) of this process in MiB, from /proc (Linux)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def reset_peak():
    """Starts VmHWM again from the current RSS (Linux: /proc/self/clear_refs, value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def recall(labels, gt):
    k = gt.shape[1]
    return sum(len(set(a[:k]) & set(b)) for a, b in zip(labels, gt)) / (gt.shape[0] * k)


def mean_degree0(index, n):
    """Mean layer-0 out-degree, read back from hnswlib's saved index (its layout, hnswalg.h
    saveIndex: a 96-byte header, then per element a u32 count (low 16 bits) and maxM0 ids, the
    vector and the label)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "index.bin")
        index.save_index(path)
        raw = open(path, "rb").read()
    size_per_element = struct.unpack_from("<Q", raw, 24)[0]
    level0 = np.frombuffer(raw, dtype="<u4", count=n * size_per_element // 4, offset=96)
    counts = level0.reshape(n, size_per_element // 4)[:, 0] & 0xFFFF
    return float(counts.mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="16,32,64,128,256")
    ap.add_argument("--repeat", type=int, default=1, help="single-thread passes per ef; the median is quoted")
    ap.add_argument("--index", help="cache file for the built index: loaded when it exists, else written")
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.dir, "meta.json")))
    n, nq, dim, k = meta["n"], meta["queries"], meta["dim"], meta["k"]
    base = np.fromfile(os.path.join(a.dir, "base.f32"), dtype="<f4").reshape(n, dim)
    queries = np.fromfile(os.path.join(a.dir, "queries.f32"), dtype="<f4").reshape(nq, dim)
    gt = np.fromfile(os.path.join(a.dir, "gt.u32"), dtype="<u4").reshape(nq, k)
    threads = os.cpu_count()
    print(f"hnswlib peer: n {n}, dim {dim}, queries {nq}, M {a.m}, ef_construction {a.efc}, threads {threads}")

    index = hnswlib.Index(space="ip", dim=dim)

    def build():
        index.init_index(max_elements=n, ef_construction=a.efc, M=a.m, random_seed=100)
        index.add_items(base, np.arange(n), num_threads=threads)

    if a.index and os.path.exists(a.index):
        _, wall, cpu = timed(lambda: index.load_index(a.index, max_elements=n))
        print(f"hnswlib index loaded from {a.index} (build times below are the load's)")
    else:
        reset_peak()
        before, _ = memory_mib()
        _, wall, cpu = timed(build)
        _, peak = memory_mib()
        print(f"hnswlib build memory: RSS before {before:.0f} MiB, peak during {peak:.0f} MiB, +{peak - before:.0f} MiB")
        if a.index:
            index.save_index(a.index)
    print(f"hnswlib build: wall {wall:.1f} s, CPU {cpu:.1f} s, mean layer-0 degree {mean_degree0(index, n):.1f}")
    for ef in [int(x) for x in a.efs.split(",")]:
        index.set_ef(ef)
        index.set_num_threads(1)
        walls = []
        for _ in range(max(a.repeat, 1)):
            (labels, _), w, _ = timed(lambda: index.knn_query(queries, k=k))
            walls.append(w)
        w1 = sorted(walls)[len(walls) // 2]
        index.set_num_threads(threads)
        _, wn, cn = timed(lambda: index.knn_query(queries, k=k))
        print(
            f"{'hnswlib ef ' + str(ef):<34} recall@10 {recall(labels, gt):.4f}  QPS 1 thread {nq / w1:>8.0f}"
            f"  QPS {threads} threads {nq / wn:>8.0f}  per CPU-s {nq / max(cn, 1e-9):>8.0f}"
        )


if __name__ == "__main__":
    main()
