// pool.cu: 2-D max and average pooling ("valid" windows, NCHW) and global average pooling.
//
//   maxpool_forward_v1    one thread per output: max of its window, first max (row-major) wins,
//                         a NaN anywhere in the window wins (the first one);
//                         argmax = flat index into x of the chosen input
//   maxpool_backward_v1   one thread per input: dx = sum of dy over the outputs whose argmax is
//                         this input, in increasing output order
//   avgpool_forward_v1    one thread per output: window sum (row-major) / (window * window)
//   avgpool_backward_v1   one thread per input: sum of dy / (window * window) over the outputs
//                         whose window covers it, in increasing output order
//   global_avgpool_forward_v1   one thread per (n, c) plane: sequential sum / spatial
//   global_avgpool_backward_v1  one thread per input: dy of its plane / spatial
//
// Backward passes gather instead of scattering: no atomics, and every input receives its
// contributions in the order the CPU backend's scatter loop adds them (starting from +0.0), so
// every result here is bit-identical to the CPU backend's. Flat indices are split with the
// launch's precomputed divisors (laperm/fast_divide.cuh), not with `/`.
#include "laperm/fast_divide.cuh"

// Mirrors LaPerm.Cuda.Backend.PoolShape: 7 ints, then the divisors of the index arithmetic.
struct PoolShape {
    int planes;   // batch * channels
    int in_h, in_w;
    int window, stride;
    int out_h, out_w;
    lp_divisor by_in_w, by_in_h, by_out_w, by_out_h, by_stride;
};

template <typename Index>
static __device__ __forceinline__ void maxpool_forward_elements(const PoolShape& g, long long outputs, const float* __restrict__ x,
                                                                float* __restrict__ y, int* __restrict__ argmax) {
    for (Index o = blockIdx.x * (Index)blockDim.x + threadIdx.x; o < (Index)outputs; o += (Index)gridDim.x * blockDim.x) {
        Index ox, oy;
        const Index plane = lp_divmod(lp_divmod(o, g.by_out_w, &ox), g.by_out_h, &oy);
        const int first = (int)(plane * g.in_h * g.in_w) + (int)oy * g.stride * g.in_w + (int)ox * g.stride;
        int best = first;
        float best_value = x[first];
        for (int wy = 0; wy < g.window; ++wy) {
            const int row = first + wy * g.in_w;
            for (int wx = 0; wx < g.window; ++wx) {
                const float v = x[row + wx];
                if (v > best_value || (isnan(v) && !isnan(best_value))) {   // the first max wins; the first NaN over any number
                    best_value = v;
                    best = row + wx;
                }
            }
        }
        y[o] = best_value;
        argmax[o] = best;
    }
}

extern "C" __global__ void maxpool_forward_v1(PoolShape g, const float* __restrict__ x, float* __restrict__ y,
                                              int* __restrict__ argmax) {
    const long long outputs = (long long)g.planes * g.out_h * g.out_w;
    LP_FAST_INDEX_DISPATCH(outputs, maxpool_forward_elements, g, outputs, x, y, argmax)
}

// Outputs along one axis whose window [o*stride, o*stride + window) contains input i: [lo, hi].
static __device__ __forceinline__ void pool_covering(int i, int window, lp_divisor stride, int out, int* lo, int* hi) {
    const int first = i - window + 1;
    *lo = first <= 0 ? 0 : (int)lp_div((unsigned)(first + (int)stride.divisor - 1), stride);
    *hi = min(out - 1, (int)lp_div((unsigned)i, stride));
}

template <typename Index>
static __device__ __forceinline__ void maxpool_backward_elements(const PoolShape& g, long long inputs, const float* __restrict__ dy,
                                                                 const int* __restrict__ argmax, float* __restrict__ dx) {
    for (Index i = blockIdx.x * (Index)blockDim.x + threadIdx.x; i < (Index)inputs; i += (Index)gridDim.x * blockDim.x) {
        Index ix, iy;
        const Index plane = lp_divmod(lp_divmod(i, g.by_in_w, &ix), g.by_in_h, &iy);
        int oy_lo, oy_hi, ox_lo, ox_hi;
        pool_covering((int)iy, g.window, g.by_stride, g.out_h, &oy_lo, &oy_hi);
        pool_covering((int)ix, g.window, g.by_stride, g.out_w, &ox_lo, &ox_hi);
        float sum = 0.0f;
        for (int oy = oy_lo; oy <= oy_hi; ++oy) {
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                const long long o = ((long long)plane * g.out_h + oy) * g.out_w + ox;
                if (argmax[o] == (int)i) {
                    sum += dy[o];
                }
            }
        }
        dx[i] = sum;
    }
}

extern "C" __global__ void maxpool_backward_v1(PoolShape g, const float* __restrict__ dy, const int* __restrict__ argmax,
                                               float* __restrict__ dx) {
    const long long inputs = (long long)g.planes * g.in_h * g.in_w;
    LP_FAST_INDEX_DISPATCH(inputs, maxpool_backward_elements, g, inputs, dy, argmax, dx)
}

template <typename Index>
static __device__ __forceinline__ void avgpool_forward_elements(const PoolShape& g, long long outputs, const float* __restrict__ x,
                                                                float* __restrict__ y) {
    const float count = (float)(g.window * g.window);
    for (Index o = blockIdx.x * (Index)blockDim.x + threadIdx.x; o < (Index)outputs; o += (Index)gridDim.x * blockDim.x) {
        Index ox, oy;
        const Index plane = lp_divmod(lp_divmod(o, g.by_out_w, &ox), g.by_out_h, &oy);
        const long long first = (long long)plane * g.in_h * g.in_w + (long long)oy * g.stride * g.in_w + (long long)ox * g.stride;
        float sum = 0.0f;
        for (int wy = 0; wy < g.window; ++wy) {
            for (int wx = 0; wx < g.window; ++wx) {
                sum += x[first + wy * g.in_w + wx];
            }
        }
        y[o] = sum / count;
    }
}

extern "C" __global__ void avgpool_forward_v1(PoolShape g, const float* __restrict__ x, float* __restrict__ y) {
    const long long outputs = (long long)g.planes * g.out_h * g.out_w;
    LP_FAST_INDEX_DISPATCH(outputs, avgpool_forward_elements, g, outputs, x, y)
}

template <typename Index>
static __device__ __forceinline__ void avgpool_backward_elements(const PoolShape& g, long long inputs, const float* __restrict__ dy,
                                                                 float* __restrict__ dx) {
    const float count = (float)(g.window * g.window);
    for (Index i = blockIdx.x * (Index)blockDim.x + threadIdx.x; i < (Index)inputs; i += (Index)gridDim.x * blockDim.x) {
        Index ix, iy;
        const Index plane = lp_divmod(lp_divmod(i, g.by_in_w, &ix), g.by_in_h, &iy);
        int oy_lo, oy_hi, ox_lo, ox_hi;
        pool_covering((int)iy, g.window, g.by_stride, g.out_h, &oy_lo, &oy_hi);
        pool_covering((int)ix, g.window, g.by_stride, g.out_w, &ox_lo, &ox_hi);
        float sum = 0.0f;
        for (int oy = oy_lo; oy <= oy_hi; ++oy) {
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                sum += dy[((long long)plane * g.out_h + oy) * g.out_w + ox] / count;
            }
        }
        dx[i] = sum;
    }
}

extern "C" __global__ void avgpool_backward_v1(PoolShape g, const float* __restrict__ dy, float* __restrict__ dx) {
    const long long inputs = (long long)g.planes * g.in_h * g.in_w;
    LP_FAST_INDEX_DISPATCH(inputs, avgpool_backward_elements, g, inputs, dy, dx)
}

// y[plane] = (sequential float sum of the plane's `spatial` values) / spatial.
extern "C" __global__ void global_avgpool_forward_v1(int planes, int spatial, const float* __restrict__ x, float* __restrict__ y) {
    for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < planes; p += (long long)gridDim.x * blockDim.x) {
        const float* plane = x + (long long)p * spatial;
        float sum = 0.0f;
        for (int s = 0; s < spatial; ++s) {
            sum += plane[s];
        }
        y[p] = sum / (float)spatial;
    }
}

template <typename Index>
static __device__ __forceinline__ void global_avgpool_backward_elements(long long inputs, lp_divisor spatial, const float* __restrict__ dy,
                                                                        float* __restrict__ dx) {
    const float count = (float)spatial.divisor;
    for (Index i = blockIdx.x * (Index)blockDim.x + threadIdx.x; i < (Index)inputs; i += (Index)gridDim.x * blockDim.x) {
        dx[i] = dy[lp_div(i, spatial)] / count;
    }
}

// One thread per input: dx[n,c,s] = dy[n,c] / spatial.
extern "C" __global__ void global_avgpool_backward_v1(int planes, lp_divisor spatial, const float* __restrict__ dy, float* __restrict__ dx) {
    const long long inputs = (long long)planes * spatial.divisor;
    LP_FAST_INDEX_DISPATCH(inputs, global_avgpool_backward_elements, inputs, spatial, dy, dx)
}
