// standin_cublas.cpp: a libcublas.so.12 for the stand-in driver (standin_driver.cpp).
//
// The cuBLAS calls the runtime makes, with cublas_api.h's prototypes and argument checks:
// column-major GEMMs queued on the handle's stream through the stand-in driver (so they run in
// stream order and are captured into graphs like any cuBLAS kernel), computed on the host with
// TF32 inputs only when the math mode or compute type asks for it. With beta = 0, C is not read.
// The sums are not a model of cuBLAS's rounding (which depends on the kernel its heuristics pick:
// one FMA chain over k, or split-K partials): they run in double and round once, or with
// LAPERM_STANDIN_SUMS=float as one float FMA chain over k (standin.h), so the stand-in checks the
// runtime's calls and their order, and a real GPU checks cuBLAS's accuracy.
#include "standin.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

namespace {

// cublasStatus_t values (cublas_api.h).
enum : int {
    kSuccess = 0, kNotInitialized = 1, kAllocFailed = 3, kInvalidValue = 7, kArchMismatch = 8,
    kMappingError = 11, kExecutionFailed = 13, kInternalError = 14, kNotSupported = 15, kLicenseError = 16,
};

struct Handle {
    void* stream = nullptr;
    std::uint64_t workspace = 0;
    std::size_t workspace_bytes = 0;
    int math_mode = 0;
};

struct Handles {
    std::mutex mutex;
    std::set<Handle*> live;
};

Handles& handles() {
    static Handles instance;
    return instance;
}

Handle* resolve(void* handle) {
    std::lock_guard lock(handles().mutex);
    auto* h = static_cast<Handle*>(handle);
    return handles().live.contains(h) ? h : nullptr;
}

// Rounds to TF32 (10 explicit mantissa bits, to nearest even), as a tensor core reads FP32 inputs.
float tf32(float x) {
    if (!std::isfinite(x)) return x;
    std::uint32_t bits;
    std::memcpy(&bits, &x, 4);
    bits += 0xFFFu + ((bits >> 13) & 1u);
    bits &= ~0x1FFFu;
    std::memcpy(&x, &bits, 4);
    return x;
}

// The last element a column-major rows x cols operand with leading dimension ld touches, plus one.
std::size_t extent(int rows, int cols, int ld) {
    return rows == 0 || cols == 0 ? 0 : std::size_t(cols - 1) * std::size_t(ld) + std::size_t(rows);
}

struct Gemm {
    int transa, transb, m, n, k;
    float alpha, beta;
    std::uint64_t a, b, c;
    int lda, ldb, ldc;
    long long stride_a = 0, stride_b = 0, stride_c = 0;
    int batch = 1;
    bool round_tf32 = false;
    bool float_sums = laperm_standin_float_sums();
};

int check(const Gemm& g) {
    if ((g.transa != 0 && g.transa != 1 && g.transa != 2) || (g.transb != 0 && g.transb != 1 && g.transb != 2)) return kInvalidValue;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return kInvalidValue;
    int a_rows = g.transa == 0 ? g.m : g.k, a_cols = g.transa == 0 ? g.k : g.m;
    int b_rows = g.transb == 0 ? g.k : g.n, b_cols = g.transb == 0 ? g.n : g.k;
    if (g.lda < std::max(1, a_rows) || g.ldb < std::max(1, b_rows) || g.ldc < std::max(1, g.m)) return kInvalidValue;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return kSuccess;
    auto covers = [&](std::uint64_t base, std::size_t elements, long long stride) {
        if (elements == 0) return true;
        std::size_t last = elements + std::size_t(g.batch - 1) * std::size_t(stride < 0 ? 0 : stride);
        return laperm_standin_check_device_range(base, last * sizeof(float)) == 0;
    };
    bool reads_ab = g.k > 0 && g.alpha != 0.0f;
    if (reads_ab && (!covers(g.a, extent(a_rows, a_cols, g.lda), g.stride_a) || !covers(g.b, extent(b_rows, b_cols, g.ldb), g.stride_b)))
        return kInvalidValue;
    if (!covers(g.c, extent(g.m, g.n, g.ldc), g.stride_c)) return kInvalidValue;
    return kSuccess;
}

void run(const Gemm& g) {
    auto in = [&](float v) { return g.round_tf32 ? tf32(v) : v; };
    for (int batch = 0; batch < g.batch; batch++) {
        const float* a = reinterpret_cast<const float*>(g.a) + batch * g.stride_a;
        const float* b = reinterpret_cast<const float*>(g.b) + batch * g.stride_b;
        float* c = reinterpret_cast<float*>(g.c) + batch * g.stride_c;
        for (int j = 0; j < g.n; j++)
            for (int i = 0; i < g.m; i++) {
                double sum = 0.0;
                if (g.alpha != 0.0f)
                    for (int l = 0; l < g.k; l++) {
                        float x = g.transa == 0 ? a[i + std::size_t(l) * g.lda] : a[l + std::size_t(i) * g.lda];
                        float y = g.transb == 0 ? b[l + std::size_t(j) * g.ldb] : b[j + std::size_t(l) * g.ldb];
                        laperm_standin_madd(sum, in(x), in(y), g.float_sums);
                    }
                float& out = c[i + std::size_t(j) * g.ldc];
                out = g.beta == 0.0f ? float(g.alpha * sum) : float(g.alpha * sum + double(g.beta) * out);
            }
    }
}

int submit(Handle* handle, const char* name, const Gemm& g) {
    if (int r = check(g); r != kSuccess) return r;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return kSuccess;
    if (int r = laperm_standin_enqueue(handle->stream, name, [g] { run(g); return 0; }); r != 0) return kExecutionFailed;
    return kSuccess;
}

}  // namespace

extern "C" {
#define API LAPERM_STANDIN_EXPORT

API const char* cublasGetStatusName(int status) {
    switch (status) {
    case kSuccess: return "CUBLAS_STATUS_SUCCESS";
    case kNotInitialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case kAllocFailed: return "CUBLAS_STATUS_ALLOC_FAILED";
    case kInvalidValue: return "CUBLAS_STATUS_INVALID_VALUE";
    case kArchMismatch: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case kMappingError: return "CUBLAS_STATUS_MAPPING_ERROR";
    case kExecutionFailed: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case kInternalError: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case kNotSupported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case kLicenseError: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "<unrecognized>";
    }
}

API const char* cublasGetStatusString(int status) {
    switch (status) {
    case kSuccess: return "success";
    case kNotInitialized: return "the library was not initialized";
    case kInvalidValue: return "an invalid numeric value was used as an argument";
    case kExecutionFailed: return "the GPU program failed to execute";
    case kNotSupported: return "the functionality requested is not supported";
    default: return "unknown error";
    }
}

API int cublasGetProperty(int type, int* value) {
    if (value == nullptr) return kInvalidValue;
    switch (type) {   // libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
    case 0: *value = 12; return kSuccess;
    case 1: *value = 8; return kSuccess;
    case 2: *value = 0; return kSuccess;
    default: return kInvalidValue;
    }
}

API int cublasCreate_v2(void** handle) {
    if (handle == nullptr) return kInvalidValue;
    // cuBLAS works on the calling thread's current context (the runtime API's device).
    if (laperm_standin_check_context() != 0) return kNotInitialized;
    auto* h = new Handle();
    std::lock_guard lock(handles().mutex);
    handles().live.insert(h);
    *handle = h;
    return kSuccess;
}

API int cublasDestroy_v2(void* handle) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    std::lock_guard lock(handles().mutex);
    handles().live.erase(h);
    delete h;
    return kSuccess;
}

API int cublasGetVersion_v2(void* handle, int* version) {
    if (resolve(handle) == nullptr) return kNotInitialized;
    if (version == nullptr) return kInvalidValue;
    *version = 120800;
    return kSuccess;
}

API int cublasSetStream_v2(void* handle, void* stream) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    h->stream = stream;
    h->workspace = 0;   // as cuBLAS: a new stream goes back to the default workspace pool
    h->workspace_bytes = 0;
    return kSuccess;
}

API int cublasSetWorkspace_v2(void* handle, void* workspace, std::size_t bytes) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    auto pointer = reinterpret_cast<std::uint64_t>(workspace);
    if (bytes > 0 && (pointer % 256 != 0 || laperm_standin_check_device_range(pointer, bytes) != 0)) return kInvalidValue;
    h->workspace = pointer;
    h->workspace_bytes = bytes;
    return kSuccess;
}

API int cublasSetMathMode(void* handle, int mode) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    int base = mode & 0xF;   // the low bits; CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION is 16
    if (base != 0 && base != 1 && base != 2 && base != 3) return kInvalidValue;
    h->math_mode = mode;
    return kSuccess;
}

API int cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
                       const float* b, int ldb, const float* beta, float* c, int ldc) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    if (alpha == nullptr || beta == nullptr) return kInvalidValue;
    Gemm g{transa, transb, m, n, k, *alpha, *beta, reinterpret_cast<std::uint64_t>(a), reinterpret_cast<std::uint64_t>(b),
           reinterpret_cast<std::uint64_t>(c), lda, ldb, ldc};
    g.round_tf32 = (h->math_mode & 0xF) == 3;   // CUBLAS_TF32_TENSOR_OP_MATH
    return submit(h, "cublasSgemm_v2", g);
}

API int cublasSgemmStridedBatched(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a,
                                  int lda, long long stride_a, const float* b, int ldb, long long stride_b, const float* beta, float* c,
                                  int ldc, long long stride_c, int batch) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    if (alpha == nullptr || beta == nullptr) return kInvalidValue;
    Gemm g{transa, transb, m, n, k, *alpha, *beta, reinterpret_cast<std::uint64_t>(a), reinterpret_cast<std::uint64_t>(b),
           reinterpret_cast<std::uint64_t>(c), lda, ldb, ldc, stride_a, stride_b, stride_c, batch};
    g.round_tf32 = (h->math_mode & 0xF) == 3;
    return submit(h, "cublasSgemmStridedBatched", g);
}

// FP32 data with an FP32 compute type only (what the runtime uses); anything else is refused.
API int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a, int a_type, int lda,
                     const void* b, int b_type, int ldb, const void* beta, void* c, int c_type, int ldc, int compute_type, int algorithm) {
    Handle* h = resolve(handle);
    if (h == nullptr) return kNotInitialized;
    if (alpha == nullptr || beta == nullptr) return kInvalidValue;
    if (a_type != 0 || b_type != 0 || c_type != 0) return kNotSupported;                    // CUDA_R_32F
    if (compute_type != 68 && compute_type != 69 && compute_type != 77) return kNotSupported; // 32F, 32F_PEDANTIC, 32F_FAST_TF32
    if (algorithm < -1 || algorithm > 23) return kInvalidValue;
    Gemm g{transa, transb, m, n, k, *static_cast<const float*>(alpha), *static_cast<const float*>(beta),
           reinterpret_cast<std::uint64_t>(a), reinterpret_cast<std::uint64_t>(b), reinterpret_cast<std::uint64_t>(c), lda, ldb, ldc};
    g.round_tf32 = compute_type == 77 || (compute_type == 68 && (h->math_mode & 0xF) == 3);
    return submit(h, "cublasGemmEx", g);
}

}  // extern "C"
