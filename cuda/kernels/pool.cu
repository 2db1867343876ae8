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
//   global_avgpool_forward_v1 / _backward_v1   one thread per (n, c) plane
//
// Backward passes gather instead of scattering: no atomics, and every input receives its
// contributions in the order the CPU backend's scatter loop adds them (starting from +0.0), so
// every result here is bit-identical to the CPU backend's.
#include "laperm/device.cuh"

// Mirrors LaPerm.Cuda.Backend.PoolShape (7 ints).
struct PoolShape {
    int planes;   // batch * channels
    int in_h, in_w;
    int window, stride;
    int out_h, out_w;
};

extern "C" __global__ void maxpool_forward_v1(PoolShape g, const float* __restrict__ x, float* __restrict__ y,
                                              int* __restrict__ argmax) {
    const long long outputs = (long long)g.planes * g.out_h * g.out_w;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < outputs; o += (long long)gridDim.x * blockDim.x) {
        const int ox = (int)(o % g.out_w);
        const int oy = (int)((o / g.out_w) % g.out_h);
        const long long plane = o / ((long long)g.out_w * g.out_h);
        const int first = (int)(plane * g.in_h * g.in_w) + oy * g.stride * g.in_w + ox * g.stride;
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

// Outputs along one axis whose window [o*stride, o*stride + window) contains input i: [lo, hi].
static __device__ __forceinline__ void pool_covering(int i, int window, int stride, int out, int* lo, int* hi) {
    const int first = i - window + 1;
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = min(out - 1, i / stride);
}

extern "C" __global__ void maxpool_backward_v1(PoolShape g, const float* __restrict__ dy, const int* __restrict__ argmax,
                                               float* __restrict__ dx) {
    const long long inputs = (long long)g.planes * g.in_h * g.in_w;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < inputs; i += (long long)gridDim.x * blockDim.x) {
        const int ix = (int)(i % g.in_w);
        const int iy = (int)((i / g.in_w) % g.in_h);
        const long long plane = i / ((long long)g.in_w * g.in_h);
        int oy_lo, oy_hi, ox_lo, ox_hi;
        pool_covering(iy, g.window, g.stride, g.out_h, &oy_lo, &oy_hi);
        pool_covering(ix, g.window, g.stride, g.out_w, &ox_lo, &ox_hi);
        float sum = 0.0f;
        for (int oy = oy_lo; oy <= oy_hi; ++oy) {
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                const long long o = (plane * g.out_h + oy) * g.out_w + ox;
                if (argmax[o] == (int)i) {
                    sum += dy[o];
                }
            }
        }
        dx[i] = sum;
    }
}

extern "C" __global__ void avgpool_forward_v1(PoolShape g, const float* __restrict__ x, float* __restrict__ y) {
    const long long outputs = (long long)g.planes * g.out_h * g.out_w;
    const float count = (float)(g.window * g.window);
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < outputs; o += (long long)gridDim.x * blockDim.x) {
        const int ox = (int)(o % g.out_w);
        const int oy = (int)((o / g.out_w) % g.out_h);
        const long long plane = o / ((long long)g.out_w * g.out_h);
        const long long first = plane * g.in_h * g.in_w + (long long)oy * g.stride * g.in_w + ox * g.stride;
        float sum = 0.0f;
        for (int wy = 0; wy < g.window; ++wy) {
            for (int wx = 0; wx < g.window; ++wx) {
                sum += x[first + wy * g.in_w + wx];
            }
        }
        y[o] = sum / count;
    }
}

extern "C" __global__ void avgpool_backward_v1(PoolShape g, const float* __restrict__ dy, float* __restrict__ dx) {
    const long long inputs = (long long)g.planes * g.in_h * g.in_w;
    const float count = (float)(g.window * g.window);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < inputs; i += (long long)gridDim.x * blockDim.x) {
        const int ix = (int)(i % g.in_w);
        const int iy = (int)((i / g.in_w) % g.in_h);
        const long long plane = i / ((long long)g.in_w * g.in_h);
        int oy_lo, oy_hi, ox_lo, ox_hi;
        pool_covering(iy, g.window, g.stride, g.out_h, &oy_lo, &oy_hi);
        pool_covering(ix, g.window, g.stride, g.out_w, &ox_lo, &ox_hi);
        float sum = 0.0f;
        for (int oy = oy_lo; oy <= oy_hi; ++oy) {
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                sum += dy[(plane * g.out_h + oy) * g.out_w + ox] / count;
            }
        }
        dx[i] = sum;
    }
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

extern "C" __global__ void global_avgpool_backward_v1(int planes, int spatial, const float* __restrict__ dy, float* __restrict__ dx) {
    const long long n = (long long)planes * spatial;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        dx[i] = dy[i / spatial] / (float)spatial;
    }
}
