// gpu_crosscheck.cpp: runs the same launches on a real GPU (the PTX built by CMake, through the
// CUDA driver API loaded at run time: no CUDA SDK needed to build this) and on the emulator,
// and compares every output buffer. Kernels whose order of operations is fixed by the launch
// shape (everything here but the fast-math row) must agree bit for bit; that checks the
// emulator's barrier, shuffle and vote semantics and the no-contraction numerics on hardware.
//
//   laperm_gpu_crosscheck <dir with the kernels' .ptx> [dir with test_kernels.ptx]
//   laperm_gpu_crosscheck --emu-only     every case on the emulator alone (CI: the cases are valid
//                                        launches, whatever machine the GPU run will be on)
// Exit code 0: all equal; 1: a mismatch or error; 77: no GPU / driver (skipped).
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "emu_registry.h"
#include "test_kernels.cu"
#include "test_support.h"

LP_EMU_REGISTER(test_divergent_barrier)
LP_EMU_REGISTER(test_barrier_loop)
LP_EMU_REGISTER(test_shuffles)
LP_EMU_REGISTER(test_warp_sum_2d)
LP_EMU_REGISTER(test_ids)
LP_EMU_REGISTER(test_syncthreads_reductions)
LP_EMU_REGISTER(test_dynamic_shared)
LP_EMU_REGISTER(test_bits_math)

namespace {

using CUresult = int;
using CUdeviceptr = unsigned long long;

struct Driver {
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDriverGetVersion)(int*);
    CUresult (*cuDeviceGet)(int*, int);
    CUresult (*cuDeviceGetName)(char*, int, int);
    CUresult (*cuDeviceGetAttribute)(int*, int, int);
    CUresult (*cuDevicePrimaryCtxRetain)(void**, int);
    CUresult (*cuCtxSetCurrent)(void*);
    CUresult (*cuModuleLoadDataEx)(void**, const void*, unsigned, int*, void**);
    CUresult (*cuModuleGetFunction)(void**, void*, const char*);
    CUresult (*cuMemAlloc_v2)(CUdeviceptr*, size_t);
    CUresult (*cuMemFree_v2)(CUdeviceptr);
    CUresult (*cuMemcpyHtoD_v2)(CUdeviceptr, const void*, size_t);
    CUresult (*cuMemcpyDtoH_v2)(void*, CUdeviceptr, size_t);
    CUresult (*cuLaunchKernel)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
    CUresult (*cuCtxSynchronize)();
    CUresult (*cuGetErrorString)(CUresult, const char**);
};

Driver drv;
std::map<std::string, void*> modules;
std::string ptx_dir;
std::string test_ptx_dir;

std::string error_text(CUresult r) {
    const char* s = nullptr;
    if (drv.cuGetErrorString) drv.cuGetErrorString(r, &s);
    return std::to_string(r) + " " + (s ? s : "?");
}

#define CU(call)                                                                        \
    do {                                                                                \
        CUresult r_ = (call);                                                           \
        if (r_ != 0) throw std::runtime_error(std::string(#call) + ": " + error_text(r_)); \
    } while (0)

template <class F>
void bind(void* lib, F& f, const char* name) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    if (!f) throw std::runtime_error(std::string("libcuda.so.1 lacks ") + name);
}

bool load_driver() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) return false;
    bind(lib, drv.cuInit, "cuInit");
    bind(lib, drv.cuDriverGetVersion, "cuDriverGetVersion");
    bind(lib, drv.cuDeviceGet, "cuDeviceGet");
    bind(lib, drv.cuDeviceGetName, "cuDeviceGetName");
    bind(lib, drv.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    bind(lib, drv.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    bind(lib, drv.cuCtxSetCurrent, "cuCtxSetCurrent");
    bind(lib, drv.cuModuleLoadDataEx, "cuModuleLoadDataEx");
    bind(lib, drv.cuModuleGetFunction, "cuModuleGetFunction");
    bind(lib, drv.cuMemAlloc_v2, "cuMemAlloc_v2");
    bind(lib, drv.cuMemFree_v2, "cuMemFree_v2");
    bind(lib, drv.cuMemcpyHtoD_v2, "cuMemcpyHtoD_v2");
    bind(lib, drv.cuMemcpyDtoH_v2, "cuMemcpyDtoH_v2");
    bind(lib, drv.cuLaunchKernel, "cuLaunchKernel");
    bind(lib, drv.cuCtxSynchronize, "cuCtxSynchronize");
    bind(lib, drv.cuGetErrorString, "cuGetErrorString");
    return true;
}

void* function(const std::string& file, const char* kernel) {
    auto it = modules.find(file);
    if (it == modules.end()) {
        const std::string path = (file == "test_kernels.ptx" ? test_ptx_dir : ptx_dir) + "/" + file;
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot read " + path);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string text = ss.str();
        static char log[16384];
        int options[2] = {5, 6};  // CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
        void* values[2] = {log, reinterpret_cast<void*>(sizeof log)};
        void* mod = nullptr;
        CUresult r = drv.cuModuleLoadDataEx(&mod, text.c_str(), 2, options, values);
        if (r != 0) throw std::runtime_error("cuModuleLoadDataEx(" + file + "): " + error_text(r) + ": " + log);
        it = modules.emplace(file, mod).first;
    }
    void* f = nullptr;
    CU(drv.cuModuleGetFunction(&f, it->second, kernel));
    return f;
}

// A launch described once, run on both devices.
struct Arg {
    enum Kind { Buffer, Int, Float, Long, Words } kind;
    int buffer = -1;
    int i = 0;
    float f = 0;
    long long l = 0;   // long long and unsigned long long parameters (same 8 bytes)
    std::vector<unsigned> words = {};   // a struct passed by value (lp_divisor, ConvShape, PoolShape)
};
struct Case {
    std::string ptx;
    const char* kernel;
    unsigned grid[3];
    unsigned block[3];
    unsigned dynamic_shared;
    std::vector<std::vector<unsigned char>> buffers;  // initial contents
    std::vector<Arg> args;
    std::vector<bool> approximate;  // per buffer: compare as floats with a tolerance (fast-math rows)
    // Device addresses inside a buffer (a record of pointers, as gather_batch_v1's DataSetRecord):
    // each run writes buffer `target`'s address at byte `offset` of buffer `buffer`; the compare
    // puts the case's own bytes back there first (the two devices' addresses differ).
    struct Pointer {
        int buffer;
        std::size_t offset;
        int target;
    };
    std::vector<Pointer> pointers = {};
};

Arg buf(int b) { return Arg{Arg::Buffer, b}; }
Arg i32(int v) { return Arg{Arg::Int, -1, v}; }
Arg f32(float v) { return Arg{Arg::Float, -1, 0, v}; }
Arg i64(long long v) { return Arg{Arg::Long, -1, 0, 0, v}; }
Arg words(std::vector<unsigned> w) { return Arg{Arg::Words, -1, 0, 0, 0, std::move(w)}; }

Arg divisor(unsigned d) { return words(lp_test::divisor_words(d)); }

template <class T>
std::vector<unsigned char> bytes(const std::vector<T>& v) {
    std::vector<unsigned char> b(v.size() * sizeof(T));
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

std::mt19937 rng(7);
std::vector<float> floats(std::size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}
std::vector<int> ints(std::size_t n, int lo, int hi) {
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<int> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}
std::vector<unsigned char> poison(std::size_t n_bytes) { return std::vector<unsigned char>(n_bytes, 0xFF); }
std::vector<double> doubles(std::size_t n, double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    std::vector<double> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

std::vector<std::vector<unsigned char>> run_emu(const Case& c) {
    std::vector<std::vector<unsigned char>> b = c.buffers;
    for (const Case::Pointer& p : c.pointers) {
        const void* address = b[p.target].data();
        std::memcpy(b[p.buffer].data() + p.offset, &address, sizeof address);
    }
    for (auto& x : b) laperm_emu_register_buffer(x.data(), x.size());
    std::vector<void*> ptrs(c.args.size());
    std::vector<void*> args(c.args.size());
    for (std::size_t i = 0; i < c.args.size(); ++i) {
        const Arg& a = c.args[i];
        if (a.kind == Arg::Buffer) {
            ptrs[i] = b[a.buffer].data();
            args[i] = &ptrs[i];
        } else if (a.kind == Arg::Int) {
            args[i] = const_cast<int*>(&a.i);
        } else if (a.kind == Arg::Long) {
            args[i] = const_cast<long long*>(&a.l);
        } else if (a.kind == Arg::Words) {
            args[i] = const_cast<unsigned*>(a.words.data());
        } else {
            args[i] = const_cast<float*>(&a.f);
        }
    }
    int rc = laperm_emu_launch(c.kernel, c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1], c.block[2], c.dynamic_shared,
                               args.data());
    for (auto& x : b) laperm_emu_unregister_buffer(x.data());
    if (rc != 0) throw std::runtime_error(std::string("emulator: ") + laperm_emu_last_error());
    return b;
}

std::vector<std::vector<unsigned char>> run_gpu(const Case& c) {
    void* f = function(c.ptx, c.kernel);
    std::vector<CUdeviceptr> d(c.buffers.size());
    for (std::size_t i = 0; i < d.size(); ++i) CU(drv.cuMemAlloc_v2(&d[i], c.buffers[i].size()));
    std::vector<std::vector<unsigned char>> initial = c.buffers;
    for (const Case::Pointer& p : c.pointers) std::memcpy(initial[p.buffer].data() + p.offset, &d[p.target], sizeof(CUdeviceptr));
    for (std::size_t i = 0; i < d.size(); ++i) CU(drv.cuMemcpyHtoD_v2(d[i], initial[i].data(), initial[i].size()));
    std::vector<CUdeviceptr> ptrs(c.args.size());
    std::vector<void*> args(c.args.size());
    for (std::size_t i = 0; i < c.args.size(); ++i) {
        const Arg& a = c.args[i];
        if (a.kind == Arg::Buffer) {
            ptrs[i] = d[a.buffer];
            args[i] = &ptrs[i];
        } else if (a.kind == Arg::Int) {
            args[i] = const_cast<int*>(&a.i);
        } else if (a.kind == Arg::Long) {
            args[i] = const_cast<long long*>(&a.l);
        } else if (a.kind == Arg::Words) {
            args[i] = const_cast<unsigned*>(a.words.data());
        } else {
            args[i] = const_cast<float*>(&a.f);
        }
    }
    CU(drv.cuLaunchKernel(f, c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1], c.block[2], c.dynamic_shared, nullptr,
                          args.data(), nullptr));
    CU(drv.cuCtxSynchronize());
    std::vector<std::vector<unsigned char>> out(c.buffers.size());
    for (std::size_t i = 0; i < d.size(); ++i) {
        out[i].resize(c.buffers[i].size());
        CU(drv.cuMemcpyDtoH_v2(out[i].data(), d[i], out[i].size()));
        drv.cuMemFree_v2(d[i]);
    }
    return out;
}

int compare(const Case& c) {
    auto emu = run_emu(c);
    auto gpu = run_gpu(c);
    for (const Case::Pointer& p : c.pointers)
        for (auto* run : {&emu, &gpu}) std::memcpy((*run)[p.buffer].data() + p.offset, c.buffers[p.buffer].data() + p.offset, 8);
    int mismatches = 0;
    for (std::size_t b = 0; b < emu.size(); ++b) {
        const bool approx = b < c.approximate.size() && c.approximate[b];
        const std::size_t words = emu[b].size() / 4;
        for (std::size_t i = 0; i < words; ++i) {
            std::uint32_t e, g;
            std::memcpy(&e, &emu[b][i * 4], 4);
            std::memcpy(&g, &gpu[b][i * 4], 4);
            if (e == g) continue;
            if (approx) {
                float fe, fg;
                std::memcpy(&fe, &e, 4);
                std::memcpy(&fg, &g, 4);
                if (std::fabs(fe - fg) <= 2e-6f * std::fabs(fe) + 1e-30f || (std::isnan(fe) && std::isnan(fg))) continue;
                if (std::fabs(fe - fg) <= 1e-4f * std::fabs(fe)) continue;  // __expf/__logf/rsqrtf approximations
            }
            if (mismatches++ < 5) {
                float fe, fg;
                std::memcpy(&fe, &e, 4);
                std::memcpy(&fg, &g, 4);
                std::printf("  %s buffer %zu word %zu: emu 0x%08x (%g) gpu 0x%08x (%g)\n", c.kernel, b, i, e, fe, g, fg);
            }
        }
    }
    std::printf("%-28s %s\n", c.kernel, mismatches == 0 ? "identical" : "MISMATCH");
    return mismatches;
}

}  // namespace

// Every launch compared, built once (the emulator-only mode runs the same list).
std::vector<Case> build_cases() {
    std::vector<Case> cases;
    {
        const int n = 100003;
        cases.push_back({"axpy.ptx", "axpy_v1", {(n + 255) / 256, 1, 1}, {256, 1, 1}, 0,
                         {bytes(floats(n, -3, 3)), bytes(floats(n, -3, 3))}, {i32(n), f32(1.37f), buf(0), buf(1)}, {}});
        cases.push_back({"axpy.ptx", "axpy_v2", {7, 1, 1}, {128, 1, 1}, 0,
                         {bytes(floats(n, -3, 3)), bytes(floats(n, -3, 3))}, {i32(n), f32(-0.71f), buf(0), buf(1)}, {}});
        for (const char* k : {"reduce_sum_v1", "reduce_sum_v2"})
            cases.push_back({"reduce.ptx", k, {13, 1, 1}, {256, 1, 1}, 0, {bytes(floats(n, -1, 1)), poison(13 * 4)},
                             {i32(n), buf(0), buf(1)}, {}});
        cases.push_back({"scan.ptx", "scan_inclusive_v1", {(n + 511) / 512, 1, 1}, {512, 1, 1}, 0,
                         {bytes(floats(n, -1, 1)), poison(n * 4), poison(((n + 511) / 512) * 4)},
                         {i32(n), buf(0), buf(1), buf(2)}, {}});
        auto v = floats(n, 0, 0.001f);
        cases.push_back({"adam.ptx", "adam_v1", {40, 1, 1}, {256, 1, 1}, 0,
                         {bytes(floats(n, -1, 1)), bytes(floats(n, -0.1f, 0.1f)), bytes(floats(n, -0.01f, 0.01f)), bytes(v)},
                         {i32(n), f32(0.00123f), f32(0.9f), f32(0.999f), f32(1e-7f), buf(0), buf(1), buf(2), buf(3)}, {}});
    }
    {
        // The training kernels whose results the CPU backend reproduces bit for bit: the GPU
        // must give the emulator's words exactly (double statistics, the software exp/log of
        // the loss, the counter-based dropout, IEEE sqrt and division, no contraction).
        const int batch = 300, classes = 10;
        auto labels = ints(batch, 0, classes - 1);
        cases.push_back({"loss.ptx", "softmax_xent_rows_v1", {2, 1, 1}, {256, 1, 1}, 0,
                         {bytes(floats(batch * classes, -9, 9)), bytes(labels), poison(batch * classes * 4), poison(batch * 2 * 4)},
                         {i32(batch), i32(classes), buf(0), buf(1), buf(2), buf(3)}, {}});
        std::vector<float> per_example(batch * 2);
        for (int i = 0; i < batch; i++) { per_example[2 * i] = floats(1, 0, 5)[0]; per_example[2 * i + 1] = (float)(i % 2); }
        cases.push_back({"loss.ptx", "softmax_xent_total_v1", {1, 1, 1}, {256, 1, 1}, 0,
                         {bytes(per_example), bytes(std::vector<float>{0.25f, 2.0f})}, {i32(batch), buf(0), buf(1)}, {}});
        const int n = 4, c = 6, s = 49, length = n * c * s;
        auto variance = floats(c, 0.5f, 2.0f);
        cases.push_back({"batchnorm.ptx", "batchnorm_forward_training_v1", {(unsigned)c, 1, 1}, {256, 1, 1}, 0,
                         {bytes(floats(length, -2, 3)), bytes(floats(c, -1, 1)), bytes(floats(c, -1, 1)), bytes(floats(c, -0.1f, 0.1f)),
                          bytes(variance), poison(c * 4), poison(c * 4), poison(length * 4)},
                         {i32(n), i32(c), divisor(s), f32(1e-3f), f32(0.9f), buf(0), buf(1), buf(2), buf(3), buf(4), buf(5), buf(6), buf(7)}, {}});
        cases.push_back({"batchnorm.ptx", "batchnorm_backward_v1", {(unsigned)c, 1, 1}, {256, 1, 1}, 0,
                         {bytes(floats(length, -2, 3)), bytes(floats(length, -1, 1)), bytes(floats(c, -1, 1)), bytes(floats(c, -0.5f, 0.5f)),
                          bytes(floats(c, 0.5f, 2.0f)), poison(length * 4), poison(c * 4), poison(c * 4)},
                         {i32(n), i32(c), divisor(s), buf(0), buf(1), buf(2), buf(3), buf(4), buf(5), buf(6), buf(7)}, {}});
        const int chunks = 5;
        cases.push_back({"batchnorm.ptx", "batchnorm_forward_training_v2_statistics", {(unsigned)c, 1, 1}, {256, 1, 1}, 0,
                         {bytes(doubles(c * chunks, -40, 60)), bytes(doubles(c * chunks, 1, 90)), bytes(floats(c, -0.1f, 0.1f)),
                          bytes(variance), poison(c * 4), poison(c * 4)},
                         {i32(n), i32(s), i32(chunks), f32(1e-3f), f32(0.9f), buf(0), buf(1), buf(2), buf(3), buf(4), buf(5)}, {}});
        const long long elements = 100003;
        std::vector<long long> step_block = {4242, 0, 0, 0};   // StepScalars: step, then epoch.. adam_t (32 bytes)
        cases.push_back({"dropout.ptx", "dropout_forward_v1", {64, 1, 1}, {256, 1, 1}, 0,
                         {bytes(step_block), bytes(floats(elements, -3, 3)), poison(elements * 4), poison(elements)},
                         {i64(elements), f32(0.4f), f32(1.0f / 0.6f), i64(0x1234567890ABCDEFll), buf(0), buf(1), buf(2), buf(3)}, {}});
        const int planes = 2 * 3, h = 8, w = 8, hp = 11, wp = 11;
        cases.push_back({"conv.ptx", "conv_pad_images_v1", {2, 1, 1}, {256, 1, 1}, 0, {bytes(floats(planes * h * w, -1, 1)), poison(planes * hp * wp * 4)},
                         {i32(planes), i32(h), i32(w), divisor(hp), divisor(wp), i32(1), i32(1), buf(0), buf(1)}, {}});
        cases.push_back({"conv.ptx", "conv_crop_images_v1", {2, 1, 1}, {256, 1, 1}, 0, {bytes(floats(planes * hp * wp, -1, 1)), poison(planes * h * w * 4)},
                         {i32(planes), divisor(h), divisor(w), i32(hp), i32(wp), i32(1), i32(1), buf(0), buf(1)}, {}});
    }
    {
        // The index arithmetic of the layout kernels (fast divisors, laperm/fast_divide.cuh): a
        // stride-2 convolution with asymmetric padding over images [1, 3) of 3, grids smaller than
        // the work so every thread takes several grid-stride steps.
        const int images = 3, n0 = 1, count = 2, ch = 3, h = 9, w = 7, k = 3, stride = 2, top = 0, left = 1, oh = 4, ow = 4;
        const int rows = ch * k * k, plane = oh * ow, width = count * plane;
        std::vector<unsigned> shape = {(unsigned)n0, (unsigned)count, (unsigned)ch, (unsigned)h, (unsigned)w, (unsigned)k, (unsigned)k,
                                       (unsigned)stride, (unsigned)top, (unsigned)left, (unsigned)oh, (unsigned)ow};
        for (unsigned d : {(unsigned)plane, (unsigned)count, (unsigned)k, (unsigned)k, (unsigned)ow, (unsigned)w, (unsigned)h,
                           (unsigned)ch, (unsigned)stride}) {
            auto dw = lp_test::divisor_words(d);
            shape.insert(shape.end(), dw.begin(), dw.end());
        }
        cases.push_back({"im2col.ptx", "im2col_v1", {2, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(images * ch * h * w, -1, 1)), poison(rows * width * 4)},
                         {words(shape), buf(0), buf(1), i64(width), i64(plane)}, {}});
        cases.push_back({"im2col.ptx", "col2im_v1", {2, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(rows * width, -1, 1)), poison(images * ch * h * w * 4)},
                         {words(shape), buf(0), buf(1), i64(width), i64(plane)}, {}});
        cases.push_back({"conv.ptx", "conv_gather_output_v1", {1, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(images * 5 * plane, -1, 1)), poison(5 * width * 4)},
                         {i32(n0), i32(count), divisor(5), divisor(plane), buf(0), buf(1)}, {}});
        cases.push_back({"conv.ptx", "conv_scatter_output_v1", {1, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(5 * width, -1, 1)), poison(images * 5 * plane * 4)},
                         {i32(n0), i32(count), divisor(5), divisor(plane), buf(0), buf(1)}, {}});
        const int planes = images * ch, window = 2, pool_oh = 4, pool_ow = 3, inputs = planes * h * w, outputs = planes * pool_oh * pool_ow;
        std::vector<unsigned> pool = {(unsigned)planes, (unsigned)h, (unsigned)w, (unsigned)window, (unsigned)stride, (unsigned)pool_oh,
                                      (unsigned)pool_ow};
        for (unsigned d : {(unsigned)w, (unsigned)h, (unsigned)pool_ow, (unsigned)pool_oh, (unsigned)stride}) {
            auto dw = lp_test::divisor_words(d);
            pool.insert(pool.end(), dw.begin(), dw.end());
        }
        cases.push_back({"pool.ptx", "maxpool_forward_v1", {1, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(inputs, -1, 1)), poison(outputs * 4), poison(outputs * 4)}, {words(pool), buf(0), buf(1), buf(2)}, {}});
        cases.push_back({"pool.ptx", "maxpool_backward_v1", {1, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(outputs, -1, 1)), bytes(ints(outputs, 0, inputs - 1)), poison(inputs * 4)},
                         {words(pool), buf(0), buf(1), buf(2)}, {}});
        cases.push_back({"pool.ptx", "avgpool_backward_v1", {1, 1, 1}, {64, 1, 1}, 0,
                         {bytes(floats(outputs, -1, 1)), poison(inputs * 4)}, {words(pool), buf(0), buf(1)}, {}});
        const long long length = (long long)images * ch * plane;
        cases.push_back({"bias.ptx", "bias_add_v1", {1, 1, 1}, {64, 1, 1}, 0, {bytes(floats(length, -1, 1)), bytes(floats(ch, -1, 1))},
                         {i64(length), divisor(ch), divisor(plane), buf(0), buf(1)}, {}});
    }
    {
        // The batch gather (data.cu): a data set of 100 random 1x28x28 images on the device,
        // reached through its DataSetRecord; the step block's batch of 32 starts at position 64 of
        // epoch 3's order. Plain and augmented (rotation, zoom, shift, flip). Thread 0 finds each
        // image's record and publishes it through shared memory: the launch clang 14 miscompiled
        // (the other threads read the record before the barrier; laperm/device.cuh has the story).
        const int count = 100, height = 28, width = 28, batch = 32;
        std::vector<unsigned char> record(48, 0);   // images, labels (device addresses), count, channels, height, width
        const int shape[4] = {count, 1, height, width};
        std::memcpy(record.data() + 16, shape, sizeof shape);
        std::vector<unsigned char> images(count * height * width), labels(count);
        for (auto& x : images) x = (unsigned char)ints(1, 0, 255)[0];
        for (auto& x : labels) x = (unsigned char)ints(1, 0, 9)[0];
        struct {
            long long step = 77;
            int epoch = 3, batch_start = 64, batch_size = batch;
            float learning_rate = 0.001f;
            long long adam_t = 77;
        } scalars;
        std::vector<unsigned char> step_block(sizeof scalars);
        std::memcpy(step_block.data(), &scalars, sizeof scalars);
        for (bool augment : {false, true}) {
            Case gather{"data.ptx", "gather_batch_v1", {batch, 1, 1}, {256, 1, 1}, 0,
                        {record, images, labels, step_block, poison(batch * height * width * 4), poison(batch * 4)},
                        {buf(0), i64(0x0123456789ABCDEFll), buf(3), i32(-1), i64(0x5DEECE66Dll), f32(augment ? 15.0f : 0.0f),
                         f32(augment ? 0.1f : 0.0f), f32(augment ? 0.1f * width : 0.0f), f32(augment ? 0.1f * height : 0.0f),
                         i32(augment ? 1 : 0), buf(4), buf(5)},
                        {}};
            gather.pointers = {{0, 0, 1}, {0, 8, 2}};
            cases.push_back(std::move(gather));
        }
    }
    const std::string t = "test_kernels.ptx";
    cases.push_back({t, "test_divergent_barrier", {3, 1, 1}, {256, 1, 1}, 0, {poison(3 * 256 * 4)}, {i32(17), buf(0)}, {}});
    cases.push_back({t, "test_barrier_loop", {2, 1, 1}, {1024, 1, 1}, 0, {poison(8)}, {buf(0)}, {}});
    cases.push_back({t, "test_shuffles", {1, 1, 1}, {32, 1, 1}, 0, {bytes(ints(32, 1, 1000)), poison(14 * 32 * 4)},
                     {buf(0), buf(1)}, {}});
    cases.push_back({t, "test_warp_sum_2d", {1, 1, 1}, {16, 4, 1}, 0, {bytes(floats(64, -1, 1)), poison(8)}, {buf(0), buf(1)}, {}});
    cases.push_back({t, "test_ids", {3, 2, 2}, {4, 3, 2}, 0, {poison(3 * 2 * 2 * 4 * 3 * 2 * 4)}, {buf(0)}, {}});
    cases.push_back({t, "test_syncthreads_reductions", {1, 1, 1}, {128, 1, 1}, 0, {bytes(ints(128, -10, 30)), poison(12)},
                     {buf(0), buf(1)}, {}});
    cases.push_back({t, "test_dynamic_shared", {2, 1, 1}, {128, 1, 1}, 128 * 4, {bytes(floats(256, -5, 5)), poison(256 * 4)},
                     {buf(0), buf(1)}, {}});
    // Halves first: rintf rounds them to even (clang's __nvvm_round_f rounded them away from zero).
    std::vector<float> math_inputs = floats(64, -20, 20);
    const float halves[] = {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 3.5f, -4.5f};
    std::copy(std::begin(halves), std::end(halves), math_inputs.begin());
    cases.push_back({t, "test_bits_math", {1, 1, 1}, {64, 1, 1}, 0, {bytes(math_inputs), poison(64 * 6 * 4), poison(64 * 8 * 4)},
                     {buf(0), buf(1), buf(2)}, {false, false, true}});

    return cases;
}

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a launch that hangs the GPU still shows which one
    if (argc > 1 && std::string(argv[1]) == "--emu-only") {
        int failed = 0;
        std::vector<Case> cases = build_cases();
        for (const Case& c : cases) {
            try {
                run_emu(c);
                std::printf("%-28s runs on the emulator\n", c.kernel);
            } catch (const std::exception& e) {
                std::printf("%-28s ERROR %s\n", c.kernel, e.what());
                ++failed;
            }
        }
        std::printf("%d of %zu cases failed on the emulator\n", failed, cases.size());
        return failed == 0 ? 0 : 1;
    }
    ptx_dir = argc > 1 ? argv[1] : ".";
    test_ptx_dir = argc > 2 ? argv[2] : ptx_dir;
    try {
        if (!load_driver()) {
            std::printf("no libcuda.so.1: skipped\n");
            return 77;
        }
        if (drv.cuInit(0) != 0) {
            std::printf("cuInit failed: skipped\n");
            return 77;
        }
        int version = 0, dev = 0, major = 0, minor = 0;
        char name[256] = {};
        CU(drv.cuDriverGetVersion(&version));
        CU(drv.cuDeviceGet(&dev, 0));
        CU(drv.cuDeviceGetName(name, sizeof name, dev));
        CU(drv.cuDeviceGetAttribute(&major, 75, dev));
        CU(drv.cuDeviceGetAttribute(&minor, 76, dev));
        std::printf("device: %s (sm_%d%d), driver %d\n", name, major, minor, version);
        void* ctx = nullptr;
        CU(drv.cuDevicePrimaryCtxRetain(&ctx, dev));
        CU(drv.cuCtxSetCurrent(ctx));

        std::vector<Case> cases = build_cases();
        int failed = 0;
        for (const Case& c : cases) {
            try {
                failed += compare(c) != 0;
            } catch (const std::exception& e) {
                std::printf("%-28s ERROR %s\n", c.kernel, e.what());
                ++failed;
            }
        }
        std::printf("%d of %zu launches differ or failed\n", failed, cases.size());
        return failed == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
}
