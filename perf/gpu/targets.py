#!/usr/bin/env python3
"""The open issues' GPU targets, read from one check run's parts (perf/gpu/check.sh).

    python3 perf/gpu/targets.py PARTS_DIR      prints a markdown section

PARTS_DIR holds one folder per part (bench-train-cuda, torch-train-gpu, conv7-target,
bench-reconnect-cuda, torch-reconnect), as check.sh leaves them. A number that a part did
not produce is shown as "-" and its target as "not measured": nothing is guessed.
"""

from __future__ import annotations

import json
import os
import re
import sys

# (model, batch, goal): ours (captured steps) over PyTorch eager, both without the sync.
TRAINING_TARGETS = [("f2", 128, 3.0), ("lenet300", 128, 3.0), ("conv7", 50, 3.0), ("resnet50c", 128, 1.3)]
RECONNECT_SHAPES = "resnet50-imagenet"
RECONNECT_SPEEDUP_GOAL = 10.0   # over PyTorch argsort + scatter_
RECONNECT_FLOOR_GOAL = 3.0      # at most this many times the 12 B/element floor


def load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ours_images_per_second(parts: str, model: str, batch: int, suffix: str = "") -> float | None:
    """The median from `laperm bench train` output: '... cuda graphs:  12345 images/s (median ...'."""
    path = os.path.join(parts, "bench-train-cuda", f"{model}-b{batch}{suffix}.txt")
    try:
        text = open(path).read()
    except OSError:
        return None
    match = re.search(r"bench train\s+\S+\s+batch\s+\d+.*?:\s*([0-9.]+)\s+images/s", text)
    return float(match.group(1)) if match else None


def torch_images_per_second(parts: str, model: str, batch: int, sync: bool) -> float | None:
    raw = load_json(os.path.join(parts, "torch-train-gpu", "raw.json")) or {}
    for payload in raw.values():
        for r in (payload or {}).get("results", []):
            if r.get("model") == model and r.get("batch") == batch and bool(r.get("sync")) == sync:
                return float(r["images_per_second"])
    return None


def best_synchronised_eval(path: str) -> float | None:
    """The best test accuracy of a synchronised model in a run's metrics.jsonl, if any."""
    try:
        with open(path) as f:
            evals = [json.loads(line) for line in f if '"event":"eval"' in line]
    except (OSError, ValueError):
        return None
    accuracies = [e["test_accuracy"] for e in evals if e.get("candidate", e.get("synchronized")) and e.get("test_accuracy") is not None]
    return max(accuracies) if accuracies else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}x"


def verdict(ratio: float | None, goal: float, higher_is_better: bool = True) -> str:
    if ratio is None:
        return "not measured"
    met = ratio >= goal if higher_is_better else ratio <= goal
    return "**met**" if met else "**not met**"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    parts = sys.argv[1]
    out = ["| target | ours | PyTorch | ratio | goal | |", "|---|---|---|---|---|---|"]
    for model, batch, goal in TRAINING_TARGETS:
        theirs = torch_images_per_second(parts, model, batch, sync=False)
        # The default (our kernels) always has a row; --cudnn all only where it was measured.
        for suffix, label in (("", "captured steps vs eager"), ("-cudnn", "captured steps with --cudnn all vs eager")):
            ours = ours_images_per_second(parts, model, batch, suffix)
            if suffix and ours is None:
                continue
            ratio = ours / theirs if ours and theirs else None
            out.append(f"| {model} batch {batch}: training images/s ({label}) | {fmt(ours)} | {fmt(theirs)} | "
                       f"{fmt_ratio(ratio, 2)} | >= {goal}x | {verdict(ratio, goal)} |")

    rows = load_json(os.path.join(parts, "bench-reconnect-cuda", "raw.json")) or []
    ours_rows = [r for r in rows if r.get("shapes") == RECONNECT_SHAPES and r.get("median_microseconds")]
    default = next((r for r in ours_rows if r.get("variant") == 0), None)
    torch_raw = load_json(os.path.join(parts, "torch-reconnect", "raw.json")) or {}
    scatter = next((r for payload in torch_raw.values() for r in (payload or [])
                    if r.get("shapes") == RECONNECT_SHAPES and r.get("method") == "argsort-scatter_"), None)
    ours_us = default["median_microseconds"] if default else None
    theirs_us = scatter["median_us"] if scatter else None
    speedup = theirs_us / ours_us if ours_us and theirs_us else None
    out.append(f"| {RECONNECT_SHAPES} reconnection, µs (default variant vs argsort + scatter_) | {fmt(ours_us, 1)} | "
               f"{fmt(theirs_us, 1)} | {fmt_ratio(speedup, 1)} | >= {RECONNECT_SPEEDUP_GOAL:g}x | {verdict(speedup, RECONNECT_SPEEDUP_GOAL)} |")
    floor_ratio = None
    if default and default.get("copy_gb_per_second"):
        floor_us = 12 * default["elements"] / (default["copy_gb_per_second"] * 1e9) * 1e6
        floor_ratio = ours_us / floor_us
    out.append(f"| {RECONNECT_SHAPES} reconnection over the 12 B/element floor at the measured copy bandwidth | "
               f"{fmt_ratio(floor_ratio, 2)} | | | <= {RECONNECT_FLOOR_GOAL:g}x | {verdict(floor_ratio, RECONNECT_FLOOR_GOAL, higher_is_better=False)} |")
    # The default must be the fastest correct variant: name the fastest one measured, so a run
    # that finds a faster variant than the dispatcher says so in its summary.
    correct = [r for r in ours_rows if r.get("mismatches", 0) == 0]
    fastest = min(correct, key=lambda r: r["median_microseconds"]) if correct else None
    if fastest and fastest.get("variant") != 0:
        fastest_floor = (fastest["median_microseconds"] / (12 * fastest["elements"] / (fastest["copy_gb_per_second"] * 1e9) * 1e6)
                         if fastest.get("copy_gb_per_second") else None)
        out.append(f"| {RECONNECT_SHAPES} reconnection, fastest variant ({fastest['variant']}) over the floor; "
                   f"a candidate for the default | {fmt_ratio(fastest_floor, 2)} | | | <= {RECONNECT_FLOOR_GOAL:g}x | "
                   f"{verdict(fastest_floor, RECONNECT_FLOOR_GOAL, higher_is_better=False)} ({fmt(fastest['median_microseconds'], 1)} µs) |")

    summary = load_json(os.path.join(parts, "conv7-target", "raw.json")) or {}
    if summary.get("steps_to_target") is not None:
        reached = (f"step {summary['steps_to_target']} (epoch {summary['epochs_to_target']}), "
                   f"{summary['train_seconds_to_target']:.1f} s training, {summary['wall_seconds_to_target']:.1f} s wall")
    elif summary:
        reached = f"not reached in this run (best {summary.get('best_test_accuracy', 0) * 100:.2f} %)"
    elif (best := best_synchronised_eval(os.path.join(parts, "conv7-target", "run", "metrics.jsonl"))) is not None:
        # Stopped by the part's time limit: no summary.json, but metrics.jsonl has every evaluation.
        reached = f"not reached in this run (stopped by the time limit; best {best * 100:.2f} %)"
    else:
        reached = "not measured"
    out.append(f"| conv7-mnist time to 99.5 % test accuracy (synchronised) | {reached} | | | reported | |")

    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
