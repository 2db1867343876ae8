/* laperm_emu.h: C ABI of the CUDA host emulator (liblaperm_emu.so).
 *
 * The library contains every kernel of cuda/kernels compiled as C++ against
 * laperm/device.cuh, plus the runtime in cuda/emu that executes a launch with CUDA
 * semantics on the CPU. "Device memory" is host memory: device pointers are plain
 * host pointers, which the caller registers so that kernel arguments can be checked.
 *
 * Every function returns 0 on success and non-zero on error; on error the message
 * (naming the kernel) is readable with laperm_emu_last_error() (thread-local, valid
 * until the next call on the same thread).
 */
#ifndef LAPERM_EMU_H
#define LAPERM_EMU_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define LAPERM_EMU_EXPORT __attribute__((visibility("default")))
#else
#define LAPERM_EMU_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

LAPERM_EMU_EXPORT const char* laperm_emu_last_error(void);

/* The registered kernels (extern "C" names, as in the PTX), sorted by name. */
LAPERM_EMU_EXPORT int laperm_emu_kernel_count(void);
LAPERM_EMU_EXPORT const char* laperm_emu_kernel_name(int index);

/* Number of parameters of a kernel, or -1 (and an error message) if there is no such kernel. */
LAPERM_EMU_EXPORT int laperm_emu_kernel_arg_count(const char* kernel);
/* sizeof the kernel's parameter `index` (what cuLaunchKernel reads from args[index]); -1 if out of range. */
LAPERM_EMU_EXPORT int laperm_emu_kernel_arg_size(const char* kernel, int index);

/* Runs one launch to completion (synchronously). args[i] points to the i-th argument
 * value, as cuLaunchKernel's kernelParams. Pointer arguments must be null or point into
 * a registered buffer. */
LAPERM_EMU_EXPORT int laperm_emu_launch(const char* kernel,
                                        unsigned gridX, unsigned gridY, unsigned gridZ,
                                        unsigned blockX, unsigned blockY, unsigned blockZ,
                                        unsigned dynamicSharedBytes, void** args);

/* The emulator's cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES).
 * As on the GPU: without it, static + dynamic shared memory of a block must fit in 48 KiB;
 * with it, dynamic shared memory may reach `bytes`, and static + bytes must fit in 227 KiB. */
LAPERM_EMU_EXPORT int laperm_emu_set_max_dynamic_shared(const char* kernel, unsigned bytes);

/* Static shared memory of a kernel in bytes, as the PTX compiler allocated it; -1 when
 * unknown (no PTX was built on this machine: only dynamic shared memory is checked then). */
LAPERM_EMU_EXPORT int laperm_emu_kernel_static_shared(const char* kernel);

/* Registers per thread of a kernel as ptxas assembled its PTX for sm_90 at build time; 0 when
 * the build had no ptxas (launches are then not checked against the register file), -1 for an
 * unknown kernel. A launch whose block needs more than 64 Ki registers (per warp, in units of
 * 256) is refused, as a GPU refuses it. */
LAPERM_EMU_EXPORT int laperm_emu_kernel_registers(const char* kernel);

/* Device buffers: [base, base + bytes). Overlapping registrations are refused. */
LAPERM_EMU_EXPORT int laperm_emu_register_buffer(void* base, size_t bytes);
LAPERM_EMU_EXPORT int laperm_emu_unregister_buffer(void* base);

/* The caller allocated `guard` more bytes after a registered buffer's end: they are filled
 * with a pattern, and every launch that leaves them changed fails, naming the buffer and the
 * first byte written past its end. */
LAPERM_EMU_EXPORT int laperm_emu_guard_buffer(void* base, size_t guard);

/* The sanitizers the library was built with: "address" (CMake LAPERM_EMU_SANITIZE=ON; run with
 * the AddressSanitizer runtime preloaded and the ASAN_OPTIONS of the build's asan-options.txt:
 * a kernel's read or write outside its device buffers, its dynamic shared memory or a static
 * shared array is reported at the access and fails the launch, naming the source line; launches
 * run one at a time) or "" (writes past a buffer's guarded end are found after the launch;
 * reads, writes before a buffer and static shared overruns are not seen). */
LAPERM_EMU_EXPORT const char* laperm_emu_sanitizers(void);

#ifdef __cplusplus
}
#endif

#endif /* LAPERM_EMU_H */
