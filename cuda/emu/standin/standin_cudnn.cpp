// standin_cudnn.cpp: a libcudnn.so.9 for the stand-in driver (standin_driver.cpp).
//
// The legacy cuDNN calls the runtime makes (cudnn_graph.h, cudnn_ops.h and cudnn_cnn.h of cuDNN
// 9: handle, tensor/filter/convolution/pooling descriptors, the three convolution directions with
// their algorithm search and workspace queries, pooling, spatial batch-norm), with the checks
// cuDNN makes on them, queued on the handle's stream through the stand-in driver (so they run in
// stream order and are captured into graphs like cuDNN's kernels), computed on the host.
//
// What it keeps of cuDNN's rules, so that a mistake in our calls shows here and not first on a GPU:
//   - descriptors are typed (a filter descriptor where a tensor one belongs is BAD_PARAM) and must
//     be set before use; shapes must agree (the convolution's output dims, 1 x C x 1 x 1
//     batch-norm parameters, the pooling output) or the call is BAD_PARAM;
//   - every data pointer must lie inside one device allocation (checked at the call and again when
//     the queued work runs, so a graph replaying freed memory faults) and be 4-byte aligned;
//   - an algorithm with a workspace needs one at least as large as its query said, inside one
//     allocation; the queued work scribbles over it (NaN bytes) before computing, as a real
//     kernel's scratch would, so a workspace shared with live data shows;
//   - the algorithm searches offer what cuDNN offers for FP32: backward algorithms that are not
//     deterministic first (as cuDNN measures them fastest), entries whose status is NOT_SUPPORTED
//     last; cudnnFind* allocates its own buffers and synchronises the handle's stream (so it is
//     refused while the stream captures, as on a GPU);
//   - alpha and beta blend as cuDNN's do: with beta = 0 the output is not read (poison cannot leak);
//   - cudnnDestroy synchronises the context, as cuDNN's does.
// The convolutions' sums run in double and round once, or with LAPERM_STANDIN_SUMS=float as float
// FMA chains (standin.h); pooling and batch-norm sum in double: this is no model of cuDNN's
// rounding or of its speed, only of its interface; a GPU checks the rest.
#include "standin.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <vector>

// The stand-in driver's exports (cuda.h prototypes), for the searches' own buffers.
extern "C" {
int cuMemAlloc_v2(std::uint64_t* pointer, std::size_t bytes);
int cuMemFree_v2(std::uint64_t pointer);
int cuStreamSynchronize(void* stream);
int cuCtxSynchronize(void);
}

namespace {

// cudnnStatus_t values of cuDNN 9 (cudnn_graph.h).
enum : int {
    kSuccess = 0,
    kNotInitialized = 1001,
    kBadParam = 2000, kBadParamNullPointer = 2002, kBadParamMisalignedPointer = 2003, kBadParamShapeMismatch = 2008,
    kNotSupported = 3000,
    kInternalError = 4000, kDeviceAllocationFailed = 4004,
    kExecutionFailed = 5000,
};

// Enum values of cudnn_graph.h / cudnn_ops.h / cudnn_cnn.h.
constexpr int kFloat = 0;                                       // CUDNN_DATA_FLOAT
constexpr int kNchw = 0, kNhwc = 1;                             // cudnnTensorFormat_t
constexpr int kConvolution = 0, kCrossCorrelation = 1;          // cudnnConvolutionMode_t
constexpr int kDefaultMath = 0, kFmaMath = 3;                   // cudnnMathType_t (1, 2: tensor ops; reported as set)
constexpr int kNonDeterministic = 0, kDeterministic = 1;        // cudnnDeterminism_t
constexpr int kPoolMax = 0, kPoolAverageInclude = 1, kPoolAverageExclude = 2, kPoolMaxDeterministic = 3;
constexpr int kBatchNormPerActivation = 0, kBatchNormSpatial = 1, kBatchNormSpatialPersistent = 2;
constexpr double kBatchNormMinEpsilon = 0.0;                    // CUDNN_BN_MIN_EPSILON

thread_local std::string last_error;

// Records why a call failed (cudnnGetLastErrorString) and returns its status.
int fail(int status, const std::string& why) {
    last_error = why;
    return status;
}

// ---- objects: every handle and descriptor is checked against the live ones of its kind ----

struct Handle { void* stream = nullptr; };

struct TensorDesc {
    bool set = false;
    int n = 0, c = 0, h = 0, w = 0;
    long long stride[4] = {};   // elements between neighbours along n, c, h, w
    long long extent() const {  // elements from the first to one past the last
        return 1 + (n - 1) * stride[0] + (c - 1) * stride[1] + (h - 1) * stride[2] + (w - 1) * stride[3];
    }
    long long at(int in, int ic, int ih, int iw) const {
        return in * stride[0] + ic * stride[1] + ih * stride[2] + iw * stride[3];
    }
};

struct FilterDesc {
    bool set = false;
    int k = 0, c = 0, h = 0, w = 0;
    long long stride[4] = {};   // along k, c, h, w
    long long extent() const { return 1 + (k - 1) * stride[0] + (c - 1) * stride[1] + (h - 1) * stride[2] + (w - 1) * stride[3]; }
    long long at(int ik, int ic, int ih, int iw) const { return ik * stride[0] + ic * stride[1] + ih * stride[2] + iw * stride[3]; }
};

struct ConvDesc {
    bool set = false;
    int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1, mode = kCrossCorrelation;
    int math = kDefaultMath;
};

struct PoolDesc {
    bool set = false;
    int mode = kPoolMax, propagate_nan = 0, window_h = 1, window_w = 1, pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1;
};

template <typename T>
struct Registry {
    std::mutex mutex;
    std::set<T*> live;

    T* create() {
        auto* object = new T();
        std::lock_guard lock(mutex);
        live.insert(object);
        return object;
    }
    T* find(void* pointer) {
        std::lock_guard lock(mutex);
        auto* object = static_cast<T*>(pointer);
        return live.contains(object) ? object : nullptr;
    }
    bool destroy(void* pointer) {
        std::lock_guard lock(mutex);
        auto* object = static_cast<T*>(pointer);
        if (live.erase(object) == 0) return false;
        delete object;
        return true;
    }
};

Registry<Handle>& handles() { static Registry<Handle> r; return r; }
Registry<TensorDesc>& tensors() { static Registry<TensorDesc> r; return r; }
Registry<FilterDesc>& filters() { static Registry<FilterDesc> r; return r; }
Registry<ConvDesc>& convolutions() { static Registry<ConvDesc> r; return r; }
Registry<PoolDesc>& poolings() { static Registry<PoolDesc> r; return r; }

template <typename T>
int create(Registry<T>& registry, void** out, const char* api) {
    if (out == nullptr) return fail(kBadParamNullPointer, std::string(api) + ": the descriptor pointer is NULL");
    *out = registry.create();
    return kSuccess;
}

template <typename T>
int destroy(Registry<T>& registry, void* object, const char* api) {
    if (object == nullptr) return kSuccess;   // cuDNN accepts destroying NULL
    return registry.destroy(object) ? kSuccess : fail(kBadParam, std::string(api) + ": not a live descriptor of this kind");
}

// A descriptor argument: live, of this kind, and set.
template <typename T>
int lookup(Registry<T>& registry, void* pointer, const char* what, T* out) {
    T* object = registry.find(pointer);
    if (object == nullptr) return fail(kBadParam, std::string(what) + " is not a live descriptor of its kind");
    if (!object->set) return fail(kBadParam, std::string(what) + "'s descriptor was created but never set");
    *out = *object;   // a copy: the queued work keeps the values of the call, as a launched kernel does
    return kSuccess;
}

int lookup_handle(void* pointer, Handle* out) {
    Handle* handle = handles().find(pointer);
    if (handle == nullptr) return fail(kBadParam, "the handle is not a live cudnnHandle_t");
    *out = *handle;
    return kSuccess;
}

// A data operand: [pointer, pointer + elements floats) inside one device allocation, aligned.
int check_data(const void* pointer, long long elements, const char* what) {
    auto address = reinterpret_cast<std::uint64_t>(pointer);
    if (address == 0) return fail(kBadParamNullPointer, std::string(what) + " is NULL");
    if (address % alignof(float) != 0) return fail(kBadParamMisalignedPointer, std::string(what) + " is not aligned to 4 bytes");
    if (laperm_standin_check_device_range(address, std::size_t(elements) * sizeof(float)) != 0)
        return fail(kBadParam, std::string(what) + ": its " + std::to_string(elements) + " floats do not lie inside one device allocation");
    return kSuccess;
}

int check_scalars(const void* alpha, const void* beta) {
    if (alpha == nullptr || beta == nullptr) return fail(kBadParamNullPointer, "alpha or beta is NULL");
    return kSuccess;
}

// Queues `work` on the handle's stream; it re-checks its operands when it runs (a graph may replay
// it after one was freed): a failure there is the sticky CUDA_ERROR_ILLEGAL_ADDRESS a kernel's would be.
struct Operand { std::uint64_t pointer; long long elements; };

int submit(const Handle& handle, const char* name, std::vector<Operand> operands, std::function<void()> work) {
    int r = laperm_standin_enqueue(handle.stream, name, [operands = std::move(operands), work = std::move(work), name]() {
        for (const Operand& o : operands)
            if (laperm_standin_check_device_range(o.pointer, std::size_t(o.elements) * sizeof(float)) != 0) {
                std::fprintf(stderr, "stand-in cuDNN: %s ran on memory that is no longer one device allocation\n", name);
                return 700;   // CUDA_ERROR_ILLEGAL_ADDRESS
            }
        work();
        return 0;
    });
    if (r != 0) return fail(kExecutionFailed, std::string(name) + ": the stand-in driver refused the work (CUresult " + std::to_string(r) + ")");
    return kSuccess;
}

Operand operand(const void* pointer, long long elements) { return {reinterpret_cast<std::uint64_t>(pointer), elements}; }

float* data(std::uint64_t pointer) { return reinterpret_cast<float*>(pointer); }

// out = alpha * value + beta * out, with out not read when beta is 0.
inline void blend(float& out, double value, float alpha, float beta) {
    out = beta == 0.0f ? float(alpha * value) : float(alpha * value + double(beta) * double(out));
}

// ---- convolution ----

enum Direction { kForward = 0, kBackwardData = 1, kBackwardFilter = 2 };
const char* const kDirectionNames[] = {"forward", "backward data", "backward filter"};

int output_size(int input, int pad, int filter, int dilation, int stride) {
    return 1 + (input + 2 * pad - ((filter - 1) * dilation + 1)) / stride;
}

struct ConvProblem {
    TensorDesc x, y;   // y: the output (forward) or the gradient dy
    FilterDesc w;
    ConvDesc conv;
};

// The descriptors agree with each other (cuDNN's BAD_PARAM cases for one group, 2-D).
int check_problem(const ConvProblem& p) {
    if (p.x.c != p.w.c) return fail(kBadParamShapeMismatch, "the input has " + std::to_string(p.x.c) + " channels and the filter " + std::to_string(p.w.c));
    int oh = output_size(p.x.h, p.conv.pad_h, p.w.h, p.conv.dilation_h, p.conv.stride_h);
    int ow = output_size(p.x.w, p.conv.pad_w, p.w.w, p.conv.dilation_w, p.conv.stride_w);
    if (oh <= 0 || ow <= 0) return fail(kBadParam, "the filter (with its dilation) is larger than the padded input");
    if (p.y.n != p.x.n || p.y.c != p.w.k || p.y.h != oh || p.y.w != ow)
        return fail(kBadParamShapeMismatch, "the output descriptor is " + std::to_string(p.y.n) + "x" + std::to_string(p.y.c) + "x" +
                                               std::to_string(p.y.h) + "x" + std::to_string(p.y.w) + ", the convolution gives " +
                                               std::to_string(p.x.n) + "x" + std::to_string(p.w.k) + "x" + std::to_string(oh) + "x" + std::to_string(ow));
    return kSuccess;
}

struct Algorithm { int id; int status; int determinism; };

// What the searches offer per direction, in the order they report it (fastest first, as cuDNN
// measures the non-deterministic atomics-based backward algorithms).
std::vector<Algorithm> catalog(int direction) {
    switch (direction) {
    case kForward:   // IMPLICIT_PRECOMP_GEMM, IMPLICIT_GEMM, GEMM, FFT
        return {{1, kSuccess, kDeterministic}, {0, kSuccess, kDeterministic}, {2, kSuccess, kDeterministic}, {4, kNotSupported, kDeterministic}};
    case kBackwardData:   // ALGO_0 (atomics), ALGO_1, FFT
        return {{0, kSuccess, kNonDeterministic}, {1, kSuccess, kDeterministic}, {2, kNotSupported, kDeterministic}};
    default:   // ALGO_0 and ALGO_3 (atomics), ALGO_1, FFT
        return {{0, kSuccess, kNonDeterministic}, {3, kSuccess, kNonDeterministic}, {1, kSuccess, kDeterministic}, {2, kNotSupported, kDeterministic}};
    }
}

constexpr int kAlgorithmCount[] = {8, 6, 7};   // CUDNN_CONVOLUTION_{FWD,BWD_DATA,BWD_FILTER}_ALGO_COUNT

// The workspace an algorithm needs (bytes), or -1 when the stand-in does not run it.
long long workspace_bytes(int direction, int algorithm, const ConvProblem& p) {
    long long columns = (long long)p.w.c * p.w.h * p.w.w;   // one unrolled input patch
    long long outputs = (long long)p.y.h * p.y.w;
    for (const Algorithm& a : catalog(direction))
        if (a.id == algorithm) {
            if (a.status != kSuccess) return -1;
            switch (direction * 10 + algorithm) {
            case kForward * 10 + 1: return ((columns * 4 + 255) / 256) * 256;              // precomputed patch offsets
            case kForward * 10 + 2: return columns * outputs * p.x.n * 4;                  // im2col
            case kBackwardData * 10 + 1: return (((long long)p.w.k * p.w.h * p.w.w * 4 + 255) / 256) * 256;
            case kBackwardFilter * 10 + 1: return columns * 4 * 8;                         // per-block partial sums
            case kBackwardFilter * 10 + 3: return columns * 4;
            default: return 0;
            }
        }
    return -1;
}

struct ConvArgs {
    ConvProblem p;
    int direction;
    float alpha, beta;
    std::uint64_t x, w, y;   // y: the output or dy; which one is written depends on the direction
    std::uint64_t workspace;
    long long workspace_size;
    bool float_sums = laperm_standin_float_sums();
};

// The filter tap (r, s) the input offset (i, j) meets: flipped in CONVOLUTION mode.
void run_convolution(const ConvArgs& a) {
    const ConvProblem& p = a.p;
    if (a.workspace_size > 0) std::memset(data(a.workspace), 0xFF, std::size_t(a.workspace_size));   // scratch, as a kernel's
    const float* x = data(a.x);
    const float* w = data(a.w);
    const float* y = data(a.y);
    auto tap = [&](int r, int s) { return p.conv.mode == kConvolution ? std::pair{p.w.h - 1 - r, p.w.w - 1 - s} : std::pair{r, s}; };
    // Calls f(n, k, c, oh, ow, r, s, ih, iw) for every (output, input) pair the convolution multiplies.
    auto each = [&](auto&& f) {
        for (int n = 0; n < p.x.n; n++)
            for (int k = 0; k < p.w.k; k++)
                for (int oh = 0; oh < p.y.h; oh++)
                    for (int ow = 0; ow < p.y.w; ow++)
                        for (int c = 0; c < p.w.c; c++)
                            for (int r = 0; r < p.w.h; r++) {
                                int ih = oh * p.conv.stride_h - p.conv.pad_h + r * p.conv.dilation_h;
                                if (ih < 0 || ih >= p.x.h) continue;
                                for (int s = 0; s < p.w.w; s++) {
                                    int iw = ow * p.conv.stride_w - p.conv.pad_w + s * p.conv.dilation_w;
                                    if (iw < 0 || iw >= p.x.w) continue;
                                    f(n, k, c, oh, ow, r, s, ih, iw);
                                }
                            }
    };
    switch (a.direction) {
    case kForward: {
        std::vector<double> sums(std::size_t(p.y.n) * p.y.c * p.y.h * p.y.w, 0.0);
        each([&](int n, int k, int c, int oh, int ow, int r, int s, int ih, int iw) {
            auto [fr, fs] = tap(r, s);
            laperm_standin_madd(sums[((std::size_t(n) * p.y.c + k) * p.y.h + oh) * p.y.w + ow], x[p.x.at(n, c, ih, iw)], w[p.w.at(k, c, fr, fs)], a.float_sums);
        });
        float* out = data(a.y);
        for (int n = 0; n < p.y.n; n++)
            for (int k = 0; k < p.y.c; k++)
                for (int oh = 0; oh < p.y.h; oh++)
                    for (int ow = 0; ow < p.y.w; ow++)
                        blend(out[p.y.at(n, k, oh, ow)], sums[((std::size_t(n) * p.y.c + k) * p.y.h + oh) * p.y.w + ow], a.alpha, a.beta);
        break;
    }
    case kBackwardData: {
        std::vector<double> sums(std::size_t(p.x.n) * p.x.c * p.x.h * p.x.w, 0.0);
        each([&](int n, int k, int c, int oh, int ow, int r, int s, int ih, int iw) {
            auto [fr, fs] = tap(r, s);
            laperm_standin_madd(sums[((std::size_t(n) * p.x.c + c) * p.x.h + ih) * p.x.w + iw], y[p.y.at(n, k, oh, ow)], w[p.w.at(k, c, fr, fs)], a.float_sums);
        });
        float* dx = data(a.x);
        for (int n = 0; n < p.x.n; n++)
            for (int c = 0; c < p.x.c; c++)
                for (int ih = 0; ih < p.x.h; ih++)
                    for (int iw = 0; iw < p.x.w; iw++)
                        blend(dx[p.x.at(n, c, ih, iw)], sums[((std::size_t(n) * p.x.c + c) * p.x.h + ih) * p.x.w + iw], a.alpha, a.beta);
        break;
    }
    default: {
        std::vector<double> sums(std::size_t(p.w.k) * p.w.c * p.w.h * p.w.w, 0.0);
        each([&](int n, int k, int c, int oh, int ow, int r, int s, int ih, int iw) {
            auto [fr, fs] = tap(r, s);
            laperm_standin_madd(sums[((std::size_t(k) * p.w.c + c) * p.w.h + fr) * p.w.w + fs], x[p.x.at(n, c, ih, iw)], y[p.y.at(n, k, oh, ow)], a.float_sums);
        });
        float* dw = data(a.w);
        for (int k = 0; k < p.w.k; k++)
            for (int c = 0; c < p.w.c; c++)
                for (int r = 0; r < p.w.h; r++)
                    for (int s = 0; s < p.w.w; s++)
                        blend(dw[p.w.at(k, c, r, s)], sums[((std::size_t(k) * p.w.c + c) * p.w.h + r) * p.w.w + s], a.alpha, a.beta);
        break;
    }
    }
}

// The descriptors of one convolution call, in the order cuDNN takes them for `direction`:
// forward (x, w, conv, y), backward data (w, dy, conv, dx), backward filter (x, dy, conv, dw).
int problem(int direction, void* first, void* second, void* conv, void* result, ConvProblem* p) {
    int r = kSuccess;
    switch (direction) {
    case kForward:
        if ((r = lookup(tensors(), first, "xDesc", &p->x)) || (r = lookup(filters(), second, "wDesc", &p->w)) ||
            (r = lookup(tensors(), result, "yDesc", &p->y)))
            return r;
        break;
    case kBackwardData:
        if ((r = lookup(filters(), first, "wDesc", &p->w)) || (r = lookup(tensors(), second, "dyDesc", &p->y)) ||
            (r = lookup(tensors(), result, "dxDesc", &p->x)))
            return r;
        break;
    default:
        if ((r = lookup(tensors(), first, "xDesc", &p->x)) || (r = lookup(tensors(), second, "dyDesc", &p->y)) ||
            (r = lookup(filters(), result, "dwDesc", &p->w)))
            return r;
        break;
    }
    if ((r = lookup(convolutions(), conv, "convDesc", &p->conv))) return r;
    return check_problem(*p);
}

int algorithms(int direction, bool measure, void* handle, void* first, void* second, void* conv, void* result, int requested,
               int* returned, void* results) {
    Handle h;
    ConvProblem p;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = problem(direction, first, second, conv, result, &p)) return r;
    if (returned == nullptr || results == nullptr) return fail(kBadParamNullPointer, "returnedAlgoCount or perfResults is NULL");
    if (requested <= 0) return fail(kBadParam, "requestedAlgoCount must be positive");
    if (measure) {
        // cudnnFind* takes descriptors only: it allocates its own operands and workspace (cudaMalloc,
        // refused while capturing), runs every algorithm on the handle's stream and waits for it.
        long long largest = 0;
        for (const Algorithm& a : catalog(direction)) largest = std::max(largest, workspace_bytes(direction, a.id, p));
        std::uint64_t buffers[4] = {};
        std::size_t sizes[4] = {std::size_t(p.x.extent()) * 4, std::size_t(p.w.extent()) * 4, std::size_t(p.y.extent()) * 4, std::size_t(largest)};
        int driver = 0;
        for (int i = 0; i < 4 && driver == 0; i++)
            if (sizes[i] > 0) driver = cuMemAlloc_v2(&buffers[i], sizes[i]);
        if (driver == 0) driver = cuStreamSynchronize(h.stream);
        for (std::uint64_t buffer : buffers)
            if (buffer != 0) cuMemFree_v2(buffer);
        if (driver != 0)
            return fail(driver == 2 ? kDeviceAllocationFailed : kExecutionFailed,
                        std::string("cudnnFind: allocating or synchronising its buffers failed (CUresult ") + std::to_string(driver) + ")");
    }
    // cudnnConvolutionFwdAlgoPerf_t (and the backward ones): algo, status, time, memory, determinism, mathType, reserved[3].
    struct Perf { int algo; int status; float time; std::size_t memory; int determinism; int math_type; int reserved[3]; };
    auto* out = static_cast<Perf*>(results);
    std::vector<Algorithm> offered = catalog(direction);
    int count = std::min<int>(requested, int(offered.size()));
    for (int i = 0; i < count; i++) {
        const Algorithm& a = offered[i];
        long long bytes = workspace_bytes(direction, a.id, p);
        out[i] = Perf{a.id, a.status, a.status == kSuccess ? 0.01f * float(i + 1) : -1.0f, std::size_t(bytes < 0 ? 0 : bytes),
                      a.determinism, p.conv.math, {0, 0, 0}};
    }
    *returned = count;
    return kSuccess;
}

int workspace_size(int direction, void* handle, void* first, void* second, void* conv, void* result, int algorithm, std::size_t* bytes) {
    Handle h;
    ConvProblem p;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = problem(direction, first, second, conv, result, &p)) return r;
    if (bytes == nullptr) return fail(kBadParamNullPointer, "sizeInBytes is NULL");
    if (algorithm < 0 || algorithm >= kAlgorithmCount[direction]) return fail(kBadParam, "no such " + std::string(kDirectionNames[direction]) + " algorithm");
    long long needed = workspace_bytes(direction, algorithm, p);
    if (needed < 0) return fail(kNotSupported, "the stand-in does not run " + std::string(kDirectionNames[direction]) + " algorithm " + std::to_string(algorithm));
    *bytes = std::size_t(needed);
    return kSuccess;
}

int convolve(int direction, const char* name, void* handle, const void* alpha, void* first_desc, const void* first, void* second_desc,
             const void* second, void* conv, int algorithm, void* workspace, std::size_t workspace_size, const void* beta,
             void* result_desc, void* result) {
    Handle h;
    ConvProblem p;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = problem(direction, first_desc, second_desc, conv, result_desc, &p)) return r;
    if (int r = check_scalars(alpha, beta)) return r;
    if (algorithm < 0 || algorithm >= kAlgorithmCount[direction]) return fail(kBadParam, std::string(name) + ": no such algorithm " + std::to_string(algorithm));
    long long needed = workspace_bytes(direction, algorithm, p);
    if (needed < 0) return fail(kNotSupported, std::string(name) + ": the stand-in does not run algorithm " + std::to_string(algorithm));
    if ((long long)workspace_size < needed)
        return fail(kBadParam, std::string(name) + ": algorithm " + std::to_string(algorithm) + " needs " + std::to_string(needed) +
                                   " bytes of workspace, given " + std::to_string(workspace_size));
    ConvArgs a{p, direction, *static_cast<const float*>(alpha), *static_cast<const float*>(beta), 0, 0, 0,
               reinterpret_cast<std::uint64_t>(workspace), needed};
    if (needed > 0 && (workspace == nullptr || laperm_standin_check_device_range(a.workspace, std::size_t(needed)) != 0))
        return fail(kBadParam, std::string(name) + ": the workspace does not lie inside one device allocation");
    // Map the call's operands to x, w, y whichever way round the direction takes them.
    const void* x = direction == kBackwardData ? result : first;
    const void* w = direction == kForward ? second : direction == kBackwardData ? first : result;
    const void* y = direction == kForward ? result : second;
    const char* names[3] = {direction == kBackwardData ? "dx" : "x", direction == kBackwardFilter ? "dw" : "w", direction == kForward ? "y" : "dy"};
    if (int r = check_data(x, p.x.extent(), names[0])) return r;
    if (int r = check_data(w, p.w.extent(), names[1])) return r;
    if (int r = check_data(y, p.y.extent(), names[2])) return r;
    a.x = reinterpret_cast<std::uint64_t>(x);
    a.w = reinterpret_cast<std::uint64_t>(w);
    a.y = reinterpret_cast<std::uint64_t>(y);
    std::vector<Operand> operands{operand(x, p.x.extent()), operand(w, p.w.extent()), operand(y, p.y.extent())};
    if (needed > 0) operands.push_back({a.workspace, (needed + 3) / 4});
    return submit(h, name, std::move(operands), [a] { run_convolution(a); });
}

// ---- pooling ----

struct PoolArgs {
    PoolDesc pool;
    TensorDesc x, y;
    float alpha, beta;
    std::uint64_t px, py, pdy, pdx;
};

// Visits the in-bounds inputs of output (n, c, oh, ow); returns how many there were.
template <typename F>
int window(const PoolDesc& pool, const TensorDesc& x, int oh, int ow, F&& f) {
    int count = 0;
    for (int r = 0; r < pool.window_h; r++) {
        int ih = oh * pool.stride_h - pool.pad_h + r;
        if (ih < 0 || ih >= x.h) continue;
        for (int s = 0; s < pool.window_w; s++) {
            int iw = ow * pool.stride_w - pool.pad_w + s;
            if (iw < 0 || iw >= x.w) continue;
            f(ih, iw);
            count++;
        }
    }
    return count;
}

bool is_max(int mode) { return mode == kPoolMax || mode == kPoolMaxDeterministic; }

// The input a max window selects: the first largest value, or (propagating NaN) the first NaN.
std::pair<int, int> max_position(const PoolArgs& a, const float* x, int n, int c, int oh, int ow) {
    std::pair<int, int> best{-1, -1};
    float value = -std::numeric_limits<float>::infinity();
    bool found_nan = false;
    window(a.pool, a.x, oh, ow, [&](int ih, int iw) {
        float v = x[a.x.at(n, c, ih, iw)];
        if (found_nan) return;
        if (std::isnan(v)) {
            if (a.pool.propagate_nan) { best = {ih, iw}; found_nan = true; }
            return;
        }
        if (best.first < 0 || v > value) { best = {ih, iw}; value = v; }
    });
    return best;
}

void run_pooling_forward(const PoolArgs& a) {
    const float* x = data(a.px);
    float* y = data(a.py);
    for (int n = 0; n < a.y.n; n++)
        for (int c = 0; c < a.y.c; c++)
            for (int oh = 0; oh < a.y.h; oh++)
                for (int ow = 0; ow < a.y.w; ow++) {
                    double value;
                    if (is_max(a.pool.mode)) {
                        auto [ih, iw] = max_position(a, x, n, c, oh, ow);
                        value = ih < 0 ? -std::numeric_limits<double>::infinity() : double(x[a.x.at(n, c, ih, iw)]);
                    } else {
                        double sum = 0.0;
                        int count = window(a.pool, a.x, oh, ow, [&](int ih, int iw) { sum += x[a.x.at(n, c, ih, iw)]; });
                        int divisor = a.pool.mode == kPoolAverageInclude ? a.pool.window_h * a.pool.window_w : count;
                        value = divisor == 0 ? 0.0 : sum / divisor;
                    }
                    blend(y[a.y.at(n, c, oh, ow)], value, a.alpha, a.beta);
                }
}

void run_pooling_backward(const PoolArgs& a) {
    const float* x = data(a.px);
    const float* dy = data(a.pdy);
    float* dx = data(a.pdx);
    std::vector<double> sums(std::size_t(a.x.n) * a.x.c * a.x.h * a.x.w, 0.0);
    auto index = [&](int n, int c, int ih, int iw) { return ((std::size_t(n) * a.x.c + c) * a.x.h + ih) * a.x.w + iw; };
    for (int n = 0; n < a.y.n; n++)
        for (int c = 0; c < a.y.c; c++)
            for (int oh = 0; oh < a.y.h; oh++)
                for (int ow = 0; ow < a.y.w; ow++) {
                    double g = dy[a.y.at(n, c, oh, ow)];
                    if (is_max(a.pool.mode)) {
                        auto [ih, iw] = max_position(a, x, n, c, oh, ow);
                        if (ih >= 0) sums[index(n, c, ih, iw)] += g;
                    } else {
                        int count = window(a.pool, a.x, oh, ow, [](int, int) {});
                        int divisor = a.pool.mode == kPoolAverageInclude ? a.pool.window_h * a.pool.window_w : count;
                        if (divisor > 0) window(a.pool, a.x, oh, ow, [&](int ih, int iw) { sums[index(n, c, ih, iw)] += g / divisor; });
                    }
                }
    for (int n = 0; n < a.x.n; n++)
        for (int c = 0; c < a.x.c; c++)
            for (int ih = 0; ih < a.x.h; ih++)
                for (int iw = 0; iw < a.x.w; iw++) blend(dx[a.x.at(n, c, ih, iw)], sums[index(n, c, ih, iw)], a.alpha, a.beta);
}

int check_pooling_shapes(const PoolDesc& pool, const TensorDesc& x, const TensorDesc& y) {
    int oh = 1 + (x.h + 2 * pool.pad_h - pool.window_h) / pool.stride_h, ow = 1 + (x.w + 2 * pool.pad_w - pool.window_w) / pool.stride_w;
    if (y.n != x.n || y.c != x.c || y.h != oh || y.w != ow)
        return fail(kBadParamShapeMismatch, "the pooling output descriptor is " + std::to_string(y.h) + "x" + std::to_string(y.w) +
                                               ", the window gives " + std::to_string(oh) + "x" + std::to_string(ow) + " (or N, C differ)");
    return kSuccess;
}

bool same_shape(const TensorDesc& a, const TensorDesc& b) { return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w; }

// ---- batch normalisation ----

struct NormArgs {
    int mode;
    TensorDesc x, param;
    float alpha, beta, alpha_param, beta_param;
    double factor, epsilon;
    std::uint64_t px, py, pdy, pdx, gamma, bias, running_mean, running_variance, saved_mean, saved_inv_std, dgamma, dbias;
};

// Statistics run per parameter index: per channel (spatial) or per (c, h, w) (per activation).
std::size_t parameter_index(const NormArgs& a, int c, int h, int w) {
    return a.mode == kBatchNormPerActivation ? a.param.at(0, c, h, w) : a.param.at(0, c, 0, 0);
}

std::size_t parameter_count(const NormArgs& a) { return std::size_t(a.param.extent()); }

template <typename F>
void each_value(const TensorDesc& x, F&& f) {
    for (int n = 0; n < x.n; n++)
        for (int c = 0; c < x.c; c++)
            for (int h = 0; h < x.h; h++)
                for (int w = 0; w < x.w; w++) f(n, c, h, w);
}

// Mean and biased variance per parameter index, and the number of values each one has.
void statistics(const NormArgs& a, const float* x, std::vector<double>& mean, std::vector<double>& variance, double& m) {
    std::size_t count = parameter_count(a);
    mean.assign(count, 0.0);
    variance.assign(count, 0.0);
    m = a.mode == kBatchNormPerActivation ? double(a.x.n) : double(a.x.n) * a.x.h * a.x.w;
    each_value(a.x, [&](int n, int c, int h, int w) { mean[parameter_index(a, c, h, w)] += x[a.x.at(n, c, h, w)]; });
    for (double& v : mean) v /= m;
    each_value(a.x, [&](int n, int c, int h, int w) {
        std::size_t i = parameter_index(a, c, h, w);
        double d = x[a.x.at(n, c, h, w)] - mean[i];
        variance[i] += d * d;
    });
    for (double& v : variance) v /= m;
}

void run_norm_training(const NormArgs& a) {
    const float* x = data(a.px);
    std::vector<double> mean, variance;
    double m;
    statistics(a, x, mean, variance, m);
    const float* gamma = data(a.gamma);
    const float* bias = data(a.bias);
    float* y = data(a.py);
    each_value(a.x, [&](int n, int c, int h, int w) {
        std::size_t i = parameter_index(a, c, h, w);
        double normalised = (x[a.x.at(n, c, h, w)] - mean[i]) / std::sqrt(variance[i] + a.epsilon);
        blend(y[a.x.at(n, c, h, w)], double(gamma[i]) * normalised + double(bias[i]), a.alpha, a.beta);
    });
    for (std::size_t i = 0; i < mean.size(); i++) {
        if (a.running_mean != 0) {
            float& rm = data(a.running_mean)[i];
            float& rv = data(a.running_variance)[i];
            rm = float((1.0 - a.factor) * rm + a.factor * mean[i]);
            rv = float((1.0 - a.factor) * rv + a.factor * variance[i] * m / (m - 1.0));   // Bessel's correction, as cuDNN
        }
        if (a.saved_mean != 0) {
            data(a.saved_mean)[i] = float(mean[i]);
            data(a.saved_inv_std)[i] = float(1.0 / std::sqrt(variance[i] + a.epsilon));
        }
    }
}

void run_norm_inference(const NormArgs& a) {
    const float* x = data(a.px);
    const float* gamma = data(a.gamma);
    const float* bias = data(a.bias);
    const float* mean = data(a.running_mean);
    const float* variance = data(a.running_variance);
    float* y = data(a.py);
    each_value(a.x, [&](int n, int c, int h, int w) {
        std::size_t i = parameter_index(a, c, h, w);
        double normalised = (double(x[a.x.at(n, c, h, w)]) - mean[i]) / std::sqrt(double(variance[i]) + a.epsilon);
        blend(y[a.x.at(n, c, h, w)], double(gamma[i]) * normalised + double(bias[i]), a.alpha, a.beta);
    });
}

void run_norm_backward(const NormArgs& a) {
    const float* x = data(a.px);
    const float* dy = data(a.pdy);
    const float* gamma = data(a.gamma);
    std::size_t count = parameter_count(a);
    std::vector<double> mean(count), inv_std(count);
    double m = a.mode == kBatchNormPerActivation ? double(a.x.n) : double(a.x.n) * a.x.h * a.x.w;
    if (a.saved_mean != 0) {
        for (std::size_t i = 0; i < count; i++) { mean[i] = data(a.saved_mean)[i]; inv_std[i] = data(a.saved_inv_std)[i]; }
    } else {   // without the forward's saved statistics cuDNN recomputes them with epsilon
        std::vector<double> variance;
        statistics(a, x, mean, variance, m);
        for (std::size_t i = 0; i < count; i++) inv_std[i] = 1.0 / std::sqrt(variance[i] + a.epsilon);
    }
    std::vector<double> sum_dy(count, 0.0), sum_dy_xhat(count, 0.0);
    each_value(a.x, [&](int n, int c, int h, int w) {
        std::size_t i = parameter_index(a, c, h, w);
        double g = dy[a.x.at(n, c, h, w)];
        sum_dy[i] += g;
        sum_dy_xhat[i] += g * (x[a.x.at(n, c, h, w)] - mean[i]) * inv_std[i];
    });
    float* dx = data(a.pdx);
    each_value(a.x, [&](int n, int c, int h, int w) {
        std::size_t i = parameter_index(a, c, h, w);
        double xhat = (x[a.x.at(n, c, h, w)] - mean[i]) * inv_std[i];
        double g = double(gamma[i]) * inv_std[i] * (dy[a.x.at(n, c, h, w)] - sum_dy[i] / m - xhat * sum_dy_xhat[i] / m);
        blend(dx[a.x.at(n, c, h, w)], g, a.alpha, a.beta);
    });
    for (std::size_t i = 0; i < count; i++) {
        blend(data(a.dgamma)[i], sum_dy_xhat[i], a.alpha_param, a.beta_param);
        blend(data(a.dbias)[i], sum_dy[i], a.alpha_param, a.beta_param);
    }
}

// The batch-norm parameter descriptor cuDNN derives from x (cudnnDeriveBNTensorDescriptor).
int check_norm(int mode, const TensorDesc& x, const TensorDesc& param, double epsilon) {
    if (mode != kBatchNormPerActivation && mode != kBatchNormSpatial && mode != kBatchNormSpatialPersistent)
        return fail(kBadParam, "unknown batch-norm mode " + std::to_string(mode));
    bool per_activation = mode == kBatchNormPerActivation;
    if (param.n != 1 || param.c != x.c || param.h != (per_activation ? x.h : 1) || param.w != (per_activation ? x.w : 1))
        return fail(kBadParamShapeMismatch, std::string("the scale/bias/mean/variance descriptor must be 1 x C x ") + (per_activation ? "H x W" : "1 x 1"));
    if (epsilon < kBatchNormMinEpsilon) return fail(kBadParam, "epsilon is below CUDNN_BN_MIN_EPSILON");
    return kSuccess;
}

const char* status_name(int status) {
    switch (status) {
    case kSuccess: return "CUDNN_STATUS_SUCCESS";
    case kNotInitialized: return "CUDNN_STATUS_NOT_INITIALIZED";
    case kBadParam: return "CUDNN_STATUS_BAD_PARAM";
    case kBadParamNullPointer: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case kBadParamMisalignedPointer: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case kBadParamShapeMismatch: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case kNotSupported: return "CUDNN_STATUS_NOT_SUPPORTED";
    case kInternalError: return "CUDNN_STATUS_INTERNAL_ERROR";
    case kDeviceAllocationFailed: return "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED";
    case kExecutionFailed: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_UNKNOWN";
    }
}

}  // namespace

extern "C" {
#define API LAPERM_STANDIN_EXPORT

API std::size_t cudnnGetVersion(void) { return 90800; }        // 9.8.0
API std::size_t cudnnGetCudartVersion(void) { return 12080; }  // built for CUDA 12.8

API const char* cudnnGetErrorString(int status) { return status_name(status); }

API void cudnnGetLastErrorString(char* message, std::size_t max_size) {
    if (message == nullptr || max_size == 0) return;
    std::snprintf(message, max_size, "%s", last_error.c_str());
    last_error.clear();
}

API int cudnnCreate(void** handle) {
    if (handle == nullptr) return fail(kBadParamNullPointer, "cudnnCreate: handle is NULL");
    // cuDNN works on the calling thread's current context (the runtime API's device).
    if (int r = laperm_standin_check_context(); r != 0)
        return fail(kNotInitialized, "cudnnCreate: no current CUDA context on this thread (CUresult " + std::to_string(r) + ")");
    *handle = handles().create();
    return kSuccess;
}

API int cudnnDestroy(void* handle) {
    if (handles().find(handle) == nullptr) return fail(kBadParam, "cudnnDestroy: not a live handle");
    // cuDNN releases its resources with an implicit device synchronisation.
    if (laperm_standin_check_context() == 0) cuCtxSynchronize();
    handles().destroy(handle);
    return kSuccess;
}

API int cudnnSetStream(void* handle, void* stream) {
    Handle* h = handles().find(handle);
    if (h == nullptr) return fail(kBadParam, "cudnnSetStream: not a live handle");
    h->stream = stream;
    return kSuccess;
}

API int cudnnGetStream(void* handle, void** stream) {
    Handle* h = handles().find(handle);
    if (h == nullptr) return fail(kBadParam, "cudnnGetStream: not a live handle");
    if (stream == nullptr) return fail(kBadParamNullPointer, "cudnnGetStream: stream is NULL");
    *stream = h->stream;
    return kSuccess;
}

API int cudnnCreateTensorDescriptor(void** desc) { return create(tensors(), desc, "cudnnCreateTensorDescriptor"); }
API int cudnnDestroyTensorDescriptor(void* desc) { return destroy(tensors(), desc, "cudnnDestroyTensorDescriptor"); }

API int cudnnSetTensor4dDescriptor(void* desc, int format, int type, int n, int c, int h, int w) {
    TensorDesc* t = tensors().find(desc);
    if (t == nullptr) return fail(kBadParam, "cudnnSetTensor4dDescriptor: not a live tensor descriptor");
    if (format != kNchw && format != kNhwc) return fail(kBadParam, "cudnnSetTensor4dDescriptor: format must be NCHW or NHWC");
    if (type != kFloat) return fail(kNotSupported, "cudnnSetTensor4dDescriptor: the stand-in runs CUDNN_DATA_FLOAT only");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return fail(kBadParam, "cudnnSetTensor4dDescriptor: every dimension must be positive");
    *t = TensorDesc{true, n, c, h, w, {}};
    if (format == kNchw) { t->stride[0] = (long long)c * h * w; t->stride[1] = (long long)h * w; t->stride[2] = w; t->stride[3] = 1; }
    else { t->stride[0] = (long long)h * w * c; t->stride[1] = 1; t->stride[2] = (long long)w * c; t->stride[3] = c; }
    return kSuccess;
}

API int cudnnCreateFilterDescriptor(void** desc) { return create(filters(), desc, "cudnnCreateFilterDescriptor"); }
API int cudnnDestroyFilterDescriptor(void* desc) { return destroy(filters(), desc, "cudnnDestroyFilterDescriptor"); }

// Note the order: the data type before the format (unlike cudnnSetTensor4dDescriptor).
API int cudnnSetFilter4dDescriptor(void* desc, int type, int format, int k, int c, int h, int w) {
    FilterDesc* f = filters().find(desc);
    if (f == nullptr) return fail(kBadParam, "cudnnSetFilter4dDescriptor: not a live filter descriptor");
    if (format != kNchw && format != kNhwc) return fail(kBadParam, "cudnnSetFilter4dDescriptor: format must be NCHW or NHWC");
    if (type != kFloat) return fail(kNotSupported, "cudnnSetFilter4dDescriptor: the stand-in runs CUDNN_DATA_FLOAT only");
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return fail(kBadParam, "cudnnSetFilter4dDescriptor: every dimension must be positive");
    *f = FilterDesc{true, k, c, h, w, {}};
    if (format == kNchw) { f->stride[0] = (long long)c * h * w; f->stride[1] = (long long)h * w; f->stride[2] = w; f->stride[3] = 1; }
    else { f->stride[0] = (long long)h * w * c; f->stride[1] = 1; f->stride[2] = (long long)w * c; f->stride[3] = c; }
    return kSuccess;
}

API int cudnnCreateConvolutionDescriptor(void** desc) { return create(convolutions(), desc, "cudnnCreateConvolutionDescriptor"); }
API int cudnnDestroyConvolutionDescriptor(void* desc) { return destroy(convolutions(), desc, "cudnnDestroyConvolutionDescriptor"); }

API int cudnnSetConvolution2dDescriptor(void* desc, int pad_h, int pad_w, int u, int v, int dilation_h, int dilation_w, int mode, int compute_type) {
    ConvDesc* d = convolutions().find(desc);
    if (d == nullptr) return fail(kBadParam, "cudnnSetConvolution2dDescriptor: not a live convolution descriptor");
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
        return fail(kBadParam, "cudnnSetConvolution2dDescriptor: padding must be >= 0, strides and dilations > 0");
    if (mode != kConvolution && mode != kCrossCorrelation) return fail(kBadParam, "cudnnSetConvolution2dDescriptor: unknown mode");
    if (compute_type != kFloat) return fail(kNotSupported, "cudnnSetConvolution2dDescriptor: the stand-in computes in CUDNN_DATA_FLOAT only");
    int math = d->math;
    *d = ConvDesc{true, pad_h, pad_w, u, v, dilation_h, dilation_w, mode, math};
    return kSuccess;
}

API int cudnnSetConvolutionMathType(void* desc, int math) {
    ConvDesc* d = convolutions().find(desc);
    if (d == nullptr) return fail(kBadParam, "cudnnSetConvolutionMathType: not a live convolution descriptor");
    if (math < kDefaultMath || math > kFmaMath) return fail(kBadParam, "cudnnSetConvolutionMathType: unknown math type");
    d->math = math;
    return kSuccess;
}

API int cudnnGetConvolution2dForwardOutputDim(void* conv, void* input, void* filter, int* n, int* c, int* h, int* w) {
    ConvProblem p;
    if (int r = lookup(convolutions(), conv, "convDesc", &p.conv)) return r;
    if (int r = lookup(tensors(), input, "inputTensorDesc", &p.x)) return r;
    if (int r = lookup(filters(), filter, "filterDesc", &p.w)) return r;
    if (n == nullptr || c == nullptr || h == nullptr || w == nullptr) return fail(kBadParamNullPointer, "an output dimension pointer is NULL");
    if (p.x.c != p.w.c) return fail(kBadParam, "the input and the filter have different channel counts");
    int oh = output_size(p.x.h, p.conv.pad_h, p.w.h, p.conv.dilation_h, p.conv.stride_h);
    int ow = output_size(p.x.w, p.conv.pad_w, p.w.w, p.conv.dilation_w, p.conv.stride_w);
    if (oh <= 0 || ow <= 0) return fail(kBadParam, "the filter (with its dilation) is larger than the padded input");
    *n = p.x.n; *c = p.w.k; *h = oh; *w = ow;
    return kSuccess;
}

API int cudnnGetConvolutionForwardAlgorithm_v7(void* handle, void* x, void* w, void* conv, void* y, int requested, int* returned, void* results) {
    return algorithms(kForward, false, handle, x, w, conv, y, requested, returned, results);
}
API int cudnnGetConvolutionBackwardDataAlgorithm_v7(void* handle, void* w, void* dy, void* conv, void* dx, int requested, int* returned, void* results) {
    return algorithms(kBackwardData, false, handle, w, dy, conv, dx, requested, returned, results);
}
API int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void* handle, void* x, void* dy, void* conv, void* dw, int requested, int* returned, void* results) {
    return algorithms(kBackwardFilter, false, handle, x, dy, conv, dw, requested, returned, results);
}
API int cudnnFindConvolutionForwardAlgorithm(void* handle, void* x, void* w, void* conv, void* y, int requested, int* returned, void* results) {
    return algorithms(kForward, true, handle, x, w, conv, y, requested, returned, results);
}
API int cudnnFindConvolutionBackwardDataAlgorithm(void* handle, void* w, void* dy, void* conv, void* dx, int requested, int* returned, void* results) {
    return algorithms(kBackwardData, true, handle, w, dy, conv, dx, requested, returned, results);
}
API int cudnnFindConvolutionBackwardFilterAlgorithm(void* handle, void* x, void* dy, void* conv, void* dw, int requested, int* returned, void* results) {
    return algorithms(kBackwardFilter, true, handle, x, dy, conv, dw, requested, returned, results);
}

API int cudnnGetConvolutionForwardWorkspaceSize(void* handle, void* x, void* w, void* conv, void* y, int algorithm, std::size_t* bytes) {
    return workspace_size(kForward, handle, x, w, conv, y, algorithm, bytes);
}
API int cudnnGetConvolutionBackwardDataWorkspaceSize(void* handle, void* w, void* dy, void* conv, void* dx, int algorithm, std::size_t* bytes) {
    return workspace_size(kBackwardData, handle, w, dy, conv, dx, algorithm, bytes);
}
API int cudnnGetConvolutionBackwardFilterWorkspaceSize(void* handle, void* x, void* dy, void* conv, void* dw, int algorithm, std::size_t* bytes) {
    return workspace_size(kBackwardFilter, handle, x, dy, conv, dw, algorithm, bytes);
}

API int cudnnConvolutionForward(void* handle, const void* alpha, void* x_desc, const void* x, void* w_desc, const void* w, void* conv,
                                int algorithm, void* workspace, std::size_t workspace_size, const void* beta, void* y_desc, void* y) {
    return convolve(kForward, "cudnnConvolutionForward", handle, alpha, x_desc, x, w_desc, w, conv, algorithm, workspace, workspace_size,
                    beta, y_desc, y);
}

API int cudnnConvolutionBackwardData(void* handle, const void* alpha, void* w_desc, const void* w, void* dy_desc, const void* dy, void* conv,
                                     int algorithm, void* workspace, std::size_t workspace_size, const void* beta, void* dx_desc, void* dx) {
    return convolve(kBackwardData, "cudnnConvolutionBackwardData", handle, alpha, w_desc, w, dy_desc, dy, conv, algorithm, workspace,
                    workspace_size, beta, dx_desc, dx);
}

API int cudnnConvolutionBackwardFilter(void* handle, const void* alpha, void* x_desc, const void* x, void* dy_desc, const void* dy, void* conv,
                                       int algorithm, void* workspace, std::size_t workspace_size, const void* beta, void* dw_desc, void* dw) {
    return convolve(kBackwardFilter, "cudnnConvolutionBackwardFilter", handle, alpha, x_desc, x, dy_desc, dy, conv, algorithm, workspace,
                    workspace_size, beta, dw_desc, dw);
}

API int cudnnCreatePoolingDescriptor(void** desc) { return create(poolings(), desc, "cudnnCreatePoolingDescriptor"); }
API int cudnnDestroyPoolingDescriptor(void* desc) { return destroy(poolings(), desc, "cudnnDestroyPoolingDescriptor"); }

API int cudnnSetPooling2dDescriptor(void* desc, int mode, int nan, int window_h, int window_w, int pad_h, int pad_w, int stride_h, int stride_w) {
    PoolDesc* p = poolings().find(desc);
    if (p == nullptr) return fail(kBadParam, "cudnnSetPooling2dDescriptor: not a live pooling descriptor");
    if (mode < kPoolMax || mode > kPoolMaxDeterministic) return fail(kBadParam, "cudnnSetPooling2dDescriptor: unknown mode");
    if (nan != 0 && nan != 1) return fail(kBadParam, "cudnnSetPooling2dDescriptor: unknown NaN option");
    if (window_h <= 0 || window_w <= 0 || stride_h <= 0 || stride_w <= 0 || pad_h < 0 || pad_w < 0)
        return fail(kBadParam, "cudnnSetPooling2dDescriptor: windows and strides must be positive, padding >= 0");
    *p = PoolDesc{true, mode, nan, window_h, window_w, pad_h, pad_w, stride_h, stride_w};
    return kSuccess;
}

API int cudnnPoolingForward(void* handle, void* pooling, const void* alpha, void* x_desc, const void* x, const void* beta, void* y_desc, void* y) {
    Handle h;
    PoolArgs a{};
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = lookup(poolings(), pooling, "poolingDesc", &a.pool)) return r;
    if (int r = lookup(tensors(), x_desc, "xDesc", &a.x)) return r;
    if (int r = lookup(tensors(), y_desc, "yDesc", &a.y)) return r;
    if (int r = check_pooling_shapes(a.pool, a.x, a.y)) return r;
    if (int r = check_scalars(alpha, beta)) return r;
    if (int r = check_data(x, a.x.extent(), "x")) return r;
    if (int r = check_data(y, a.y.extent(), "y")) return r;
    a.alpha = *static_cast<const float*>(alpha);
    a.beta = *static_cast<const float*>(beta);
    a.px = reinterpret_cast<std::uint64_t>(x);
    a.py = reinterpret_cast<std::uint64_t>(y);
    return submit(h, "cudnnPoolingForward", {operand(x, a.x.extent()), operand(y, a.y.extent())}, [a] { run_pooling_forward(a); });
}

API int cudnnPoolingBackward(void* handle, void* pooling, const void* alpha, void* y_desc, const void* y, void* dy_desc, const void* dy,
                             void* x_desc, const void* x, const void* beta, void* dx_desc, void* dx) {
    Handle h;
    PoolArgs a{};
    TensorDesc dy_shape, dx_shape;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = lookup(poolings(), pooling, "poolingDesc", &a.pool)) return r;
    if (int r = lookup(tensors(), y_desc, "yDesc", &a.y)) return r;
    if (int r = lookup(tensors(), dy_desc, "dyDesc", &dy_shape)) return r;
    if (int r = lookup(tensors(), x_desc, "xDesc", &a.x)) return r;
    if (int r = lookup(tensors(), dx_desc, "dxDesc", &dx_shape)) return r;
    if (!same_shape(a.y, dy_shape) || !same_shape(a.x, dx_shape)) return fail(kBadParamShapeMismatch, "dy must have y's shape and dx x's");
    if (int r = check_pooling_shapes(a.pool, a.x, a.y)) return r;
    if (int r = check_scalars(alpha, beta)) return r;
    if (int r = check_data(y, a.y.extent(), "y")) return r;
    if (int r = check_data(dy, dy_shape.extent(), "dy")) return r;
    if (int r = check_data(x, a.x.extent(), "x")) return r;
    if (int r = check_data(dx, dx_shape.extent(), "dx")) return r;
    a.alpha = *static_cast<const float*>(alpha);
    a.beta = *static_cast<const float*>(beta);
    a.px = reinterpret_cast<std::uint64_t>(x);
    a.py = reinterpret_cast<std::uint64_t>(y);
    a.pdy = reinterpret_cast<std::uint64_t>(dy);
    a.pdx = reinterpret_cast<std::uint64_t>(dx);
    if (dx_shape.stride[1] != a.x.stride[1] || dy_shape.stride[1] != a.y.stride[1])
        return fail(kNotSupported, "the stand-in takes dy in y's layout and dx in x's");
    return submit(h, "cudnnPoolingBackward",
                  {operand(y, a.y.extent()), operand(dy, dy_shape.extent()), operand(x, a.x.extent()), operand(dx, dx_shape.extent())},
                  [a] { run_pooling_backward(a); });
}

API int cudnnBatchNormalizationForwardTraining(void* handle, int mode, const void* alpha, const void* beta, void* x_desc, const void* x,
                                               void* y_desc, void* y, void* param_desc, const void* scale, const void* bias, double factor,
                                               void* running_mean, void* running_variance, double epsilon, void* saved_mean,
                                               void* saved_inv_variance) {
    Handle h;
    NormArgs a{};
    TensorDesc y_shape;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = lookup(tensors(), x_desc, "xDesc", &a.x)) return r;
    if (int r = lookup(tensors(), y_desc, "yDesc", &y_shape)) return r;
    if (int r = lookup(tensors(), param_desc, "bnScaleBiasMeanVarDesc", &a.param)) return r;
    if (!same_shape(a.x, y_shape) || y_shape.stride[1] != a.x.stride[1]) return fail(kBadParamShapeMismatch, "y must have x's shape and layout");
    if (int r = check_norm(mode, a.x, a.param, epsilon)) return r;
    if (int r = check_scalars(alpha, beta)) return r;
    if ((running_mean == nullptr) != (running_variance == nullptr)) return fail(kBadParam, "the running mean and variance must both be given or both NULL");
    if ((saved_mean == nullptr) != (saved_inv_variance == nullptr)) return fail(kBadParam, "the saved mean and inverse variance must both be given or both NULL");
    long long p = a.param.extent();
    std::vector<Operand> operands{operand(x, a.x.extent()), operand(y, a.x.extent()), operand(scale, p), operand(bias, p)};
    const char* names[] = {"x", "y", "bnScale", "bnBias", "resultRunningMean", "resultRunningVariance", "resultSaveMean", "resultSaveInvVariance"};
    if (running_mean != nullptr) { operands.push_back(operand(running_mean, p)); operands.push_back(operand(running_variance, p)); }
    if (saved_mean != nullptr) { operands.push_back(operand(saved_mean, p)); operands.push_back(operand(saved_inv_variance, p)); }
    for (std::size_t i = 0; i < operands.size(); i++) {
        std::size_t name = i < 4 || running_mean != nullptr ? i : i + 2;
        if (int r = check_data(reinterpret_cast<const void*>(operands[i].pointer), operands[i].elements, names[name])) return r;
    }
    a.mode = mode;
    a.alpha = *static_cast<const float*>(alpha);
    a.beta = *static_cast<const float*>(beta);
    a.factor = factor;
    a.epsilon = epsilon;
    a.px = reinterpret_cast<std::uint64_t>(x);
    a.py = reinterpret_cast<std::uint64_t>(y);
    a.gamma = reinterpret_cast<std::uint64_t>(scale);
    a.bias = reinterpret_cast<std::uint64_t>(bias);
    a.running_mean = reinterpret_cast<std::uint64_t>(running_mean);
    a.running_variance = reinterpret_cast<std::uint64_t>(running_variance);
    a.saved_mean = reinterpret_cast<std::uint64_t>(saved_mean);
    a.saved_inv_std = reinterpret_cast<std::uint64_t>(saved_inv_variance);
    return submit(h, "cudnnBatchNormalizationForwardTraining", std::move(operands), [a] { run_norm_training(a); });
}

API int cudnnBatchNormalizationForwardInference(void* handle, int mode, const void* alpha, const void* beta, void* x_desc, const void* x,
                                                void* y_desc, void* y, void* param_desc, const void* scale, const void* bias,
                                                const void* mean, const void* variance, double epsilon) {
    Handle h;
    NormArgs a{};
    TensorDesc y_shape;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = lookup(tensors(), x_desc, "xDesc", &a.x)) return r;
    if (int r = lookup(tensors(), y_desc, "yDesc", &y_shape)) return r;
    if (int r = lookup(tensors(), param_desc, "bnScaleBiasMeanVarDesc", &a.param)) return r;
    if (!same_shape(a.x, y_shape) || y_shape.stride[1] != a.x.stride[1]) return fail(kBadParamShapeMismatch, "y must have x's shape and layout");
    if (int r = check_norm(mode, a.x, a.param, epsilon)) return r;
    if (int r = check_scalars(alpha, beta)) return r;
    long long p = a.param.extent();
    std::vector<Operand> operands{operand(x, a.x.extent()), operand(y, a.x.extent()), operand(scale, p), operand(bias, p),
                                  operand(mean, p), operand(variance, p)};
    const char* names[] = {"x", "y", "bnScale", "bnBias", "estimatedMean", "estimatedVariance"};
    for (std::size_t i = 0; i < operands.size(); i++)
        if (int r = check_data(reinterpret_cast<const void*>(operands[i].pointer), operands[i].elements, names[i])) return r;
    a.mode = mode;
    a.alpha = *static_cast<const float*>(alpha);
    a.beta = *static_cast<const float*>(beta);
    a.epsilon = epsilon;
    a.px = reinterpret_cast<std::uint64_t>(x);
    a.py = reinterpret_cast<std::uint64_t>(y);
    a.gamma = reinterpret_cast<std::uint64_t>(scale);
    a.bias = reinterpret_cast<std::uint64_t>(bias);
    a.running_mean = reinterpret_cast<std::uint64_t>(mean);
    a.running_variance = reinterpret_cast<std::uint64_t>(variance);
    return submit(h, "cudnnBatchNormalizationForwardInference", std::move(operands), [a] { run_norm_inference(a); });
}

API int cudnnBatchNormalizationBackward(void* handle, int mode, const void* alpha_data, const void* beta_data, const void* alpha_param,
                                        const void* beta_param, void* x_desc, const void* x, void* dy_desc, const void* dy, void* dx_desc,
                                        void* dx, void* param_desc, const void* scale, void* dscale, void* dbias, double epsilon,
                                        const void* saved_mean, const void* saved_inv_variance) {
    Handle h;
    NormArgs a{};
    TensorDesc dy_shape, dx_shape;
    if (int r = lookup_handle(handle, &h)) return r;
    if (int r = lookup(tensors(), x_desc, "xDesc", &a.x)) return r;
    if (int r = lookup(tensors(), dy_desc, "dyDesc", &dy_shape)) return r;
    if (int r = lookup(tensors(), dx_desc, "dxDesc", &dx_shape)) return r;
    if (int r = lookup(tensors(), param_desc, "dBnScaleBiasDesc", &a.param)) return r;
    if (!same_shape(a.x, dy_shape) || !same_shape(a.x, dx_shape) || dy_shape.stride[1] != a.x.stride[1] || dx_shape.stride[1] != a.x.stride[1])
        return fail(kBadParamShapeMismatch, "dy and dx must have x's shape and layout");
    if (int r = check_norm(mode, a.x, a.param, epsilon)) return r;
    if (int r = check_scalars(alpha_data, beta_data)) return r;
    if (int r = check_scalars(alpha_param, beta_param)) return r;
    if ((saved_mean == nullptr) != (saved_inv_variance == nullptr)) return fail(kBadParam, "the saved mean and inverse variance must both be given or both NULL");
    long long p = a.param.extent();
    std::vector<Operand> operands{operand(x, a.x.extent()), operand(dy, a.x.extent()), operand(dx, a.x.extent()), operand(scale, p),
                                  operand(dscale, p), operand(dbias, p)};
    const char* names[] = {"x", "dy", "dx", "bnScale", "resultBnScaleDiff", "resultBnBiasDiff", "savedMean", "savedInvVariance"};
    if (saved_mean != nullptr) { operands.push_back(operand(saved_mean, p)); operands.push_back(operand(saved_inv_variance, p)); }
    for (std::size_t i = 0; i < operands.size(); i++)
        if (int r = check_data(reinterpret_cast<const void*>(operands[i].pointer), operands[i].elements, names[i])) return r;
    a.mode = mode;
    a.alpha = *static_cast<const float*>(alpha_data);
    a.beta = *static_cast<const float*>(beta_data);
    a.alpha_param = *static_cast<const float*>(alpha_param);
    a.beta_param = *static_cast<const float*>(beta_param);
    a.epsilon = epsilon;
    a.px = reinterpret_cast<std::uint64_t>(x);
    a.pdy = reinterpret_cast<std::uint64_t>(dy);
    a.pdx = reinterpret_cast<std::uint64_t>(dx);
    a.gamma = reinterpret_cast<std::uint64_t>(scale);
    a.dgamma = reinterpret_cast<std::uint64_t>(dscale);
    a.dbias = reinterpret_cast<std::uint64_t>(dbias);
    a.saved_mean = reinterpret_cast<std::uint64_t>(saved_mean);
    a.saved_inv_std = reinterpret_cast<std::uint64_t>(saved_inv_variance);
    return submit(h, "cudnnBatchNormalizationBackward", std::move(operands), [a] { run_norm_backward(a); });
}

}  // extern "C"
