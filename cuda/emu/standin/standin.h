/* standin.h: what the stand-in cuBLAS needs from the stand-in driver (both in cuda/emu/standin).
 *
 * The stand-in driver is a libcuda.so.1 that runs on the host emulator, so that the real-GPU
 * path of the C# runtime (CudaRuntime, CudaDriver, Cublas: every driver call, stream, event,
 * capture and graph replay) runs in CI, where no GPU is. See standin_driver.cpp.
 */
#ifndef LAPERM_STANDIN_H
#define LAPERM_STANDIN_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>

#define LAPERM_STANDIN_EXPORT __attribute__((visibility("default")))

/* Enqueues `work` on `stream` as a graph-capturable operation (a host node, as cuBLAS's kernels
 * would be): it runs when the stream reaches it, or at each replay of a graph it was captured
 * into. `work` returns 0, or a CUresult that becomes the context's sticky fault (its message is
 * written to stderr, naming `name`). Returns a CUresult. */
LAPERM_STANDIN_EXPORT int laperm_standin_enqueue(void* stream, const char* name, std::function<int()> work);

/* 0 when [pointer, pointer + bytes) lies inside one device allocation, else CUDA_ERROR_INVALID_VALUE. */
LAPERM_STANDIN_EXPORT int laperm_standin_check_device_range(std::uint64_t pointer, std::size_t bytes);

/* 0 when the calling thread has a current, live context (what the runtime API, and so cuBLAS,
 * needs), else a CUresult. */
LAPERM_STANDIN_EXPORT int laperm_standin_check_context(void);

/* How the library stand-ins (cuBLAS's GEMMs, cuDNN's convolutions) sum: in double, rounded once
 * (default: the exact result), or with LAPERM_STANDIN_SUMS=float as one float FMA chain in order,
 * as a GPU kernel's per-thread accumulator does: a second rounding, otherwise than the CPU's, to
 * hold the GPU equivalence bounds against. Read at each call. */
inline bool laperm_standin_float_sums() {
    const char* value = std::getenv("LAPERM_STANDIN_SUMS");
    return value != nullptr && std::strcmp(value, "float") == 0;
}

/* sum += x * y, exactly in double or as one float FMA (the sum then always holds a float). */
inline void laperm_standin_madd(double& sum, float x, float y, bool float_sums) {
    sum = float_sums ? double(std::fma(x, y, float(sum))) : sum + double(x) * double(y);
}

#endif /* LAPERM_STANDIN_H */
