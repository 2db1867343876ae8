// emu_registry.h: registers an `extern "C" __global__` kernel with the emulator.
//
// CMake generates one translation unit per cuda/kernels/<file>.cu that includes the kernel
// source and then says LP_EMU_REGISTER(name) for every `extern "C" __global__` in it, so a
// kernel author writes nothing emulator-specific. The unpacker is type-safe: the kernel's own
// parameter types cast kernelParams back, exactly as cuLaunchKernel reads them.
#pragma once

#include <cstdint>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "laperm/device.cuh"

namespace lp_emu {

using KernelInvoker = void (*)(void** args);

struct KernelInfo {
    const char* name;
    KernelInvoker invoke;
    unsigned arg_count;
    std::uint64_t pointer_args;  // bit i set: parameter i is a pointer (checked against registered buffers)
    const unsigned char* arg_sizes;  // sizeof each parameter (what cuLaunchKernel reads from each args[i])
};

LP_EMU_API bool register_kernel(const KernelInfo& info);

// Static shared memory of each kernel as the PTX compiler allocated it (generated; ends with
// a null name; empty when no PTX was built).
struct StaticSharedSize {
    const char* kernel;
    unsigned bytes;
};
extern const StaticSharedSize static_shared_sizes[];

template <auto Fn> struct KernelBinding;

template <class... A, void (*Fn)(A...)>
struct KernelBinding<Fn> {
    static_assert(sizeof...(A) <= 64, "a kernel with more than 64 parameters");

    template <std::size_t... I>
    static void call(void** args, std::index_sequence<I...>) {
        Fn(*static_cast<std::remove_cv_t<A>*>(args[I])...);
    }
    static void invoke(void** args) { call(args, std::index_sequence_for<A...>{}); }

    static constexpr std::uint64_t pointer_args() {
        std::uint64_t mask = 0;
        unsigned i = 0;
        ((mask |= (std::is_pointer_v<A> ? (std::uint64_t{1} << i) : 0), ++i), ...);
        return mask;
    }
    // One entry per parameter, plus a terminator so that a kernel without parameters has an array too.
    static constexpr unsigned char arg_sizes[] = {static_cast<unsigned char>(sizeof(A))..., 0};

    static KernelInfo info(const char* name) {
        return KernelInfo{name, &invoke, static_cast<unsigned>(sizeof...(A)), pointer_args(), arg_sizes};
    }
};

}  // namespace lp_emu

#define LP_EMU_REGISTER(kernel)                                                                    \
    [[maybe_unused]] static const bool lp_emu_registered_##kernel =                                \
        ::lp_emu::register_kernel(::lp_emu::KernelBinding<&kernel>::info(#kernel));
