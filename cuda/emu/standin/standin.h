/* standin.h: what the stand-in cuBLAS needs from the stand-in driver (both in cuda/emu/standin).
 *
 * The stand-in driver is a libcuda.so.1 that runs on the host emulator, so that the real-GPU
 * path of the C# runtime (CudaRuntime, CudaDriver, Cublas: every driver call, stream, event,
 * capture and graph replay) runs in CI, where no GPU is. See standin_driver.cpp.
 */
#ifndef LAPERM_STANDIN_H
#define LAPERM_STANDIN_H

#include <cstddef>
#include <cstdint>
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

#endif /* LAPERM_STANDIN_H */
