#!/usr/bin/env python3
"""PyTorch CPU training throughput of f2, lenet300 and conv7 at batch 128 (Adam),
with and without LaPerm synchronisation, at 1 and 2 threads.

The reference our CPU trainer is compared against (`laperm bench train`).
Method and the amortised sync formula: see train_torch_common.py.

    python3 perf/baselines/train_torch_cpu.py [--models f2,lenet300,conv7]
        [--threads 1,2] [--json train_torch_cpu.json]
"""

from __future__ import annotations

import argparse
import sys

import torch

import train_torch_common as common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(common.MODELS))
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batch", type=int, default=common.BATCH)
    parser.add_argument("--k", type=int, default=None,
                        help="sync period; default the published k of each model")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--window-seconds", type=float, default=2.0)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default="train_torch_cpu.json", help="output JSON file")
    args = parser.parse_args()

    torch.set_num_interop_threads(1)
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for name in args.models.split(","):
            k = args.k or common.DEFAULT_K[name]
            for result in common.measure(name, torch.device("cpu"), threads, args.batch, k,
                                         args.warmup_seconds, args.window_seconds,
                                         args.windows, args.seed, synchronize=lambda: None):
                print(common.describe(result), flush=True)
                results.append(result)
    common.write_json(args.json, common.results_payload(results, {"script": "train_torch_cpu.py"}))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
