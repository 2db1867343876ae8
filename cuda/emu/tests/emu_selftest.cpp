// emu_selftest.cpp: the emulator's own semantics: barriers with divergent warps, shuffle and
// vote results against the PTX definitions, ids, atomics, dynamic shared memory, and the
// errors it must report (deadlocks naming the kernel, shared memory over the limit, bad
// masks, pointers outside registered buffers).
#include "emu_registry.h"
#include "test_kernels.cu"
#include "test_support.h"

#include <string_view>
#include <thread>

LP_EMU_REGISTER(test_divergent_barrier)
LP_EMU_REGISTER(test_barrier_loop)
LP_EMU_REGISTER(test_shuffles)
LP_EMU_REGISTER(test_warp_sum_2d)
LP_EMU_REGISTER(test_ids)
LP_EMU_REGISTER(test_atomics)
LP_EMU_REGISTER(test_syncthreads_reductions)
LP_EMU_REGISTER(test_dynamic_shared)
LP_EMU_REGISTER(test_copy_async)
LP_EMU_REGISTER(test_bits_math)
LP_EMU_REGISTER(test_bad_early_exit)
LP_EMU_REGISTER(test_bad_shuffle_exit)
LP_EMU_REGISTER(test_bad_mask)
LP_EMU_REGISTER(test_bad_barrier_vs_warp)
LP_EMU_REGISTER(test_bad_lane_divergent_barrier)
LP_EMU_REGISTER(test_bad_stack_overflow)
LP_EMU_REGISTER(test_bad_shared_underflow)
LP_EMU_REGISTER(test_read_past_end)
LP_EMU_REGISTER(test_bad_static_shared_overrun)
LP_EMU_REGISTER(test_racy_neighbour)
LP_EMU_REGISTER(test_racy_blocks)
LP_EMU_REGISTER(test_racy_warps)

using namespace lp_test;

namespace {

std::mt19937 rng(12345);

void divergent_barrier() {
    for (unsigned block : {32u, 64u, 96u, 256u}) {
        const unsigned blocks = 3;
        const int seed = static_cast<int>(rng() % 1000) + 1;
        DeviceBuffer<int> out(block * blocks);
        if (!launch_ok("test_divergent_barrier", blocks, block, 0, seed, out.ptr())) continue;
        for (unsigned b = 0; b < blocks; ++b)
            for (unsigned t = 0; t < block; ++t) {
                unsigned src = (t / 32) % 2 == 0 ? block - 1 - t : (t + 1) % block;
                int expected = seed * 1000 + static_cast<int>(src) + static_cast<int>(b) * 7;
                LP_CHECK(out[b * block + t] == expected, "block size %u, block %u, thread %u: %d != %d", block, b, t,
                         out[b * block + t], expected);
            }
    }
}

void barrier_loop() {
    for (unsigned block : {1u, 2u, 64u, 512u, 1024u}) {
        DeviceBuffer<int> out(2);
        if (!launch_ok("test_barrier_loop", 2, block, 0, out.ptr())) continue;
        int expected = static_cast<int>(block * (block + 1) / 2);
        LP_CHECK(out[0] == expected && out[1] == expected, "block %u: %d %d != %d", block, out[0], out[1], expected);
    }
}

// Launches from several OS threads at once, as the .NET tests make them: a block's static shared
// array must be its own for the block's run. The plain build keeps one copy per OS thread
// (thread_local), the AddressSanitizer build one plain static and runs one launch at a time
// (without that, these sums come out wrong there).
void concurrent_launches() {
    constexpr int kThreads = 4, kLaunches = 25, kBlocks = 8;
    std::vector<int> wrong(kThreads, 0), failed(kThreads, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i)
        threads.emplace_back([i, &wrong, &failed] {
            const unsigned block = 64u << i;   // 64, 128, 256, 512 threads: different sums per OS thread
            const int expected = static_cast<int>(block * (block + 1) / 2);
            DeviceBuffer<int> out(kBlocks);
            for (int l = 0; l < kLaunches; ++l) {
                if (launch("test_barrier_loop", kBlocks, 1, 1, block, 1, 1, 0, out.ptr()) != 0) {
                    ++failed[static_cast<std::size_t>(i)];
                    continue;
                }
                for (int b = 0; b < kBlocks; ++b)
                    if (out[static_cast<std::size_t>(b)] != expected) ++wrong[static_cast<std::size_t>(i)];
            }
        });
    for (auto& t : threads) t.join();
    for (int i = 0; i < kThreads; ++i)
        LP_CHECK(wrong[static_cast<std::size_t>(i)] == 0 && failed[static_cast<std::size_t>(i)] == 0,
                 "OS thread %d: %d wrong block sums, %d failed launches", i, wrong[static_cast<std::size_t>(i)], failed[static_cast<std::size_t>(i)]);
}

// Reference shuffle: PTX shfl.sync with c = ((32 - width) << 8) | clamp.
int ref_shfl(const int* v, int lane, int mode, int b, int width) {
    int segmask = 32 - width, clamp = mode == 1 ? 0 : 31;
    int min_lane = lane & segmask, max_lane = min_lane | (clamp & ~segmask);
    int j = lane;
    bool ok = true;
    switch (mode) {
        case 0: j = min_lane | (b & 31 & ~segmask); ok = j <= max_lane; break;
        case 1: j = lane - b; ok = j >= max_lane; break;
        case 2: j = lane + b; ok = j <= max_lane; break;
        case 3: j = lane ^ b; ok = j <= max_lane; break;
    }
    return v[ok ? j : lane];
}

void shuffles() {
    DeviceBuffer<int> in(32), out(14 * 32);
    for (int i = 0; i < 32; ++i) in[i] = static_cast<int>(rng() % 1000) + 1;
    in[17] = in[17];
    if (!launch_ok("test_shuffles", 1, 32, 0, in.ptr(), out.ptr())) return;
    const int* v = in.ptr();
    unsigned ballot = 0;
    bool all_positive = true;
    for (int l = 0; l < 32; ++l) {
        if (v[l] % 3 == 0) ballot |= 1u << l;
        all_positive &= v[l] > 0;
    }
    for (int l = 0; l < 32; ++l) {
        int exp[14] = {
            v[(l * 7) % 32],
            ref_shfl(v, l, 1, 3, 32),
            ref_shfl(v, l, 2, 5, 32),
            ref_shfl(v, l, 3, 9, 32),
            ref_shfl(v, l, 0, 3, 8),
            ref_shfl(v, l, 1, 2, 8),
            ref_shfl(v, l, 2, 2, 8),
            ref_shfl(v, l, 3, 4, 8),
            static_cast<int>(ballot),
            1,
            all_positive ? 1 : 0,
            l + 1 < 32 ? v[l + 1] : v[l],
            v[l ^ 1] + (l ^ 1) * 1000000,
            l < 16 ? v[(l + 1) % 16] : v[16 + (l + 1) % 16],
        };
        for (int row = 0; row < 14; ++row)
            LP_CHECK(out[row * 32 + l] == exp[row], "shuffle row %d lane %d: %d != %d", row, l, out[row * 32 + l], exp[row]);
    }
    // Spot checks of the reference itself against the CUDA documentation's wording.
    LP_CHECK(ref_shfl(v, 1, 1, 3, 32) == v[1], "up: lanes below delta keep their value");
    LP_CHECK(ref_shfl(v, 30, 2, 5, 32) == v[30], "down: lanes near the top keep their value");
    LP_CHECK(ref_shfl(v, 9, 0, 3, 8) == v[11], "idx width 8: lane 9 reads lane 8 + 3");
}

void warp_sum_2d() {
    // Block 16 x 4 = 64 threads = 2 warps; warp w covers rows 2w and 2w+1.
    DeviceBuffer<float> in(64), out(2);
    for (int i = 0; i < 64; ++i) in[i] = static_cast<float>(static_cast<int>(rng() % 200) - 100);
    int rc = launch("test_warp_sum_2d", 1, 1, 1, 16, 4, 1, 0, in.ptr(), out.ptr());
    LP_CHECK(rc == 0, "%s", laperm_emu_last_error());
    for (int w = 0; w < 2; ++w) {
        float s = 0;
        for (int i = 0; i < 32; ++i) s += in[w * 32 + i];
        LP_CHECK(out[w] == s, "warp %d: %g != %g", w, out[w], s);
    }
}

void ids() {
    const unsigned bx = 4, by = 3, bz = 2, gx = 3, gy = 2, gz = 2;
    DeviceBuffer<unsigned> out(bx * by * bz * gx * gy * gz);
    int rc = launch("test_ids", gx, gy, gz, bx, by, bz, 0, out.ptr());
    LP_CHECK(rc == 0, "%s", laperm_emu_last_error());
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x)
                for (unsigned tz = 0; tz < bz; ++tz)
                    for (unsigned ty = 0; ty < by; ++ty)
                        for (unsigned tx = 0; tx < bx; ++tx) {
                            unsigned block = x + gx * (y + gy * z), thread = tx + bx * (ty + by * tz);
                            unsigned e = tx | (ty << 4) | (tz << 8) | (x << 12) | (y << 16) | (z << 20);
                            unsigned got = out[block * bx * by * bz + thread];
                            LP_CHECK(got == e, "block (%u,%u,%u) thread (%u,%u,%u): %x != %x", x, y, z, tx, ty, tz, got, e);
                        }
}

void atomics() {
    const int n = 1000;
    DeviceBuffer<int> in(n), counters(6);
    DeviceBuffer<float> fsum(1);
    DeviceBuffer<unsigned> umax(1);
    long long sum = 0;
    int mx = -1, mn = 1 << 30;
    float fs = 0;
    for (int i = 0; i < n; ++i) {
        in[i] = static_cast<int>(rng() % 100000);
        sum += in[i];
        mx = std::max(mx, in[i]);
        mn = std::min(mn, in[i]);
        fs += static_cast<float>(in[i] % 100);
    }
    counters[0] = counters[1] = counters[4] = counters[5] = 0;
    counters[2] = -1;
    counters[3] = 1 << 30;
    fsum[0] = 0;
    umax[0] = 0;
    if (!launch_ok("test_atomics", (n + 127) / 128, 128, 0, in.ptr(), n, counters.ptr(), fsum.ptr(), umax.ptr())) return;
    LP_CHECK(counters[0] == n, "count %d", counters[0]);
    LP_CHECK(counters[1] == sum, "sum %d != %lld", counters[1], sum);
    LP_CHECK(counters[2] == mx && counters[3] == mn, "max %d/%d min %d/%d", counters[2], mx, counters[3], mn);
    LP_CHECK(fsum[0] == fs, "float sum %g != %g (integers below 2^24 add exactly)", fsum[0], fs);
    LP_CHECK(umax[0] == static_cast<unsigned>(mx) * 3u, "unsigned max %u", umax[0]);
    LP_CHECK(counters[4] >= 1 && counters[4] <= n && counters[5] == counters[4], "CAS winner %d, exch %d", counters[4], counters[5]);
}

void syncthreads_reductions() {
    DeviceBuffer<int> in(128), out(3);
    int count = 0;
    for (int i = 0; i < 128; ++i) {
        in[i] = static_cast<int>(rng() % 40) - 10;
        count += in[i] > 10;
    }
    in[77] = 12345;
    count = 0;
    for (int i = 0; i < 128; ++i) count += in[i] > 10;
    if (!launch_ok("test_syncthreads_reductions", 1, 128, 0, in.ptr(), out.ptr())) return;
    LP_CHECK(out[0] == count && out[1] == 1 && out[2] == 1, "count %d/%d and %d or %d", out[0], count, out[1], out[2]);
}

void dynamic_shared_and_limits() {
    const unsigned block = 128;
    DeviceBuffer<float> in(block * 2), out(block * 2);
    for (unsigned i = 0; i < block * 2; ++i) in[i] = static_cast<float>(rng() % 1000);
    if (launch_ok("test_dynamic_shared", 2, block, block * sizeof(float), in.ptr(), out.ptr()))
        for (unsigned b = 0; b < 2; ++b)
            for (unsigned t = 0; t < block; ++t)
                LP_CHECK(out[b * block + t] == in[b * block + block - 1 - t], "reverse %u %u", b, t);

    // One float too few for the block (the host's size smaller than the kernel's layout): the
    // last thread's write lands in the guard above, and the launch fails naming the offset.
    int rc = launch("test_dynamic_shared", 2, 1, 1, block, 1, 1, (block - 1) * sizeof(float), in.ptr(), out.ptr());
    std::string e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && contains(e, "test_dynamic_shared") && contains(e, "past its 508 bytes of dynamic shared memory") &&
                 contains(e, "offset 508"), "undersized dynamic shared memory: rc %d, '%s'", rc, e.c_str());
    DeviceBuffer<int> zeros(32);
    rc = launch("test_bad_shared_underflow", 1, 1, 1, 32, 1, 1, 32 * sizeof(int), zeros.ptr());
    e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && contains(e, "test_bad_shared_underflow") && contains(e, "before its 128 bytes") && contains(e, "offset -4"),
             "write below dynamic shared memory: rc %d, '%s'", rc, e.c_str());
    // A block that fails (a deadlock, with dynamic shared memory it never uses) is not checked for
    // its guards; the next launch must start clean all the same (in the AddressSanitizer build the
    // guards it poisoned stayed poisoned, and the next block's own setup tripped over them).
    LP_CHECK(launch("test_bad_barrier_vs_warp", 1, 1, 1, 32, 1, 1, 64, zeros.ptr()) != 0, "the deadlock should fail");
    if (launch_ok("test_dynamic_shared", 2, block, block * sizeof(float), in.ptr(), out.ptr()))
        for (unsigned t = 0; t < block; ++t)
            LP_CHECK(out[block + t] == in[2 * block - 1 - t], "reverse after a failed block %u", t);

    // Asynchronous copies land at the issuing thread's wait: before it the slot holds what the
    // thread wrote, after it and a barrier every thread sees every copy. Without the wait the
    // thread's exit is an error naming the count.
    {
        DeviceBuffer<float> copied(block * 2);
        if (launch_ok("test_copy_async", 1, block, block * sizeof(float), in.ptr(), copied.ptr(), 1))
            for (unsigned t = 0; t < block; ++t) {
                LP_CHECK(copied[2 * t] == -1.0f, "copy %u visible before its wait: %g", t, copied[2 * t]);
                LP_CHECK(copied[2 * t + 1] == in[block - 1 - t], "copy %u after the wait: %g != %g", t, copied[2 * t + 1], in[block - 1 - t]);
            }
        rc = launch("test_copy_async", 1, 1, 1, block, 1, 1, block * sizeof(float), in.ptr(), copied.ptr(), 0);
        e = laperm_emu_last_error();
        LP_CHECK(rc != 0 && contains(e, "test_copy_async") && contains(e, "exits with 1 asynchronous copies") &&
                     contains(e, "lp_copy_async_wait_all"), "copy not waited for: rc %d, '%s'", rc, e.c_str());
    }

    // No dynamic shared memory at all for a kernel that uses it (the host forgot the size).
    rc = launch("test_dynamic_shared", 1, 1, 1, block, 1, 1, 0, in.ptr(), out.ptr());
    e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && contains(e, "test_dynamic_shared") && contains(e, "uses dynamic shared memory, but the launch gave it 0 bytes") &&
                 contains(e, "thread ("),   // which thread gets there first depends on the schedule
             "dynamic shared memory without a size: rc %d, '%s'", rc, e.c_str());

    // Over the default 48 KiB: refused with the kernel's name.
    rc = launch("test_dynamic_shared", 1, 1, 1, block, 1, 1, 48 * 1024 + 4, in.ptr(), out.ptr());
    e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && contains(e, "test_dynamic_shared") && contains(e, "shared"), "over-limit launch: rc %d, '%s'", rc, e.c_str());
    // Opt in (as cuFuncSetAttribute), then it runs; beyond 227 KiB the opt-in itself is refused.
    LP_CHECK(laperm_emu_set_max_dynamic_shared("test_dynamic_shared", 100 * 1024) == 0, "%s", laperm_emu_last_error());
    rc = launch("test_dynamic_shared", 1, 1, 1, block, 1, 1, 100 * 1024, in.ptr(), out.ptr());
    LP_CHECK(rc == 0, "after opt-in: %s", laperm_emu_last_error());
    rc = laperm_emu_set_max_dynamic_shared("test_dynamic_shared", 228 * 1024);
    e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && contains(e, "test_dynamic_shared"), "opt-in over 227 KiB: rc %d '%s'", rc, e.c_str());
    LP_CHECK(laperm_emu_set_max_dynamic_shared("test_dynamic_shared", 0) == 0, "reset the opt-in");
    rc = launch("test_dynamic_shared", 1, 1, 1, block, 1, 1, 100 * 1024, in.ptr(), out.ptr());
    LP_CHECK(rc != 0, "without opt-in 100 KiB are refused again");

    // Static + dynamic: reduce_sum_v1 declares 4 KiB of static shared memory (known from its PTX).
    const int static_bytes = laperm_emu_kernel_static_shared("reduce_sum_v1");
#if LAPERM_TEST_PTX_BUILT
    LP_CHECK(static_bytes == 4096, "static shared of reduce_sum_v1 from the PTX: %d", static_bytes);
#endif
    if (static_bytes > 0) {
        DeviceBuffer<float> x(64), partial(1);
        int n = 64;
        rc = launch("reduce_sum_v1", 1, 1, 1, 64, 1, 1, 48 * 1024 - static_bytes + 4, n, x.ptr(), partial.ptr());
        e = laperm_emu_last_error();
        LP_CHECK(rc != 0 && contains(e, "reduce_sum_v1") && contains(e, "static"), "static + dynamic over 48 KiB: '%s'", e.c_str());
        rc = launch("reduce_sum_v1", 1, 1, 1, 64, 1, 1, 48 * 1024 - static_bytes, n, x.ptr(), partial.ptr());
        LP_CHECK(rc == 0, "static + dynamic at exactly 48 KiB: %s", laperm_emu_last_error());
    }

#if LAPERM_TEST_PTX_BUILT
    // Launch bounds from the PTX (.maxntid): reconnect_bucket_narrow_256 is built for 32 threads per block.
    rc = launch("reconnect_bucket_narrow_256", 1, 1, 1, 64, 1, 1, 0);
    e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && contains(e, "reconnect_bucket_narrow_256") && contains(e, "__launch_bounds__ allow at most 32"),
             "64 threads over a bound of 32: '%s'", e.c_str());
    rc = launch("reconnect_bucket_narrow_256", 1, 1, 1, 32, 1, 1, 0);  // within the bound: stops at its missing arguments
    e = laperm_emu_last_error();
    LP_CHECK(rc != 0 && !contains(e, "__launch_bounds__") && contains(e, "args[0]"), "32 threads: '%s'", e.c_str());
    // Scalars count too: gather_batch_v1's int s_record and float s_map[6] (split into six scalars).
    LP_CHECK(laperm_emu_kernel_static_shared("gather_batch_v1") == 28, "static shared of gather_batch_v1: %d",
             laperm_emu_kernel_static_shared("gather_batch_v1"));
#endif
#if LAPERM_TEST_PTXAS_BUILT
    // Registers from ptxas: every kernel has its count, and the kernel with the most is refused a
    // block one warp larger than the register file holds, but not the block one warp smaller.
    const char* heaviest = nullptr;
    int most = 0;
    for (int i = 0; i < laperm_emu_kernel_count(); ++i) {
        const char* kernel = laperm_emu_kernel_name(i);
        if (std::string(kernel).rfind("test_", 0) == 0) continue;  // this file's kernels have no PTX
        const int registers = laperm_emu_kernel_registers(kernel);
        LP_CHECK(registers > 0, "registers of %s from ptxas: %d", kernel, registers);
        if (registers > most) { most = registers; heaviest = kernel; }
    }
    if (heaviest != nullptr && most > 64) {  // at most 64 per thread, even 1024 threads fit
        const unsigned per_warp = (static_cast<unsigned>(most) * 32 + 255) / 256 * 256;
        const unsigned fitting = 65536 / per_warp * 32;
        rc = launch(heaviest, 1, 1, 1, fitting + 32, 1, 1, 0);
        e = laperm_emu_last_error();
        LP_CHECK(rc != 0 && contains(e, heaviest) && contains(e, "registers") && contains(e, "refuses"),
                 "%s (%d registers) with %u threads: '%s'", heaviest, most, fitting + 32, e.c_str());
        rc = launch(heaviest, 1, 1, 1, fitting, 1, 1, 0);  // fits: stops at its missing arguments
        e = laperm_emu_last_error();
        LP_CHECK(rc != 0 && !contains(e, "registers") && contains(e, "args[0]"), "%s with %u threads: '%s'", heaviest,
                 fitting, e.c_str());
    }
#endif
}

void bits_math() {
    const unsigned n = 64;
    DeviceBuffer<float> x(n), math(n * 8);
    DeviceBuffer<unsigned> bits(n * 6);
    std::uniform_real_distribution<float> d(-20.0f, 20.0f);
    for (unsigned i = 0; i < n; ++i) x[i] = d(rng);
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = std::nanf("");
    x[3] = 2.5f;   // rintf: halves to even
    x[4] = -3.5f;
    if (!launch_ok("test_bits_math", 1, n, 0, x.ptr(), bits.ptr(), math.ptr())) return;
    for (unsigned t = 0; t < n; ++t) {
        unsigned u;
        std::memcpy(&u, &x[t], 4);
        unsigned rev = 0;
        for (int i = 0; i < 32; ++i)
            if (u & (1u << i)) rev |= 1u << (31 - i);
        unsigned clz = u == 0 ? 32 : static_cast<unsigned>(__builtin_clz(u));
        unsigned ffs = static_cast<unsigned>(__builtin_ffs(static_cast<int>(u)));
        unsigned e[6] = {u, clz, static_cast<unsigned>(__builtin_popcount(u)), rev, ffs, u};
        for (int k = 0; k < 6; ++k) LP_CHECK(bits[t * 6 + k] == e[k], "bits %u/%d: %x != %x", t, k, bits[t * 6 + k], e[k]);
        float v = x[t];
        if (std::isnan(v)) continue;
        float m[8] = {std::sqrt(std::fabs(v)), std::fmin(v, 0.5f) + std::fmax(v, -0.5f),
                      std::floor(v) + std::ceil(v) + std::trunc(v) + std::rint(v), std::fma(v, 3.0f, 1.0f),
                      std::exp(std::fmin(v, 10.0f)), std::log(std::fabs(v) + 1.0f), 1.0f / std::sqrt(std::fabs(v) + 1.0f),
                      static_cast<float>(std::min<int>(t, 5) + std::max<int>(t, 5))};
        for (int k = 0; k < 8; ++k)
            LP_CHECK(std::fabs(math[t * 8 + k] - m[k]) <= 1e-6f * std::fabs(m[k]), "math %u/%d: %g != %g", t, k, math[t * 8 + k], m[k]);
    }
}

void expect_failure(const char* kernel, int rc, std::initializer_list<const char*> words) {
    std::string e = laperm_emu_last_error();
    LP_CHECK(rc != 0, "%s should fail", kernel);
    LP_CHECK(contains(e, kernel), "message does not name the kernel: '%s'", e.c_str());
    for (const char* w : words) LP_CHECK(contains(e, w), "message lacks '%s': '%s'", w, e.c_str());
}

// Whether LAPERM_EMU_SCHEDULE leaves the default order (threads and blocks in index order).
// Other orders meet an error in another block or lane first, so the message names that one.
bool default_order() {
    const char* s = std::getenv("LAPERM_EMU_SCHEDULE");
    return s == nullptr || *s == '\0' || std::strcmp(s, "forward") == 0;
}

void errors() {
    DeviceBuffer<int> out(64);
    const bool ordered = default_order();
    expect_failure("test_bad_early_exit", launch("test_bad_early_exit", 2, 1, 1, 64, 1, 1, 0, 40, out.ptr()),
                   {"__syncthreads", ordered ? "block (0,0,0)" : "block (", "40 thread(s) wait", "24 exited",
                    "thread (40,0,0)"});
    // Same kernel, every thread reaches the barrier: fine.
    LP_CHECK(launch("test_bad_early_exit", 2, 1, 1, 64, 1, 1, 0, 64, out.ptr()) == 0, "%s", laperm_emu_last_error());
    expect_failure("test_bad_shuffle_exit", launch("test_bad_shuffle_exit", 1, 1, 1, 32, 1, 1, 0, out.ptr()),
                   {"__shfl_down_sync", "lane 5", "exited"});
    expect_failure("test_bad_mask", launch("test_bad_mask", 1, 1, 1, 32, 1, 1, 0, out.ptr()),
                   {"mask 0x00000001", "does not include its own lane"});
    expect_failure("test_bad_barrier_vs_warp", launch("test_bad_barrier_vs_warp", 1, 1, 1, 32, 1, 1, 0, out.ptr()),
                   {"__shfl_sync", "waits at __syncthreads"});
    expect_failure("test_bad_lane_divergent_barrier",
                   launch("test_bad_lane_divergent_barrier", 1, 1, 1, 64, 1, 1, 0, out.ptr()),
                   {ordered ? "lane 1 of warp 0" : "of warp", "test_kernels.cu", "same place"});
    expect_failure("test_bad_stack_overflow", launch("test_bad_stack_overflow", 1, 1, 1, 4, 1, 1, 0, 24 * 1024, out.ptr()),
                   {"thread (3,0,0) overflowed", "LAPERM_EMU_STACK_KB"});
    // A full-warp mask in a partial warp (block of 48: warp 1 has 16 lanes).
    expect_failure("test_shuffles", launch("test_shuffles", 1, 1, 1, 48, 1, 1, 0, out.ptr(), out.ptr()), {"only 16 lane(s)"});

    // A write past the end of a guarded buffer: 32 threads write out[0..31] into 31 ints (the
    // 32nd lands in the guard, which the caller allocated after the registered range).
    {
        std::vector<int> storage(31 + 64, 0);
        LP_CHECK(laperm_emu_register_buffer(storage.data(), 31 * sizeof(int)) == 0, "%s", laperm_emu_last_error());
        LP_CHECK(laperm_emu_guard_buffer(storage.data(), 64 * sizeof(int)) == 0, "%s", laperm_emu_last_error());
        expect_failure("test_racy_neighbour", launch("test_racy_neighbour", 1, 1, 1, 32, 1, 1, 32 * sizeof(int), storage.data()),
                       {"past the end of the 124-byte device buffer", "byte 124, 0 past its end"});
        // The guard is written anew: a launch that stays inside the buffer succeeds.
        LP_CHECK(launch("test_racy_neighbour", 1, 1, 1, 31, 1, 1, 31 * sizeof(int), storage.data()) == 0, "%s", laperm_emu_last_error());
        LP_CHECK(laperm_emu_unregister_buffer(storage.data()) == 0, "%s", laperm_emu_last_error());
    }

    // A read past the end of a device buffer (32 threads, 31 ints): the AddressSanitizer build
    // fails the launch with the access and its source line; the plain build cannot see reads.
    {
        DeviceBuffer<int> in(31), copy(32);
        const int rc = launch("test_read_past_end", 1, 1, 1, 32, 1, 1, 0, in.ptr(), copy.ptr());
        if (std::string_view(laperm_emu_sanitizers()) == "address")
            expect_failure("test_read_past_end", rc, {"AddressSanitizer", "READ of size 4", "test_kernels.cu"});
        else
            LP_CHECK(rc == 0, "read past the end without a sanitizer: %s", laperm_emu_last_error());
    }
    // A write past a static __shared__ array (33 threads, 32 slots): the AddressSanitizer build
    // only (where the array is a global with redzones; see laperm/device.cuh).
    if (std::string_view(laperm_emu_sanitizers()) == "address") {
        DeviceBuffer<int> slots(33);
        expect_failure("test_bad_static_shared_overrun",
                       launch("test_bad_static_shared_overrun", 1, 1, 1, 33, 1, 1, 0, slots.ptr()),
                       {"AddressSanitizer", "global-buffer-overflow", "WRITE of size 4", "test_kernels.cu", "slots"});
    }

    // Pointer arguments outside registered buffers; null is allowed.
    std::vector<int> unregistered(64);
    int* stray = unregistered.data();
    expect_failure("test_barrier_loop", launch("test_barrier_loop", 1, 1, 1, 32, 1, 1, 0, stray),
                   {"pointer argument 0", "registered"});
    // Launch shape errors.
    expect_failure("test_barrier_loop", launch("test_barrier_loop", 1, 1, 1, 2048, 1, 1, 0, out.ptr()), {"1024"});
    expect_failure("test_barrier_loop", launch("test_barrier_loop", 0, 1, 1, 32, 1, 1, 0, out.ptr()), {"at least 1"});
    int rc = launch("no_such_kernel", 1, 1, 1, 1, 1, 1, 0, out.ptr());
    LP_CHECK(rc != 0 && contains(laperm_emu_last_error(), "no_such_kernel"), "unknown kernel");
    // The emulator keeps working after errors.
    barrier_loop();
}

void registry_and_buffers() {
    const int count = laperm_emu_kernel_count();
    LP_CHECK(count >= 15, "kernel count %d", count);
    bool found_axpy = false;
    std::string previous;
    for (int i = 0; i < count; ++i) {
        std::string name = laperm_emu_kernel_name(i);
        LP_CHECK(name > previous, "names sorted: '%s' after '%s'", name.c_str(), previous.c_str());
        previous = name;
        found_axpy |= name == "axpy_v1";
    }
    LP_CHECK(found_axpy, "axpy_v1 registered");
    LP_CHECK(laperm_emu_kernel_name(count) == nullptr, "index out of range");
    LP_CHECK(laperm_emu_kernel_arg_count("test_atomics") == 5, "arg count");
    LP_CHECK(laperm_emu_kernel_arg_count("nope") == -1, "arg count of unknown kernel");
    std::vector<char> a(1024);
    LP_CHECK(laperm_emu_register_buffer(a.data(), 512) == 0, "register");
    LP_CHECK(laperm_emu_register_buffer(a.data() + 256, 16) != 0, "overlap refused");
    LP_CHECK(laperm_emu_register_buffer(a.data() + 512, 512) == 0, "adjacent accepted");
    LP_CHECK(laperm_emu_unregister_buffer(a.data()) == 0 && laperm_emu_unregister_buffer(a.data() + 512) == 0, "unregister");
    LP_CHECK(laperm_emu_unregister_buffer(a.data()) != 0, "double unregister refused");
}

// Runs the two racy kernels under one LAPERM_EMU_SCHEDULE value; returns how many of
// their outputs differ from what the lucky thread and block order gives.
int racy_mismatches(const char* schedule) {
    setenv("LAPERM_EMU_SCHEDULE", schedule, 1);
    const unsigned threads = 256, blocks = 64;
    DeviceBuffer<int> neighbour(threads * blocks), data(blocks), order(blocks);
    int mismatches = 0;
    if (launch_ok("test_racy_neighbour", blocks, threads, threads * sizeof(int), neighbour.ptr()))
        for (unsigned i = 0; i < threads * blocks; ++i) mismatches += neighbour[i] != static_cast<int>(i % threads);
    if (launch_ok("test_racy_blocks", blocks, 32, 0, data.ptr(), order.ptr()))
        for (unsigned b = 0; b < blocks; ++b) mismatches += order[b] != static_cast<int>(b);
    return mismatches;
}

// Runs test_racy_warps (4 warps a block) under one schedule; returns how many slots lost an add.
int warp_race_mismatches(const char* schedule) {
    setenv("LAPERM_EMU_SCHEDULE", schedule, 1);
    const unsigned threads = 128, blocks = 8;
    DeviceBuffer<int> out(threads * blocks);
    int mismatches = 0;
    if (launch_ok("test_racy_warps", blocks, threads, threads * sizeof(int), out.ptr()))
        for (unsigned i = 0; i < threads * blocks; ++i) mismatches += out[i] != 1;
    return mismatches;
}

// LAPERM_EMU_SCHEDULE changes the order of threads and blocks, and with it the outcome of a
// race (the default order hides these two); race-free kernels give the same bits under every
// order (ctest runs this whole self-test under reverse and shuffle too).
void schedules() {
    const char* saved = std::getenv("LAPERM_EMU_SCHEDULE");
    const std::string original = saved != nullptr ? saved : "";
    // One OS thread: with several, blocks also race in time, not only in order.
    const char* saved_threads = std::getenv("LAPERM_EMU_THREADS");
    const std::string original_threads = saved_threads != nullptr ? saved_threads : "";
    setenv("LAPERM_EMU_THREADS", "1", 1);
    LP_CHECK(racy_mismatches("forward") == 0, "the thread-order schedule hides both races");
    LP_CHECK(racy_mismatches("") == 0, "an empty setting is the default order");
    // Reverse: every neighbour read (255 of 256 per block) and every block read is stale.
    LP_CHECK(racy_mismatches("reverse") == 64 * 255 + 63, "reverse exposes every racy read");
    const int a = racy_mismatches("shuffle:1"), b = racy_mismatches("shuffle:2");
    LP_CHECK(a > 0 && b > 0, "shuffle exposes the races: %d, %d mismatches", a, b);
    LP_CHECK(racy_mismatches("shuffle:1") == a, "the same seed gives the same order");
    LP_CHECK(racy_mismatches("shuffle") > 0, "shuffle without a seed");
    // A race between warps across a warp operation. A thread-by-thread order runs on past a vote
    // only the lane that completes it (the others wait for the next round, after every other
    // thread has cleared its slot): at most one lost add per warp, 4 a block. One warp running alone to its
    // barrier loses every add: warps, those of warps 0-2 (3 x 32 a block, 8 blocks), whose slots
    // the next warp clears afterwards; warps-reverse, warp 3's adds to warp 0 (32 a block).
    for (const char* thread_order : {"forward", "reverse", "shuffle:1"}) {
        const int lost = warp_race_mismatches(thread_order);
        LP_CHECK(lost <= 8 * 4, "%s loses at most the completing lanes' adds: %d", thread_order, lost);
    }
    LP_CHECK(warp_race_mismatches("warps") == 8 * 96, "warps exposes every add: %d", warp_race_mismatches("warps"));
    LP_CHECK(warp_race_mismatches("warps-reverse") == 8 * 32, "warps-reverse exposes warp 3's: %d", warp_race_mismatches("warps-reverse"));
    // warps:SEED: a random runnable warp runs alone; some warp reaches its vote before the next one
    // clears, in most blocks, and the same seed gives the same order.
    const int w1 = warp_race_mismatches("warps:1"), w2 = warp_race_mismatches("warps:2");
    LP_CHECK(w1 >= 8 * 32 && w2 >= 8 * 32, "warps:SEED exposes the race in every block: %d, %d", w1, w2);
    LP_CHECK(warp_race_mismatches("warps:1") == w1, "the same seed gives the same warp order");
    for (const char* bad : {"backwards", "shuffle:", "shuffle:x", "shuffle:-1", "shuffle7", "warps:", "warps:x", "warp"}) {
        setenv("LAPERM_EMU_SCHEDULE", bad, 1);
        DeviceBuffer<int> out(32);
        expect_failure("test_barrier_loop", launch("test_barrier_loop", 1, 1, 1, 32, 1, 1, 0, out.ptr()),
                       {"LAPERM_EMU_SCHEDULE", bad, "forward, reverse, shuffle"});
    }
    if (saved != nullptr) setenv("LAPERM_EMU_SCHEDULE", original.c_str(), 1);
    else unsetenv("LAPERM_EMU_SCHEDULE");
    if (saved_threads != nullptr) setenv("LAPERM_EMU_THREADS", original_threads.c_str(), 1);
    else unsetenv("LAPERM_EMU_THREADS");
}

}  // namespace

int main() {
    registry_and_buffers();
    divergent_barrier();
    barrier_loop();
    concurrent_launches();
    shuffles();
    warp_sum_2d();
    ids();
    atomics();
    syncthreads_reductions();
    dynamic_shared_and_limits();
    bits_math();
    errors();
    schedules();
    return finish("emu_selftest");
}
