// im2col.cu: the column matrix of a convolution and its adjoint (NCHW input, OIHW kernels,
// explicit and possibly asymmetric padding: TensorFlow's "same" with stride 2 pads bottom/right).
//
// The column matrix of images [n0, n0 + count) has K = channels * kernel_h * kernel_w rows
// (row r = (ci, ky, kx), kx fastest) and count * P columns (P = out_h * out_w), element
// (r, image, p) at col[r * row_stride + image * image_stride + p]. ConvForward and
// ConvBackwardFilter use the layout [K, count * P] (row_stride = count * P, image_stride = P),
// so one GEMM covers the whole group of images, as the CPU backend does.
//
//   im2col_v1   one thread per column element: the input value it reads, or 0 in the padding
//   col2im_v1   one thread per input element: dx = sum of the column entries that read it,
//               kernel position by kernel position (ky, then kx): the CPU's col2im order,
//               starting from +0.0, so the result is bit-identical for identical columns
#include "laperm/device.cuh"

// Mirrors LaPerm.Cuda.Backend.ConvShape (12 ints).
struct ConvShape {
    int n0, count;                   // first image of the group, images in the group
    int channels, height, width;     // input
    int kernel_h, kernel_w, stride;
    int pad_top, pad_left;
    int out_h, out_w;
};

extern "C" __global__ void im2col_v1(ConvShape g, const float* __restrict__ x, float* __restrict__ col,
                                     long long row_stride, long long image_stride) {
    const int P = g.out_h * g.out_w;
    const long long total = (long long)g.channels * g.kernel_h * g.kernel_w * g.count * P;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
        const int p = (int)(idx % P);
        const long long t = idx / P;
        const int image = (int)(t % g.count);
        const int r = (int)(t / g.count);
        const int kx = r % g.kernel_w;
        const int ky = (r / g.kernel_w) % g.kernel_h;
        const int ci = r / (g.kernel_w * g.kernel_h);
        const int oy = p / g.out_w, ox = p - oy * g.out_w;
        const int iy = oy * g.stride - g.pad_top + ky;
        const int ix = ox * g.stride - g.pad_left + kx;
        float value = 0.0f;
        if (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width) {
            value = x[(((long long)(g.n0 + image) * g.channels + ci) * g.height + iy) * g.width + ix];
        }
        col[r * row_stride + image * image_stride + p] = value;
    }
}

extern "C" __global__ void col2im_v1(ConvShape g, const float* __restrict__ col, float* __restrict__ dx,
                                     long long row_stride, long long image_stride) {
    const long long total = (long long)g.count * g.channels * g.height * g.width;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
        const int ix = (int)(idx % g.width);
        const int iy = (int)((idx / g.width) % g.height);
        const int ci = (int)((idx / ((long long)g.width * g.height)) % g.channels);
        const int image = (int)(idx / ((long long)g.width * g.height * g.channels));
        float sum = 0.0f;
        for (int ky = 0; ky < g.kernel_h; ++ky) {
            const int ty = iy + g.pad_top - ky;           // = oy * stride
            if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= g.out_h) {
                continue;
            }
            const int oy = ty / g.stride;
            for (int kx = 0; kx < g.kernel_w; ++kx) {
                const int tx = ix + g.pad_left - kx;      // = ox * stride
                if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= g.out_w) {
                    continue;
                }
                const int ox = tx / g.stride;
                const long long r = ((long long)ci * g.kernel_h + ky) * g.kernel_w + kx;
                sum += col[r * row_stride + image * image_stride + oy * g.out_w + ox];
            }
        }
        dx[((long long)(g.n0 + image) * g.channels) * g.height * g.width + idx % ((long long)g.channels * g.height * g.width)] = sum;
    }
}
