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
//
// Both split flat indices with the launch's precomputed divisors (laperm/fast_divide.cuh):
// a multiply-high and a shift where a `/` would cost a dozen or more instructions.
#include "laperm/fast_divide.cuh"

// Mirrors LaPerm.Cuda.Backend.ConvShape: 12 ints, then the divisors of the index arithmetic.
struct ConvShape {
    int n0, count;                   // first image of the group, images in the group
    int channels, height, width;     // input
    int kernel_h, kernel_w, stride;
    int pad_top, pad_left;
    int out_h, out_w;
    lp_divisor by_plane;             // out_h * out_w
    lp_divisor by_count, by_kernel_w, by_kernel_h, by_out_w;
    lp_divisor by_width, by_height, by_channels, by_stride;
};

template <typename Index>
static __device__ __forceinline__ void im2col_elements(const ConvShape& g, const float* __restrict__ x, float* __restrict__ col,
                                                       long long row_stride, long long image_stride, long long total) {
    for (Index idx = blockIdx.x * (Index)blockDim.x + threadIdx.x; idx < (Index)total; idx += (Index)gridDim.x * blockDim.x) {
        Index p, image, kx, ky, ox;
        const Index t = lp_divmod(idx, g.by_plane, &p);            // t = r * count + image
        const Index r = lp_divmod(t, g.by_count, &image);          // r = (ci * kernel_h + ky) * kernel_w + kx
        const Index rk = lp_divmod(r, g.by_kernel_w, &kx);
        const int ci = (int)lp_divmod(rk, g.by_kernel_h, &ky);
        const int oy = (int)lp_divmod(p, g.by_out_w, &ox);
        const int iy = oy * g.stride - g.pad_top + (int)ky;
        const int ix = (int)ox * g.stride - g.pad_left + (int)kx;
        float value = 0.0f;
        if (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width) {
            value = x[(((long long)(g.n0 + (int)image) * g.channels + ci) * g.height + iy) * g.width + ix];
        }
        col[(long long)r * row_stride + (long long)image * image_stride + (long long)p] = value;
    }
}

extern "C" __global__ void im2col_v1(ConvShape g, const float* __restrict__ x, float* __restrict__ col,
                                     long long row_stride, long long image_stride) {
    const long long total = (long long)g.channels * g.kernel_h * g.kernel_w * g.count * g.out_h * g.out_w;
    LP_FAST_INDEX_DISPATCH(total, im2col_elements, g, x, col, row_stride, image_stride, total)
}

template <typename Index>
static __device__ __forceinline__ void col2im_elements(const ConvShape& g, const float* __restrict__ col, float* __restrict__ dx,
                                                       long long row_stride, long long image_stride, long long total) {
    for (Index idx = blockIdx.x * (Index)blockDim.x + threadIdx.x; idx < (Index)total; idx += (Index)gridDim.x * blockDim.x) {
        Index ix, iy, ci;
        const Index rows = lp_divmod(idx, g.by_width, &ix);         // rows = (image * channels + ci) * height + iy
        const Index planes = lp_divmod(rows, g.by_height, &iy);
        const int image = (int)lp_divmod(planes, g.by_channels, &ci);
        float sum = 0.0f;
        for (int ky = 0; ky < g.kernel_h; ++ky) {
            const int ty = (int)iy + g.pad_top - ky;      // = oy * stride
            if (ty < 0) {
                continue;
            }
            unsigned ty_rest;
            const int oy = (int)lp_divmod((unsigned)ty, g.by_stride, &ty_rest);
            if (ty_rest != 0 || oy >= g.out_h) {
                continue;
            }
            for (int kx = 0; kx < g.kernel_w; ++kx) {
                const int tx = (int)ix + g.pad_left - kx;  // = ox * stride
                if (tx < 0) {
                    continue;
                }
                unsigned tx_rest;
                const int ox = (int)lp_divmod((unsigned)tx, g.by_stride, &tx_rest);
                if (tx_rest != 0 || ox >= g.out_w) {
                    continue;
                }
                const long long r = ((long long)ci * g.kernel_h + ky) * g.kernel_w + kx;
                sum += col[r * row_stride + image * image_stride + oy * g.out_w + ox];
            }
        }
        dx[(((long long)(g.n0 + image) * g.channels + (int)ci) * g.height + (int)iy) * g.width + (int)ix] = sum;
    }
}

extern "C" __global__ void col2im_v1(ConvShape g, const float* __restrict__ col, float* __restrict__ dx,
                                     long long row_stride, long long image_stride) {
    const long long total = (long long)g.count * g.channels * g.height * g.width;
    LP_FAST_INDEX_DISPATCH(total, col2im_elements, g, col, dx, row_stride, image_stride, total)
}
