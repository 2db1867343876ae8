// kernel_smoke.cpp: the first production kernels (axpy, reduce, scan, adam) on the emulator
// against plain C++ references, through the C ABI only. Inputs are random, outputs poisoned
// (all-ones bytes = NaN) before each launch. Elementwise kernels must match bit for bit;
// reductions and scans use integer-valued floats (exact in any order) plus a tolerance run.
#include <cmath>
#include <memory>

#include "test_support.h"

using namespace lp_test;

namespace {

std::mt19937 rng(2024);

std::vector<float> random_floats(std::size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

std::vector<float> random_integers(std::size_t n, int lo, int hi) {
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(d(rng));
    return v;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void copy_in(DeviceBuffer<float>& dst, const std::vector<float>& src) { std::memcpy(dst.ptr(), src.data(), src.size() * 4); }

void axpy() {
    for (const char* kernel : {"axpy_v1", "axpy_v2"}) {
        for (int n : {1, 255, 256, 1000, 4097}) {
            auto x = random_floats(n, -3, 3), y = random_floats(n, -3, 3);
            const float a = random_floats(1, -2, 2)[0];
            DeviceBuffer<float> dx(n), dy(n);
            copy_in(dx, x);
            copy_in(dy, y);
            unsigned grid = std::string(kernel) == "axpy_v1" ? (n + 255) / 256 : 3;
            if (!launch_ok(kernel, grid, 256, 0, n, a, static_cast<const float*>(dx.ptr()), dy.ptr())) continue;
            for (int i = 0; i < n; ++i) {
                float e = a * x[i] + y[i];
                LP_CHECK(same_bits(dy[i], e), "%s n=%d i=%d: %.9g != %.9g", kernel, n, i, dy[i], e);
            }
        }
    }
}

// Two-stage sum: `blocks` partials, then one block over them.
float device_sum(const char* kernel, const std::vector<float>& x, unsigned blocks, unsigned block) {
    const int n = static_cast<int>(x.size());
    DeviceBuffer<float> dx(n), partial(blocks), total(1);
    copy_in(dx, x);
    if (!launch_ok(kernel, blocks, block, 0, n, static_cast<const float*>(dx.ptr()), partial.ptr())) return NAN;
    if (!launch_ok(kernel, 1, block, 0, static_cast<int>(blocks), static_cast<const float*>(partial.ptr()), total.ptr()))
        return NAN;
    return total[0];
}

void reduce() {
    for (const char* kernel : {"reduce_sum_v1", "reduce_sum_v2"}) {
        for (int n : {1, 31, 1000, 100000}) {
            for (unsigned block : {32u, 256u, 1024u}) {
                auto xi = random_integers(n, -1000, 1000);
                double e = 0;
                for (float v : xi) e += v;
                float got = device_sum(kernel, xi, 7, block);
                LP_CHECK(got == static_cast<float>(e), "%s n=%d block=%u integers: %.9g != %.9g", kernel, n, block, got, e);
                auto xf = random_floats(n, -1, 1);
                double ef = 0, abs_sum = 0;
                for (float v : xf) {
                    ef += v;
                    abs_sum += std::fabs(v);
                }
                float gotf = device_sum(kernel, xf, 7, block);
                LP_CHECK(std::fabs(gotf - ef) <= 1e-6 * abs_sum + 1e-6, "%s n=%d block=%u floats: %.9g != %.9g", kernel, n, block,
                         gotf, ef);
            }
        }
    }
}

void scan() {
    for (int n : {1, 32, 1000, 65536}) {
        for (unsigned block : {32u, 256u, 1024u}) {
            const unsigned tiles = (static_cast<unsigned>(n) + block - 1) / block;
            if (tiles > block) continue;  // two levels cover n <= block^2
            auto x = random_integers(n, -100, 100);
            DeviceBuffer<float> dx(n), dy(n), totals(tiles);
            copy_in(dx, x);
            float* no_totals = nullptr;
            if (!launch_ok("scan_inclusive_v1", tiles, block, 0, n, static_cast<const float*>(dx.ptr()), dy.ptr(), totals.ptr()))
                continue;
            if (tiles > 1) {
                if (!launch_ok("scan_inclusive_v1", 1, block, 0, static_cast<int>(tiles), static_cast<const float*>(totals.ptr()),
                               totals.ptr(), no_totals))
                    continue;
                if (!launch_ok("scan_add_offsets_v1", tiles, block, 0, n, dy.ptr(), static_cast<const float*>(totals.ptr())))
                    continue;
            }
            double running = 0;
            int bad = 0;
            for (int i = 0; i < n; ++i) {
                running += x[i];
                if (dy[i] != static_cast<float>(running) && bad++ < 3)
                    LP_CHECK(false, "scan n=%d block=%u i=%d: %.9g != %.9g", n, block, i, dy[i], running);
            }
        }
    }
}

struct AdamRef {
    float lr_t, b1, b2, eps;
    void step(float& w, float g, float& m, float& v) const {
        m = b1 * m + (1.0f - b1) * g;
        v = b2 * v + (1.0f - b2) * g * g;
        w = w - lr_t * m / (std::sqrt(v) + eps);
    }
};

void adam() {
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
    const long t = 7;
    const float lr_t = static_cast<float>(lr * std::sqrt(1.0 - std::pow(static_cast<double>(b2), t)) /
                                          (1.0 - std::pow(static_cast<double>(b1), t)));
    const AdamRef ref{lr_t, b1, b2, eps};
    for (int n : {1, 1000, 5000}) {
        auto w = random_floats(n, -1, 1), g = random_floats(n, -0.1f, 0.1f), m = random_floats(n, -0.01f, 0.01f),
             v = random_floats(n, 0, 0.001f);
        DeviceBuffer<float> dw(n), dg(n), dm(n), dv(n);
        copy_in(dw, w);
        copy_in(dg, g);
        copy_in(dm, m);
        copy_in(dv, v);
        if (!launch_ok("adam_v1", 4, 128, 0, n, lr_t, b1, b2, eps, dw.ptr(), static_cast<const float*>(dg.ptr()), dm.ptr(), dv.ptr()))
            continue;
        for (int i = 0; i < n; ++i) {
            float ew = w[i], em = m[i], ev = v[i];
            ref.step(ew, g[i], em, ev);
            LP_CHECK(same_bits(dw[i], ew) && same_bits(dm[i], em) && same_bits(dv[i], ev), "adam_v1 n=%d i=%d: w %.9g/%.9g", n, i,
                     dw[i], ew);
        }
    }

    // Multi-tensor: three tensors of different lengths in one launch.
    struct AdamTensor {
        float* w;
        const float* g;
        float* m;
        float* v;
        long long length;
    };
    static_assert(sizeof(AdamTensor) == 40);
    const int lengths[3] = {17, 1000, 333};
    std::vector<std::vector<float>> hw, hg, hm, hv;
    std::vector<std::unique_ptr<DeviceBuffer<float>>> bufs;
    DeviceBuffer<AdamTensor> table(3);
    for (int k = 0; k < 3; ++k) {
        int n = lengths[k];
        hw.push_back(random_floats(n, -1, 1));
        hg.push_back(random_floats(n, -0.1f, 0.1f));
        hm.push_back(random_floats(n, -0.01f, 0.01f));
        hv.push_back(random_floats(n, 0, 0.001f));
        for (auto* src : {&hw.back(), &hg.back(), &hm.back(), &hv.back()}) {
            bufs.push_back(std::make_unique<DeviceBuffer<float>>(n));
            copy_in(*bufs.back(), *src);
        }
        table[k] = AdamTensor{bufs[k * 4]->ptr(), bufs[k * 4 + 1]->ptr(), bufs[k * 4 + 2]->ptr(), bufs[k * 4 + 3]->ptr(), n};
    }
    int rc = launch("adam_multi_v1", 2, 3, 1, 64, 1, 1, 0, 3, lr_t, b1, b2, eps, static_cast<const AdamTensor*>(table.ptr()));
    LP_CHECK(rc == 0, "%s", laperm_emu_last_error());
    for (int k = 0; k < 3 && rc == 0; ++k)
        for (int i = 0; i < lengths[k]; ++i) {
            float ew = hw[k][i], em = hm[k][i], ev = hv[k][i];
            ref.step(ew, hg[k][i], em, ev);
            LP_CHECK(same_bits((*bufs[k * 4])[i], ew) && same_bits((*bufs[k * 4 + 2])[i], em) && same_bits((*bufs[k * 4 + 3])[i], ev),
                     "adam_multi_v1 tensor %d i=%d", k, i);
        }
}

}  // namespace

int main() {
    axpy();
    reduce();
    scan();
    adam();
    return finish("emu_kernel_smoke");
}
