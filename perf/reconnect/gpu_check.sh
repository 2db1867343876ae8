#!/usr/bin/env bash
# GPU check for the reconnection kernels: builds the standalone harness with nvcc, verifies
# every variant on edge shapes, benchmarks the model shape sets, then runs the PyTorch
# baseline on the same card. Usage (repo root): perf/reconnect/gpu_check.sh OUTDIR
set -u
out=${1:-/tmp/reconnect-check}
mkdir -p "$out" /tmp/rcb
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader
nvcc --version | tail -1
inc=cuda/include
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo -Xptxas -v -I "$inc" perf/reconnect/reconnect_bench.cu -o /tmp/rcb/reconnect_bench > /tmp/rcb/build.log 2>&1 || { cat /tmp/rcb/build.log; exit 1; }
grep -E "Compiling entry|registers|spill" /tmp/rcb/build.log | sed 's/ptxas info *: //' | paste - - - | sed 's/\s\+/ /g'
# Every run must succeed (the bench exits non-zero on a mismatch): the exit code says whether all did.
rc=0
/tmp/rcb/reconnect_bench --shapes "1:1,7:5,33:31,20:33,100:64,50:100,40:128,30:129,50:1000,9:2049,10:4608,4:18000,3:30000" --variant all --samples 3 || rc=1
/tmp/rcb/reconnect_bench --shapes "100000:9;20000:33;20000:64;10000:128;5000:300;2000:777" --variant all --samples 5 || rc=1
/tmp/rcb/reconnect_bench --shapes "conv7;resnet50c;conv13;resnet50-imagenet" --variant ${VARIANTS:-all} --json "$out/harness.json" || rc=1
[ -n "${SKIP_TORCH:-}" ] || PYTHONUNBUFFERED=1 python3 perf/baselines/reconnect_torch.py --json "$out/torch.json" || rc=1
exit $rc
