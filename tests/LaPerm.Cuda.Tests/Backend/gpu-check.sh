#!/usr/bin/env bash
# GPU check of the CUDA backend: equivalence with the CPU backend on a real GPU, then training-step
# throughput on the GPU and on the CPU of the same machine. Needs no .NET SDK on the GPU machine:
# BUNDLE is a folder holding dotnet/ (a .NET 10 runtime), tests/ (the build output of
# tests/LaPerm.Cuda.Tests) and cli/ (a Release build of src/LaPerm.Cli).
# Usage: tests/LaPerm.Cuda.Tests/Backend/gpu-check.sh BUNDLE OUTDIR
set -u
bundle=$(cd "$1" && pwd); out=${2:-/tmp/cuda-backend-check}; mkdir -p "$out"
export DOTNET_ROOT=$bundle/dotnet PATH=$bundle/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
cublas=$(find /usr/local/cuda* /opt /usr/lib -name 'libcublas.so.1[23]' 2>/dev/null | head -1)
[ -n "$cublas" ] && export LD_LIBRARY_PATH=$(dirname "$cublas"):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== laperm info"; (cd "$bundle/cli" && dotnet laperm.dll info)
echo "== GPU tests: every backend op vs CpuBackend (our kernels and cuDNN), f2/lenet300/tiny conv training vs cpu,"
echo "   a captured training step replayed, plus the runtime's and reconnection's GPU tests"
(cd "$bundle/tests" && timeout 300 dotnet LaPerm.Cuda.Tests.dll -trait "Category=Gpu" -failSkips -showLiveOutput > "$out/gpu-tests.log" 2>&1
 echo "tests exit code $?")
grep -E "\[OUTPUT\]|\[FAIL\]|SKIP|Total:" "$out/gpu-tests.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300
grep -A6 "\[FAIL\]" "$out/gpu-tests.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -v "^\s*at " | head -40
echo "== training-step throughput (images/s, median of windows)"
cd "$bundle/cli"
for device in cuda cpu; do
  timeout 60 dotnet laperm.dll bench train --device $device --threads 16 --model f2 --batch 128 --windows 3
  timeout 60 dotnet laperm.dll bench train --device $device --threads 16 --model lenet300 --batch 128 --windows 3
  timeout 90 dotnet laperm.dll bench train --device $device --threads 16 --model conv7 --batch 50 --windows 3
done
timeout 60 dotnet laperm.dll bench sync --device cuda --model conv7
echo "== one epoch slice on the GPU"
timeout 90 dotnet laperm.dll train --device cuda --model f2 --limit-train 8192 --epochs 1 --k 16 --quiet --out "$out/f2-run"
