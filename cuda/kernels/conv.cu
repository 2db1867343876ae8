// conv.cu: layout moves around the convolution GEMMs. A group of `count` images is computed
// as one GEMM whose output (or output gradient) is the [cout, count * P] matrix; activations
// are NCHW = [count, cout, P]. These two kernels convert between the two (pure copies, exact).
//
//   conv_gather_output_v1    [n0 + count images of NCHW] -> [cout, count * P]   (dy for the GEMMs)
//   conv_scatter_output_v1   [cout, count * P] -> images [n0, n0 + count) of NCHW  (y)
//
// And for cuDNN, which pads symmetrically only, TF's asymmetric "same" padding made explicit:
//
//   conv_pad_images_v1       [planes, H, W] -> [planes, Hp, Wp], x at (top, left), zeros around
//   conv_crop_images_v1      [planes, Hp, Wp] -> [planes, H, W], the window at (top, left)
#include "laperm/device.cuh"

extern "C" __global__ void conv_gather_output_v1(int n0, int count, int channels, int plane, const float* __restrict__ nchw,
                                                 float* __restrict__ matrix) {
    const long long total = (long long)count * channels * plane;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
        const int p = (int)(idx % plane);
        const int c = (int)((idx / plane) % channels);
        const int image = (int)(idx / ((long long)plane * channels));
        matrix[((long long)c * count + image) * plane + p] = nchw[((long long)(n0 + image) * channels + c) * plane + p];
    }
}

extern "C" __global__ void conv_scatter_output_v1(int n0, int count, int channels, int plane, const float* __restrict__ matrix,
                                                  float* __restrict__ nchw) {
    const long long total = (long long)count * channels * plane;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
        const int p = (int)(idx % plane);
        const int c = (int)((idx / plane) % channels);
        const int image = (int)(idx / ((long long)plane * channels));
        nchw[((long long)(n0 + image) * channels + c) * plane + p] = matrix[((long long)c * count + image) * plane + p];
    }
}

extern "C" __global__ void conv_pad_images_v1(int planes, int height, int width, int padded_height, int padded_width, int top,
                                              int left, const float* __restrict__ x, float* __restrict__ padded) {
    const long long total = (long long)planes * padded_height * padded_width;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
        const int col = (int)(idx % padded_width) - left;
        const int row = (int)((idx / padded_width) % padded_height) - top;
        const long long plane = idx / ((long long)padded_height * padded_width);
        padded[idx] = row >= 0 && row < height && col >= 0 && col < width ? x[(plane * height + row) * width + col] : 0.0f;
    }
}

extern "C" __global__ void conv_crop_images_v1(int planes, int height, int width, int padded_height, int padded_width, int top,
                                               int left, const float* __restrict__ padded, float* __restrict__ x) {
    const long long total = (long long)planes * height * width;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
        const int col = (int)(idx % width);
        const int row = (int)((idx / width) % height);
        const long long plane = idx / ((long long)height * width);
        x[idx] = padded[(plane * padded_height + row + top) * padded_width + col + left];
    }
}
