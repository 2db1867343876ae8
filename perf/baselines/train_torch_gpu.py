#!/usr/bin/env python3
"""PyTorch CUDA (eager) training throughput of the GPU targets (f2, lenet300, conv7 at
batch 128, conv7 at batch 50, resnet50c at batch 128; Adam), with and without LaPerm
synchronisation: the GPU counterpart of train_torch_cpu.py, run by perf/gpu/check.sh
on a GPU machine.

Needs PyTorch; exits 0 with a "not available" line (and a JSON saying so) when CUDA is absent.

    python3 perf/baselines/train_torch_gpu.py [--configs MODEL:BATCH,...] [--json train_torch_gpu.json]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

import train_torch_common as common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The targets' configurations first (a run cut short keeps those), conv7 at 128 last.
    parser.add_argument("--configs", default="f2:128,lenet300:128,conv7:50,resnet50c:128,conv7:128",
                        help="MODEL:BATCH[,MODEL:BATCH...]; models: " + ", ".join(common.KNOWN_MODELS))
    parser.add_argument("--k", type=int, default=None,
                        help="sync period; default the published k of each model")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--window-seconds", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--allow-tf32", action="store_true",
                        help="let cuBLAS/cuDNN use TF32 (default: strict FP32, like our trainer)")
    parser.add_argument("--json", default="train_torch_gpu.json", help="output JSON file")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print("train_torch_gpu: not available (torch.cuda.is_available() is False)")
        common.write_json(args.json, common.results_payload([], {
            "script": "train_torch_gpu.py", "status": "not available",
            "reason": "torch.cuda.is_available() is False"}))
        return 0

    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    results = []
    environment = {"script": "train_torch_gpu.py", "status": "ok",
                   "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                   "cudnn": torch.backends.cudnn.version(), "tf32": args.allow_tf32,
                   "tf32_effective": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
                   "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")}
    for config in args.configs.split(","):
        name, _, batch = config.partition(":")
        if name not in common.KNOWN_MODELS or not batch.isdigit():
            parser.error(f"--configs: '{config}' is not MODEL:BATCH with MODEL one of {', '.join(common.KNOWN_MODELS)}")
        k = args.k or common.DEFAULT_K[name]
        for result in common.measure(name, device, 1, int(batch), k, args.warmup_seconds,
                                     args.window_seconds, args.windows, args.seed,
                                     synchronize=torch.cuda.synchronize):
            print(common.describe(result), flush=True)
            results.append(result)
        # After every configuration: a run cut short by its time limit keeps what it measured.
        common.write_json(args.json, common.results_payload(results, environment))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
