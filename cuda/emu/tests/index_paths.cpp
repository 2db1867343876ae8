// index_paths.cpp: the 64-bit fallback of the elementwise kernels' index loops against their
// 32-bit fast path, bit for bit.
//
// The kernels run their grid-stride loop in `unsigned` indices with fast divisors when every
// index of the launch stays below 2^31 (laperm/fast_divide.cuh), and in `unsigned long long`
// with plain division otherwise. Only a tensor of 2^31 elements takes the second path, so no
// test could reach it through the backend. This file compiles the same kernel sources with
// LP_FAST_INDEX_LIMIT 0 (every launch takes the 64-bit path) under the names wide_<kernel>,
// and launches both them and the library's own <kernel> (the fast path) on the same random
// inputs, outputs poisoned, grids smaller than the work so every thread loops.
#include <memory>
#include <type_traits>

#define LP_FAST_INDEX_LIMIT 0
#define im2col_v1 wide_im2col_v1
#define col2im_v1 wide_col2im_v1
#define conv_gather_output_v1 wide_conv_gather_output_v1
#define conv_scatter_output_v1 wide_conv_scatter_output_v1
#define conv_pad_images_v1 wide_conv_pad_images_v1
#define conv_crop_images_v1 wide_conv_crop_images_v1
#define maxpool_forward_v1 wide_maxpool_forward_v1
#define maxpool_backward_v1 wide_maxpool_backward_v1
#define avgpool_forward_v1 wide_avgpool_forward_v1
#define avgpool_backward_v1 wide_avgpool_backward_v1
#define global_avgpool_forward_v1 wide_global_avgpool_forward_v1
#define global_avgpool_backward_v1 wide_global_avgpool_backward_v1
#define bias_add_v1 wide_bias_add_v1
#define bias_gradient_v1 wide_bias_gradient_v1
#define bias_gradient_v2_sums wide_bias_gradient_v2_sums
#define bias_gradient_v2_total wide_bias_gradient_v2_total

#include "emu_registry.h"
#include "im2col.cu"
#include "conv.cu"
#include "pool.cu"
#include "bias.cu"
#include "test_support.h"

LP_EMU_REGISTER(wide_im2col_v1)
LP_EMU_REGISTER(wide_col2im_v1)
LP_EMU_REGISTER(wide_conv_gather_output_v1)
LP_EMU_REGISTER(wide_conv_scatter_output_v1)
LP_EMU_REGISTER(wide_conv_pad_images_v1)
LP_EMU_REGISTER(wide_conv_crop_images_v1)
LP_EMU_REGISTER(wide_maxpool_forward_v1)
LP_EMU_REGISTER(wide_maxpool_backward_v1)
LP_EMU_REGISTER(wide_avgpool_forward_v1)
LP_EMU_REGISTER(wide_avgpool_backward_v1)
LP_EMU_REGISTER(wide_global_avgpool_backward_v1)
LP_EMU_REGISTER(wide_bias_add_v1)

using namespace lp_test;

namespace {

std::mt19937 rng(2026);

std::vector<float> random_floats(std::size_t n) {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

lp_divisor divisor(int d) {
    const std::vector<unsigned> w = divisor_words(static_cast<unsigned>(d));
    return lp_divisor{w[0], w[1], w[2]};
}

// A registered copy of `values` (the emulator checks every pointer against its buffers).
template <class T>
std::unique_ptr<DeviceBuffer<T>> upload(const std::vector<T>& values) {
    auto b = std::make_unique<DeviceBuffer<T>>(values.size());
    std::memcpy(b->ptr(), values.data(), values.size() * sizeof(T));
    return b;
}

// Launches `kernel` and wide_`kernel` with the same arguments, except that each writes its own
// poisoned output buffer (the argument `out` stands for it), and compares the outputs' bits.
template <class T, class... A>
void same_on_both_paths(const char* kernel, const char* what, std::size_t out_elements, unsigned grid, A... args) {
    DeviceBuffer<T> fast(out_elements), wide(out_elements);
    const std::string wide_name = std::string("wide_") + kernel;
    auto pick = [](auto a, T* out) {
        if constexpr (std::is_same_v<decltype(a), std::nullptr_t>) return out; else return a;
    };
    if (!launch_ok(kernel, grid, 64, 0, pick(args, fast.ptr())...)) return;
    if (!launch_ok(wide_name.c_str(), grid, 64, 0, pick(args, wide.ptr())...)) return;
    int differ = 0;
    for (std::size_t i = 0; i < out_elements; ++i) {
        if (std::memcmp(&fast[i], &wide[i], sizeof(T)) != 0 && differ++ < 3)
            std::fprintf(stderr, "%s (%s): element %zu differs between the paths\n", kernel, what, i);
    }
    LP_CHECK(differ == 0, "%s (%s): %d of %zu elements differ", kernel, what, differ, out_elements);
    bool written = false;
    for (std::size_t i = 0; i < out_elements && !written; ++i) {
        unsigned char poison[sizeof(T)];
        std::memset(poison, 0xFF, sizeof(T));
        written = std::memcmp(&fast[i], poison, sizeof(T)) != 0;
    }
    LP_CHECK(written, "%s (%s): the output stayed poisoned", kernel, what);
}

struct Conv {
    int images, n0, count, channels, height, width, kernel, stride, top, left, out_h, out_w;
};

void convolution(const Conv& c) {
    char what[128];
    std::snprintf(what, sizeof what, "images %d-%d of %d, %dx%dx%d, %dx%d kernel, stride %d, pad %d/%d", c.n0, c.n0 + c.count,
                  c.images, c.channels, c.height, c.width, c.kernel, c.kernel, c.stride, c.top, c.left);
    const ConvShape g{c.n0, c.count, c.channels, c.height, c.width, c.kernel, c.kernel, c.stride, c.top, c.left, c.out_h, c.out_w,
                      divisor(c.out_h * c.out_w), divisor(c.count), divisor(c.kernel), divisor(c.kernel), divisor(c.out_w),
                      divisor(c.width), divisor(c.height), divisor(c.channels), divisor(c.stride)};
    const int plane = c.out_h * c.out_w, rows = c.channels * c.kernel * c.kernel;
    const long long width = static_cast<long long>(c.count) * plane;
    const std::size_t inputs = static_cast<std::size_t>(c.images) * c.channels * c.height * c.width;
    auto x = upload(random_floats(inputs));
    auto columns = upload(random_floats(static_cast<std::size_t>(rows) * width));
    same_on_both_paths<float>("im2col_v1", what, rows * width, 3, g, static_cast<const float*>(x->ptr()), nullptr, width,
                              static_cast<long long>(plane));
    same_on_both_paths<float>("col2im_v1", what, inputs, 3, g, static_cast<const float*>(columns->ptr()), nullptr, width,
                              static_cast<long long>(plane));
    const int out_channels = 5;
    auto nchw = upload(random_floats(static_cast<std::size_t>(c.images) * out_channels * plane));
    auto matrix = upload(random_floats(static_cast<std::size_t>(out_channels) * width));
    same_on_both_paths<float>("conv_gather_output_v1", what, out_channels * width, 2, c.n0, c.count, divisor(out_channels),
                              divisor(plane), static_cast<const float*>(nchw->ptr()), nullptr);
    same_on_both_paths<float>("conv_scatter_output_v1", what, static_cast<std::size_t>(c.images) * out_channels * plane, 2, c.n0,
                              c.count, divisor(out_channels), divisor(plane), static_cast<const float*>(matrix->ptr()), nullptr);
    const int planes = c.images * c.channels, padded_h = c.height + c.top + 2, padded_w = c.width + c.left + 1;
    auto padded = upload(random_floats(static_cast<std::size_t>(planes) * padded_h * padded_w));
    same_on_both_paths<float>("conv_pad_images_v1", what, static_cast<std::size_t>(planes) * padded_h * padded_w, 2, planes,
                              c.height, c.width, divisor(padded_h), divisor(padded_w), c.top, c.left,
                              static_cast<const float*>(x->ptr()), nullptr);
    same_on_both_paths<float>("conv_crop_images_v1", what, inputs, 2, planes, divisor(c.height), divisor(c.width), padded_h, padded_w,
                              c.top, c.left, static_cast<const float*>(padded->ptr()), nullptr);
}

void pooling(int planes, int height, int width, int window, int stride) {
    char what[96];
    std::snprintf(what, sizeof what, "%d planes of %dx%d, window %d, stride %d", planes, height, width, window, stride);
    const int out_h = (height - window) / stride + 1, out_w = (width - window) / stride + 1;
    const PoolShape g{planes, height, width, window, stride, out_h, out_w,
                      divisor(width), divisor(height), divisor(out_w), divisor(out_h), divisor(stride)};
    const std::size_t inputs = static_cast<std::size_t>(planes) * height * width, outputs = static_cast<std::size_t>(planes) * out_h * out_w;
    auto x = upload(random_floats(inputs));
    auto dy = upload(random_floats(outputs));
    DeviceBuffer<float> y(outputs);
    DeviceBuffer<int> argmax(outputs);
    same_on_both_paths<float>("maxpool_forward_v1", what, outputs, 2, g, static_cast<const float*>(x->ptr()), nullptr, argmax.ptr());
    same_on_both_paths<int>("maxpool_forward_v1", what, outputs, 2, g, static_cast<const float*>(x->ptr()), y.ptr(), nullptr);
    same_on_both_paths<float>("maxpool_backward_v1", what, inputs, 2, g, static_cast<const float*>(dy->ptr()),
                              static_cast<const int*>(argmax.ptr()), nullptr);
    same_on_both_paths<float>("avgpool_forward_v1", what, outputs, 2, g, static_cast<const float*>(x->ptr()), nullptr);
    same_on_both_paths<float>("avgpool_backward_v1", what, inputs, 2, g, static_cast<const float*>(dy->ptr()), nullptr);
}

void global_pooling(int planes, int spatial) {
    char what[64];
    std::snprintf(what, sizeof what, "%d planes of %d", planes, spatial);
    auto dy = upload(random_floats(planes));
    same_on_both_paths<float>("global_avgpool_backward_v1", what, static_cast<std::size_t>(planes) * spatial, 2, planes, divisor(spatial),
                              static_cast<const float*>(dy->ptr()), nullptr);
}

void bias(int batch, int channels, int spatial) {
    char what[64];
    std::snprintf(what, sizeof what, "[%d, %d, %d]", batch, channels, spatial);
    const long long n = static_cast<long long>(batch) * channels * spatial;
    const std::vector<float> y0 = random_floats(n);
    auto b = upload(random_floats(channels));
    // bias_add updates y in place: both paths start from the same values.
    DeviceBuffer<float> fast(n), wide(n);
    std::memcpy(fast.ptr(), y0.data(), n * sizeof(float));
    std::memcpy(wide.ptr(), y0.data(), n * sizeof(float));
    const float* bias_values = b->ptr();
    if (!launch_ok("bias_add_v1", 2, 64, 0, n, divisor(channels), divisor(spatial), fast.ptr(), bias_values)) return;
    if (!launch_ok("wide_bias_add_v1", 2, 64, 0, n, divisor(channels), divisor(spatial), wide.ptr(), bias_values)) return;
    int differ = 0;
    for (long long i = 0; i < n; ++i) differ += std::memcmp(&fast[i], &wide[i], sizeof(float)) != 0;
    LP_CHECK(differ == 0, "bias_add_v1 (%s): %d of %lld elements differ", what, differ, n);
    LP_CHECK(std::memcmp(&fast[0], &y0[0], sizeof(float)) != 0, "bias_add_v1 (%s): nothing was added", what);
}

}  // namespace

int main() {
    // Stride 1 and 2, symmetric and TensorFlow's asymmetric "same" padding, a group of images
    // that starts after the first (n0 > 0), non-square images, a 1x1 kernel.
    convolution({3, 1, 2, 3, 9, 7, 3, 2, 0, 1, 4, 4});
    convolution({2, 0, 2, 2, 8, 8, 5, 2, 1, 1, 4, 4});
    convolution({4, 2, 1, 4, 6, 5, 3, 1, 1, 1, 6, 5});
    convolution({2, 0, 2, 6, 5, 5, 1, 1, 0, 0, 5, 5});
    pooling(6, 9, 7, 2, 2);
    pooling(4, 8, 8, 3, 1);
    pooling(2, 7, 9, 3, 2);
    global_pooling(12, 49);
    global_pooling(5, 1);
    bias(3, 5, 49);
    bias(7, 10, 1);
    return finish("index_paths");
}
