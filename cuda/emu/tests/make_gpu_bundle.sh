#!/bin/sh
# Packs the GPU cross-check for a machine with a GPU but possibly without clang, cmake or a
# matching C++ runtime: the PTX as built here (clang on CPU machines: the PTX CI embeds), the
# cross-check binary (libstdc++ linked statically, glibc 2.34 or newer), and the generated
# emulator units so run.sh can recompile there from the repository sources if the binary
# cannot start.
#   sh cuda/emu/tests/make_gpu_bundle.sh [build dir, default build/native] [bundle dir, default build/gpucheck]
# `build.ps1 gpu-package` calls this into the GPU bundle's build/gpucheck; on the GPU machine
# perf/gpu/check.sh runs its run.sh (the part emu-crosscheck) and reports the result.
set -e
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=${1:-$ROOT/build/native}
OUT=${2:-$ROOT/build/gpucheck}
cmake -S "$ROOT" -B "$BUILD" >/dev/null
cmake --build "$BUILD" --parallel
rm -rf "$OUT"
mkdir -p "$OUT/ptx" "$OUT/src"
cp "$BUILD"/ptx/*.ptx "$BUILD"/ptx/manifest.json "$BUILD"/cuda/emu/tests/test_kernels.ptx "$OUT/ptx/"
# Generated units include the kernels by absolute path; make them relative to the bundle.
for f in "$BUILD"/emu_gen/*.cpp; do
  sed "s|#include \"$ROOT/cuda/kernels/|#include \"../../../cuda/kernels/|" "$f" > "$OUT/src/$(basename "$f")"
done
# random_device (never used here) would pull in arc4random from glibc 2.36.
printf 'extern "C" unsigned arc4random(void) { return 0x9e3779b9u; }\n' > "$OUT/src/arc4random_stub.cpp"
g++ -std=c++20 -O2 -ffp-contract=off -fno-strict-aliasing -DLAPERM_EMU=1 \
    -I"$ROOT/cuda/include" -I"$ROOT/cuda/emu" -I"$ROOT/cuda/emu/tests" \
    "$ROOT/cuda/emu/emu_runtime.cpp" "$OUT"/src/*.cpp "$ROOT/cuda/emu/tests/gpu_crosscheck.cpp" \
    -static-libstdc++ -ldl -pthread -o "$OUT/laperm_gpu_crosscheck"
cat > "$OUT/run.sh" <<'RUN'
#!/bin/sh
# The real GPU against the emulator, launch by launch (see cuda/emu/tests/gpu_crosscheck.cpp).
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -2
grep -o '"compilerVersion": "[^"]*"' ptx/manifest.json
# --foreground: stay in the caller's process group, so the caller's own time limit reaches the binary.
timeout --foreground 120 ./laperm_gpu_crosscheck ptx
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 77 ] && [ $rc -ne 124 ] && command -v g++ >/dev/null; then
  echo "prebuilt binary did not run (exit $rc); compiling it here"
  R=../..
  g++ -std=c++20 -O2 -ffp-contract=off -fno-strict-aliasing -DLAPERM_EMU=1 -I$R/cuda/include -I$R/cuda/emu \
      -I$R/cuda/emu/tests $R/cuda/emu/emu_runtime.cpp src/*.cpp $R/cuda/emu/tests/gpu_crosscheck.cpp \
      -ldl -pthread -o local_crosscheck && timeout --foreground 120 ./local_crosscheck ptx
  rc=$?
fi
exit $rc
RUN
chmod +x "$OUT/run.sh"
echo "bundle: $OUT ($(du -sh "$OUT" | cut -f1))"
