// standin_cudnn_test.cpp: the stand-in cuDNN (cuda/emu/standin/standin_cudnn.cpp) keeps cuDNN's rules.
//
// Each check calls cuDNN as cudnn_ops.h / cudnn_cnn.h declare it (on the stand-in driver) and
// expects what cuDNN does: typed descriptors, shapes that must agree, algorithm searches offering
// non-deterministic algorithms and unsupported entries, a workspace at least as large as the query
// said, results computed as the convolution / pooling / batch-norm definitions say, beta = 0 not
// reading the output, cudnnFind refused while capturing, and a captured call replayed on freed
// memory faulting. Usage: laperm_standin_cudnn_test
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

extern "C" {
int cuInit(unsigned);
int cuDeviceGet(int*, int);
int cuDevicePrimaryCtxRetain(void**, int);
int cuCtxSetCurrent(void*);
int cuMemAlloc_v2(std::uint64_t*, std::size_t);
int cuMemFree_v2(std::uint64_t);
int cuMemcpyHtoD_v2(std::uint64_t, const void*, std::size_t);
int cuMemcpyDtoH_v2(void*, std::uint64_t, std::size_t);
int cuStreamCreate(void**, unsigned);
int cuStreamSynchronize(void*);
int cuStreamBeginCapture_v2(void*, int);
int cuStreamEndCapture(void*, void**);
int cuGraphInstantiateWithFlags(void**, void*, unsigned long long);
int cuGraphLaunch(void*, void*);

int cudnnCreate(void**);
int cudnnDestroy(void*);
int cudnnSetStream(void*, void*);
void cudnnGetLastErrorString(char*, std::size_t);
int cudnnCreateTensorDescriptor(void**);
int cudnnSetTensor4dDescriptor(void*, int, int, int, int, int, int);
int cudnnCreateFilterDescriptor(void**);
int cudnnSetFilter4dDescriptor(void*, int, int, int, int, int, int);
int cudnnCreateConvolutionDescriptor(void**);
int cudnnSetConvolution2dDescriptor(void*, int, int, int, int, int, int, int, int);
int cudnnSetConvolutionMathType(void*, int);
int cudnnGetConvolution2dForwardOutputDim(void*, void*, void*, int*, int*, int*, int*);
struct Perf { int algo; int status; float time; std::size_t memory; int determinism; int math_type; int reserved[3]; };
int cudnnFindConvolutionForwardAlgorithm(void*, void*, void*, void*, void*, int, int*, Perf*);
int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void*, void*, void*, void*, void*, int, int*, Perf*);
int cudnnGetConvolutionForwardWorkspaceSize(void*, void*, void*, void*, void*, int, std::size_t*);
int cudnnConvolutionForward(void*, const void*, void*, const void*, void*, const void*, void*, int, void*, std::size_t, const void*, void*, void*);
int cudnnConvolutionBackwardData(void*, const void*, void*, const void*, void*, const void*, void*, int, void*, std::size_t, const void*, void*, void*);
int cudnnCreatePoolingDescriptor(void**);
int cudnnSetPooling2dDescriptor(void*, int, int, int, int, int, int, int, int);
int cudnnPoolingBackward(void*, void*, const void*, void*, const void*, void*, const void*, void*, const void*, const void*, void*, void*);
int cudnnBatchNormalizationForwardTraining(void*, int, const void*, const void*, void*, const void*, void*, void*, void*, const void*,
                                           const void*, double, void*, void*, double, void*, void*);
}

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

std::uint64_t upload(const std::vector<float>& values) {
    std::uint64_t pointer = 0;
    cuMemAlloc_v2(&pointer, values.size() * 4);
    cuMemcpyHtoD_v2(pointer, values.data(), values.size() * 4);
    return pointer;
}

std::vector<float> download(std::uint64_t pointer, std::size_t count) {
    std::vector<float> values(count);
    cuMemcpyDtoH_v2(values.data(), pointer, count * 4);
    return values;
}

void* tensor(int n, int c, int h, int w) {
    void* desc = nullptr;
    cudnnCreateTensorDescriptor(&desc);
    cudnnSetTensor4dDescriptor(desc, 0, 0, n, c, h, w);
    return desc;
}

// The largest |a - b| relative to max(1, |b|).
double worst(const std::vector<float>& a, const std::vector<double>& b) {
    double result = 0;
    for (std::size_t i = 0; i < a.size(); i++) result = std::fmax(result, std::fabs(a[i] - b[i]) / std::fmax(1.0, std::fabs(b[i])));
    return result;
}

}  // namespace

int main() {
    void* handle = nullptr;
    int device = -1;
    void* context = nullptr;
    if (cuInit(0) != 0 || cuDeviceGet(&device, 0) != 0 || cuDevicePrimaryCtxRetain(&context, device) != 0) return 1;
    expect(cudnnCreate(&handle) == 1001, "cudnnCreate without a current context is CUDNN_STATUS_NOT_INITIALIZED");
    cuCtxSetCurrent(context);
    void* stream = nullptr;
    if (cudnnCreate(&handle) != 0 || cuStreamCreate(&stream, 1) != 0 || cudnnSetStream(handle, stream) != 0) return 1;

    // x 2x3x5x5, w 4x3x3x3, padding 1, stride 2: y 2x4x3x3.
    const int N = 2, C = 3, H = 5, W = 5, K = 4, R = 3, P = 1, S = 2, OH = 3, OW = 3;
    void* x_desc = tensor(N, C, H, W);
    void* w_desc = nullptr;
    cudnnCreateFilterDescriptor(&w_desc);
    expect(cudnnSetFilter4dDescriptor(w_desc, 0, 0, K, C, R, R) == 0, "a filter descriptor (data type, then format)");
    void* conv = nullptr;
    cudnnCreateConvolutionDescriptor(&conv);
    expect(cudnnSetConvolution2dDescriptor(conv, P, P, S, S, 1, 1, 1, 0) == 0 && cudnnSetConvolutionMathType(conv, 3) == 0,
           "a cross-correlation with FMA math");
    int n = 0, c = 0, h = 0, w = 0;
    expect(cudnnGetConvolution2dForwardOutputDim(conv, x_desc, w_desc, &n, &c, &h, &w) == 0 && n == N && c == K && h == OH && w == OW,
           "the forward output is 2x4x3x3");
    void* y_desc = tensor(N, K, OH, OW);
    void* wrong_y = tensor(N, K, OH + 1, OW);
    std::size_t bytes = 0;
    expect(cudnnGetConvolutionForwardWorkspaceSize(handle, w_desc, w_desc, conv, y_desc, 0, &bytes) == 2000,
           "a filter descriptor where a tensor one belongs is CUDNN_STATUS_BAD_PARAM");
    expect(cudnnGetConvolutionForwardWorkspaceSize(handle, x_desc, w_desc, conv, wrong_y, 0, &bytes) == 2008,
           "an output descriptor of another shape is CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH");
    char message[256] = {};
    cudnnGetLastErrorString(message, sizeof message);
    expect(std::strstr(message, "3x3") != nullptr, "cudnnGetLastErrorString says which shape the convolution gives");

    Perf perf[8] = {};
    int count = 0;
    expect(cudnnFindConvolutionForwardAlgorithm(handle, x_desc, w_desc, conv, y_desc, 8, &count, perf) == 0 && count >= 3 &&
               perf[count - 1].status == 3000 && perf[0].status == 0 && perf[0].math_type == 3,
           "cudnnFind offers forward algorithms, FMA math as set, an unsupported one last");
    expect(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, x_desc, y_desc, conv, w_desc, 8, &count, perf) == 0 && count >= 2 &&
               perf[0].determinism == 0,
           "the backward filter search offers a non-deterministic algorithm first");

    std::mt19937 rng(20261129);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> xv(N * C * H * W), wv(K * C * R * R);
    for (float& v : xv) v = uniform(rng);
    for (float& v : wv) v = uniform(rng);
    std::vector<double> expected(N * K * OH * OW, 0.0), flipped(expected.size(), 0.0);
    for (int in = 0; in < N; in++)
        for (int k = 0; k < K; k++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                    for (int ic = 0; ic < C; ic++)
                        for (int r = 0; r < R; r++)
                            for (int s = 0; s < R; s++) {
                                int ih = oh * S - P + r, iw = ow * S - P + s;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                double xin = xv[((in * C + ic) * H + ih) * W + iw];
                                std::size_t out = ((in * K + k) * OH + oh) * OW + ow;
                                expected[out] += xin * wv[((k * C + ic) * R + r) * R + s];
                                flipped[out] += xin * wv[((k * C + ic) * R + (R - 1 - r)) * R + (R - 1 - s)];
                            }
    std::uint64_t x = upload(xv), wt = upload(wv), y = upload(std::vector<float>(expected.size(), std::nanf("")));
    float one = 1.0f, zero = 0.0f;
    std::size_t gemm_bytes = 0;
    cudnnGetConvolutionForwardWorkspaceSize(handle, x_desc, w_desc, conv, y_desc, 2, &gemm_bytes);
    std::uint64_t workspace = upload(std::vector<float>(gemm_bytes / 4 + 1, 7.0f));
    expect(gemm_bytes > 0 && cudnnConvolutionForward(handle, &one, x_desc, (void*)x, w_desc, (void*)wt, conv, 2, (void*)workspace,
                                                     gemm_bytes - 4, &zero, y_desc, (void*)y) == 2000,
           "a workspace smaller than the query said is CUDNN_STATUS_BAD_PARAM");
    expect(cudnnConvolutionForward(handle, &one, x_desc, (void*)x, w_desc, (void*)wt, conv, 2, (void*)workspace, gemm_bytes, &zero,
                                   y_desc, (void*)y) == 0 && cuStreamSynchronize(stream) == 0,
           "a forward convolution with the GEMM algorithm and its workspace");
    expect(worst(download(y, expected.size()), expected) < 1e-6, "y = x * w, with beta 0 not reading the NaN-poisoned y");
    expect(download(workspace, 1)[0] != 7.0f, "the algorithm used its workspace as scratch (its bytes changed)");
    float half = 0.5f;
    cudnnConvolutionForward(handle, &one, x_desc, (void*)x, w_desc, (void*)wt, conv, 0, nullptr, 0, &half, y_desc, (void*)y);
    cuStreamSynchronize(stream);
    std::vector<double> blended(expected.size());
    for (std::size_t i = 0; i < expected.size(); i++) blended[i] = expected[i] + 0.5 * expected[i];
    expect(worst(download(y, expected.size()), blended) < 1e-6, "beta 0.5 blends: y = x * w + 0.5 y");
    void* true_conv = nullptr;
    cudnnCreateConvolutionDescriptor(&true_conv);
    cudnnSetConvolution2dDescriptor(true_conv, P, P, S, S, 1, 1, 0, 0);
    cudnnConvolutionForward(handle, &one, x_desc, (void*)x, w_desc, (void*)wt, true_conv, 0, nullptr, 0, &zero, y_desc, (void*)y);
    cuStreamSynchronize(stream);
    expect(worst(download(y, expected.size()), flipped) < 1e-6, "CUDNN_CONVOLUTION mode flips the filter");

    // LAPERM_STANDIN_SUMS=float: each output one float FMA chain over (c, r, s), bit for bit.
    {
        std::vector<float> chain(expected.size(), 0.0f);
        for (int in = 0; in < N; in++)
            for (int k = 0; k < K; k++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        float& sum = chain[((in * K + k) * OH + oh) * OW + ow];
                        for (int ic = 0; ic < C; ic++)
                            for (int r = 0; r < R; r++)
                                for (int s = 0; s < R; s++) {
                                    int ih = oh * S - P + r, iw = ow * S - P + s;
                                    if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                        sum = std::fma(xv[((in * C + ic) * H + ih) * W + iw], wv[((k * C + ic) * R + r) * R + s], sum);
                                }
                    }
        setenv("LAPERM_STANDIN_SUMS", "float", 1);
        cudnnConvolutionForward(handle, &one, x_desc, (void*)x, w_desc, (void*)wt, conv, 0, nullptr, 0, &zero, y_desc, (void*)y);
        unsetenv("LAPERM_STANDIN_SUMS");
        cuStreamSynchronize(stream);
        std::vector<float> got = download(y, expected.size());
        expect(std::memcmp(got.data(), chain.data(), got.size() * 4) == 0, "LAPERM_STANDIN_SUMS=float sums as one float FMA chain");
        double differs = 0;
        for (std::size_t i = 0; i < got.size(); i++) differs += got[i] != float(expected[i]);
        expect(differs > 0, "which rounds otherwise than the exact sum somewhere");
    }

    // Backward data of a 1x1 filter with stride 1 is dy times the filter's weight, per channel.
    {
        void* x1 = tensor(1, 2, 2, 2);
        void* f1 = nullptr;
        cudnnCreateFilterDescriptor(&f1);
        cudnnSetFilter4dDescriptor(f1, 0, 0, 1, 2, 1, 1);
        void* c1 = nullptr;
        cudnnCreateConvolutionDescriptor(&c1);
        cudnnSetConvolution2dDescriptor(c1, 0, 0, 1, 1, 1, 1, 1, 0);
        void* y1 = tensor(1, 1, 2, 2);
        std::uint64_t dy = upload({1, 2, 3, 4}), f = upload({10, -1}), dx = upload(std::vector<float>(8, std::nanf("")));
        expect(cudnnConvolutionBackwardData(handle, &one, f1, (void*)f, y1, (void*)dy, c1, 1, (void*)workspace, gemm_bytes, &zero, x1,
                                            (void*)dx) == 0 && cuStreamSynchronize(stream) == 0,
               "a backward data convolution");
        std::vector<float> got = download(dx, 8);
        expect(got[0] == 10 && got[3] == 40 && got[4] == -1 && got[7] == -4, "dx = dy times each channel's weight");
    }

    // Max pooling 2x2, stride 1, over a 1x1x3x3 ramp: every window's maximum is its bottom-right
    // input; dy goes there and nowhere else.
    {
        void* pool = nullptr;
        cudnnCreatePoolingDescriptor(&pool);
        cudnnSetPooling2dDescriptor(pool, 3, 1, 2, 2, 0, 0, 1, 1);
        void* px = tensor(1, 1, 3, 3);
        void* py = tensor(1, 1, 2, 2);
        std::uint64_t pxv = upload({0, 1, 2, 3, 4, 5, 6, 7, 8}), pyv = upload({4, 5, 7, 8}), dy = upload({1, 10, 100, 1000});
        std::uint64_t dx = upload(std::vector<float>(9, std::nanf("")));
        expect(cudnnPoolingBackward(handle, pool, &one, py, (void*)pyv, py, (void*)dy, px, (void*)pxv, &zero, px, (void*)dx) == 0 &&
                   cuStreamSynchronize(stream) == 0,
               "a max pooling backward");
        std::vector<float> got = download(dx, 9);
        expect(got[4] == 1 && got[5] == 10 && got[7] == 100 && got[8] == 1000 && got[0] == 0, "dx holds dy at each window's maximum, 0 elsewhere");
    }

    // Spatial batch-norm over 2 images x 1 channel x 2 values: mean 2.5 and biased variance 1.25
    // normalise; the running variance takes the unbiased 5/3 (Bessel's correction, as cuDNN).
    {
        void* bx = tensor(2, 1, 2, 1);
        void* bp = tensor(1, 1, 1, 1);
        std::uint64_t xv4 = upload({1, 2, 3, 4}), yv = upload(std::vector<float>(4, std::nanf(""))), gamma = upload({2}), beta = upload({1});
        std::uint64_t rm = upload({0}), rv = upload({1}), sm = upload({-7}), si = upload({-7});
        expect(cudnnBatchNormalizationForwardTraining(handle, 1, &one, &zero, bx, (void*)xv4, bx, (void*)yv, bp, (void*)gamma, (void*)beta,
                                                      0.5, (void*)rm, (void*)rv, 1e-5, (void*)sm, (void*)si) == 0 &&
                   cuStreamSynchronize(stream) == 0,
               "a spatial batch-norm training forward");
        double inv = 1.0 / std::sqrt(1.25 + 1e-5);
        std::vector<float> got = download(yv, 4);
        expect(std::fabs(got[0] - (2 * (1 - 2.5) * inv + 1)) < 1e-6 && std::fabs(got[3] - (2 * (4 - 2.5) * inv + 1)) < 1e-6, "y = gamma x-hat + beta");
        expect(std::fabs(download(rm, 1)[0] - 1.25f) < 1e-6 && std::fabs(download(rv, 1)[0] - (0.5 + 0.5 * 5.0 / 3.0)) < 1e-6,
               "the running mean and the Bessel-corrected running variance");
        expect(std::fabs(download(sm, 1)[0] - 2.5f) < 1e-6 && std::fabs(download(si, 1)[0] - inv) < 1e-6, "the saved mean and 1/sqrt(var + eps)");
        expect(cudnnBatchNormalizationForwardTraining(handle, 1, &one, &zero, bx, (void*)xv4, bx, (void*)yv, bx, (void*)gamma, (void*)beta,
                                                      0.5, (void*)rm, (void*)rv, 1e-5, (void*)sm, (void*)si) == 2008,
               "batch-norm parameters not 1 x C x 1 x 1 are CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH");
    }

    // cudnnFind allocates its own buffers: refused while the stream captures, which it invalidates.
    void* graph = nullptr;
    expect(cuStreamBeginCapture_v2(stream, 0) == 0, "begin a capture");
    expect(cudnnFindConvolutionForwardAlgorithm(handle, x_desc, w_desc, conv, y_desc, 8, &count, perf) != 0, "cudnnFind fails while capturing");
    expect(cuStreamEndCapture(stream, &graph) == 901, "and the capture is invalidated");

    // A captured convolution replayed after its input was freed faults (sticky), as a kernel would.
    void* exec = nullptr;
    expect(cuStreamBeginCapture_v2(stream, 0) == 0 &&
               cudnnConvolutionForward(handle, &one, x_desc, (void*)x, w_desc, (void*)wt, conv, 0, nullptr, 0, &zero, y_desc, (void*)y) == 0 &&
               cuStreamEndCapture(stream, &graph) == 0 && cuGraphInstantiateWithFlags(&exec, graph, 0) == 0,
           "a convolution captured into a graph");
    expect(cuGraphLaunch(exec, stream) == 0 && cuStreamSynchronize(stream) == 0, "the graph replays");
    cuMemFree_v2(x);
    expect(cuGraphLaunch(exec, stream) == 0 && cuStreamSynchronize(stream) == 700,
           "a replay on freed memory is CUDA_ERROR_ILLEGAL_ADDRESS at the next wait");

    std::printf("%d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
