// test_support.h: a minimal checking harness for the emulator's C++ tests (no framework:
// the emulator must stay buildable with nothing but a C++ compiler and CMake).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "laperm_emu.h"

namespace lp_test {

inline int& failures() {
    static int f = 0;
    return f;
}

#define LP_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            ++::lp_test::failures();                                         \
            std::fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                               \
            std::fprintf(stderr, "\n");                                      \
        }                                                                    \
    } while (0)

// A host allocation registered with the emulator as a device buffer, poisoned with NaN/-1 bytes.
template <class T>
struct DeviceBuffer {
    std::vector<T> data;
    explicit DeviceBuffer(std::size_t n) : data(n) {
        std::memset(static_cast<void*>(data.data()), 0xFF, n * sizeof(T));
        if (n > 0 && laperm_emu_register_buffer(data.data(), n * sizeof(T)) != 0) {
            std::fprintf(stderr, "register_buffer: %s\n", laperm_emu_last_error());
            std::abort();
        }
    }
    ~DeviceBuffer() {
        if (!data.empty()) laperm_emu_unregister_buffer(data.data());
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    T* ptr() { return data.data(); }
    T& operator[](std::size_t i) { return data[i]; }
    std::size_t size() const { return data.size(); }
};

// Launch through the C ABI exactly as the C# runtime does: args[i] points to the i-th value.
template <class... A>
int launch(const char* kernel, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
           unsigned dynamic_shared, A... a) {
    void* args[sizeof...(A) > 0 ? sizeof...(A) : 1] = {static_cast<void*>(&a)...};
    return laperm_emu_launch(kernel, gx, gy, gz, bx, by, bz, dynamic_shared, args);
}

template <class... A>
bool launch_ok(const char* kernel, unsigned gx, unsigned bx, unsigned dynamic_shared, A... a) {
    int rc = launch(kernel, gx, 1, 1, bx, 1, 1, dynamic_shared, a...);
    if (rc != 0) {
        ++failures();
        std::fprintf(stderr, "launch of %s failed: %s\n", kernel, laperm_emu_last_error());
        return false;
    }
    return true;
}

// lp_divisor's three words for d (cuda/include/laperm/fast_divide.cuh; the C# launches make them
// with LaPerm.Cuda.Backend.FastDivisor.Of, the same computation), checked here against plain
// division so that a wrong constant cannot make two paths agree on a wrong answer.
inline std::vector<unsigned> divisor_words(unsigned d) {
    unsigned shift = 0;
    while ((1ull << shift) < d) ++shift;
    const unsigned multiplier = static_cast<unsigned>((((1ull << shift) - d) << 32) / d + 1);
    for (unsigned n : {0u, 1u, d - 1, d, d + 1, 1000003u, 0x7ffffffeu, 0x7fffffffu}) {
        if (n > 0x7fffffffu) continue;
        const unsigned q = static_cast<unsigned>((static_cast<unsigned long long>(n) * multiplier) >> 32) + n;
        if ((q >> shift) != n / d) {
            std::fprintf(stderr, "divisor_words: wrong constants for %u\n", d);
            std::abort();
        }
    }
    return {d, multiplier, shift};
}

inline bool contains(const std::string& haystack, const char* needle) {
    return haystack.find(needle) != std::string::npos;
}

inline int finish(const char* suite) {
    if (failures() == 0) return 0;
    std::fprintf(stderr, "%s: %d check(s) failed\n", suite, failures());
    return 1;
}

}  // namespace lp_test
