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
//   conv_crop_images_v1      [planes, Hp, Wp] -> [planes, H, W], the window at (top, left) (0 beyond Hp, Wp)
//
// Sizes that split a flat index come as precomputed divisors (laperm/fast_divide.cuh; the
// divisor's value is its .divisor): a multiply-high and a shift where a `/` would cost a dozen
// or more instructions. Each loop runs in 32-bit indices when the launch's indices fit.
#include "laperm/fast_divide.cuh"

// Element idx of the NCHW images [n0, n0 + count) <-> its place in the [channels, count * plane]
// matrix; to_matrix chooses the direction.
template <typename Index>
static __device__ __forceinline__ void conv_move_output(bool to_matrix, int n0, int count, lp_divisor channels, lp_divisor plane,
                                                        long long total, const float* __restrict__ from, float* __restrict__ to) {
    for (Index idx = blockIdx.x * (Index)blockDim.x + threadIdx.x; idx < (Index)total; idx += (Index)gridDim.x * blockDim.x) {
        Index p, c;
        const int image = (int)lp_divmod(lp_divmod(idx, plane, &p), channels, &c);
        const long long in_matrix = ((long long)c * count + image) * plane.divisor + p;
        const long long in_nchw = ((long long)(n0 + image) * channels.divisor + c) * plane.divisor + p;
        if (to_matrix) {
            to[in_matrix] = from[in_nchw];
        } else {
            to[in_nchw] = from[in_matrix];
        }
    }
}

extern "C" __global__ void conv_gather_output_v1(int n0, int count, lp_divisor channels, lp_divisor plane, const float* __restrict__ nchw,
                                                 float* __restrict__ matrix) {
    const long long total = (long long)count * channels.divisor * plane.divisor;
    LP_FAST_INDEX_DISPATCH(total, conv_move_output, true, n0, count, channels, plane, total, nchw, matrix)
}

extern "C" __global__ void conv_scatter_output_v1(int n0, int count, lp_divisor channels, lp_divisor plane, const float* __restrict__ matrix,
                                                  float* __restrict__ nchw) {
    const long long total = (long long)count * channels.divisor * plane.divisor;
    LP_FAST_INDEX_DISPATCH(total, conv_move_output, false, n0, count, channels, plane, total, matrix, nchw)
}

template <typename Index>
static __device__ __forceinline__ void conv_pad_elements(long long total, int height, int width, lp_divisor padded_height,
                                                         lp_divisor padded_width, int top, int left, const float* __restrict__ x,
                                                         float* __restrict__ padded) {
    for (Index idx = blockIdx.x * (Index)blockDim.x + threadIdx.x; idx < (Index)total; idx += (Index)gridDim.x * blockDim.x) {
        Index col, row;
        const Index plane = lp_divmod(lp_divmod(idx, padded_width, &col), padded_height, &row);
        const int in_row = (int)row - top, in_col = (int)col - left;
        padded[idx] = in_row >= 0 && in_row < height && in_col >= 0 && in_col < width
            ? x[((long long)plane * height + in_row) * width + in_col] : 0.0f;
    }
}

extern "C" __global__ void conv_pad_images_v1(int planes, int height, int width, lp_divisor padded_height, lp_divisor padded_width,
                                              int top, int left, const float* __restrict__ x, float* __restrict__ padded) {
    const long long total = (long long)planes * padded_height.divisor * padded_width.divisor;
    LP_FAST_INDEX_DISPATCH(total, conv_pad_elements, total, height, width, padded_height, padded_width, top, left, x, padded)
}

template <typename Index>
static __device__ __forceinline__ void conv_crop_elements(long long total, lp_divisor height, lp_divisor width, int padded_height,
                                                          int padded_width, int top, int left, const float* __restrict__ padded,
                                                          float* __restrict__ x) {
    for (Index idx = blockIdx.x * (Index)blockDim.x + threadIdx.x; idx < (Index)total; idx += (Index)gridDim.x * blockDim.x) {
        Index col, row;
        const Index plane = lp_divmod(lp_divmod(idx, width, &col), height, &row);
        const long long padded_row = (long long)row + top, padded_col = (long long)col + left;
        // The padded image ends at the last tap: x's last rows or columns lie beyond it when the
        // kernel is narrower than the stride (no output reads them), so their gradient is 0.
        x[idx] = padded_row < padded_height && padded_col < padded_width
            ? padded[((long long)plane * padded_height + padded_row) * padded_width + padded_col] : 0.0f;
    }
}

extern "C" __global__ void conv_crop_images_v1(int planes, lp_divisor height, lp_divisor width, int padded_height, int padded_width,
                                               int top, int left, const float* __restrict__ padded, float* __restrict__ x) {
    const long long total = (long long)planes * height.divisor * width.divisor;
    LP_FAST_INDEX_DISPATCH(total, conv_crop_elements, total, height, width, padded_height, padded_width, top, left, padded, x)
}
