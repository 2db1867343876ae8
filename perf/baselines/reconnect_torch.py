#!/usr/bin/env python3
"""PyTorch baseline for the reconnection step, on the GPU, same shapes as `laperm bench reconnect`.

For every synchronised tensor (rows x length, one LaPerm row per output unit):
  (a) the authors' way: rank = argsort(argsort(w)); w = gather(sorted0, rank)
  (b) argsort + scatter_: order = argsort(w); w.scatter_(1, order, sorted0)
Both with torch.sort(stable=True). PyTorch orders -0.0 == +0.0 and NaN apart from the
project's total order, so the timed inputs hold neither (random normals, ties only by chance);
a check on those inputs compares (b) with a NumPy implementation of the project's order.

Timed with CUDA events, warmed up, inputs rotated across copies so the working set exceeds L2;
median over samples. One line per method and shape set, then JSON (--json FILE, else stdout),
rewritten after every shape set so a run cut short keeps what it measured. Needs only torch
(NumPy, when present, adds the check against the project's order); runs offline. Without a
CUDA device it prints "reconnect_torch: not available (...)" and exits 0.
"""
import argparse
import json
import os
import statistics
import sys

import torch

try:
    import numpy as np
except ImportError:  # recent PyTorch wheels do not install NumPy: the timing needs none
    np = None


def load_shapes(spec, shapes_file):
    if ":" in spec:
        out = []
        for i, part in enumerate(spec.split(",")):
            rows, length = part.split(":")
            out.append((f"t{i}", int(rows), int(length)))
        return out
    with open(shapes_file) as f:
        sets = json.load(f)
    if spec not in sets:
        sys.exit(f"{shapes_file}: no shape set named '{spec}' (have {', '.join(sets)})")
    return [(name, rows, length) for name, rows, length in sets[spec]]


def reconnect_gather(w, s0):
    rank = torch.argsort(torch.argsort(w, dim=1, stable=True), dim=1, stable=True)
    w.copy_(torch.gather(s0, 1, rank))


def reconnect_scatter(w, s0):
    order = torch.argsort(w, dim=1, stable=True)
    w.scatter_(1, order, s0)


def reference_numpy(w, s0):
    """The project's definition (Reconnection.SyncRow) on float32 bit patterns."""
    bits = w.view(np.uint32)
    keys = np.where(bits & 0x80000000, ~bits, bits | 0x80000000).astype(np.uint64)
    cols = np.arange(w.shape[1], dtype=np.uint64)
    composite = (keys << np.uint64(32)) | cols[None, :]
    order = np.argsort(composite, axis=1, kind="stable")
    out = np.empty_like(w)
    np.put_along_axis(out, order, s0, axis=1)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="resnet50-imagenet;conv7;resnet50c;conv13",
                    help="shape set names or ROWS:LENGTH[,ROWS:LENGTH...], several separated by ';'")
    ap.add_argument("--shapes-file", default=os.path.join(here, "..", "reconnect", "shapes.json"))
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print(f"reconnect_torch: not available (torch {torch.__version__} sees no CUDA device)")
        return 0
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    # DtoD copy bandwidth in the same run (bytes read + written).
    a = torch.empty(128 << 20, dtype=torch.float32, device=dev).fill_(1.0)
    b = torch.empty_like(a)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(12):
        e0.record(); b.copy_(a); e1.record(); e1.synchronize()
        if i >= 2:
            times.append(e0.elapsed_time(e1))
    copy_gbs = 2 * a.numel() * 4 / (statistics.median(times) * 1e-3) / 1e9
    del a, b
    print(f"device {props.name}, torch {torch.__version__}, DtoD copy {copy_gbs:.0f} GB/s (read+write)")

    results = []
    gen = torch.Generator(device=dev).manual_seed(1234)
    for spec in args.shapes.split(";"):
        shapes = load_shapes(spec, args.shapes_file)
        elements = sum(r * l for _, r, l in shapes)
        copies = max(2, min(256, (256 << 20) // (8 * elements) + 1))
        sets = []
        for _ in range(copies):
            ws, ss = [], []
            for _, rows, length in shapes:
                ws.append(torch.randn(rows, length, device=dev, generator=gen))
                ss.append(torch.sort(torch.randn(rows, length, device=dev, generator=gen), dim=1).values)
            sets.append((ws, ss))

        # Correctness of (b) against the project's definition on the first copy (no -0/NaN here);
        # -1 when NumPy is missing and nothing was checked.
        mismatches = 0 if np is not None else -1
        for w, s0 in zip(*sets[0]) if np is not None else []:
            expect = reference_numpy(w.cpu().numpy(), s0.cpu().numpy())
            got = w.clone(); reconnect_scatter(got, s0)
            mismatches += int((got.cpu().numpy().view(np.uint32) != expect.view(np.uint32)).sum())
            got = w.clone(); reconnect_gather(got, s0)
            mismatches += int((got.cpu().numpy().view(np.uint32) != expect.view(np.uint32)).sum())

        for method, fn in (("argsort-argsort-gather", reconnect_gather), ("argsort-scatter_", reconnect_scatter)):
            for ws, ss in sets:  # warm-up pass over every copy
                for w, s0 in zip(ws, ss):
                    fn(w, s0)
            torch.cuda.synchronize()
            times = []
            for _ in range(args.samples):
                e0.record()
                for ws, ss in sets:
                    for w, s0 in zip(ws, ss):
                        fn(w, s0)
                e1.record(); e1.synchronize()
                times.append(e0.elapsed_time(e1) / copies)
            med_s = float(statistics.median(times)) * 1e-3
            gbs = 12 * elements / med_s / 1e9
            print(f"torch {spec:<18} {method:<24} elements {elements:>10}  median {med_s * 1e6:9.1f} us  "
                  f"{elements / med_s / 1e9:7.3f} Gelem/s  {gbs:7.1f} GB/s(12B/elem)  {100 * gbs / copy_gbs:5.1f}% of copy  "
                  f"mismatches {mismatches}", flush=True)
            results.append({"shapes": spec, "method": method, "elements": elements, "tensors": len(shapes),
                            "median_us": med_s * 1e6, "gbs": gbs, "copy_gbs": copy_gbs, "mismatches": mismatches,
                            "device": props.name, "torch": torch.__version__})
        del sets
        torch.cuda.empty_cache()
        if args.json:
            write_json(args.json, results)   # after every shape set: a run cut short keeps them

    if not args.json:
        print(json.dumps(results, indent=1))
    return 0


def write_json(path, results):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
