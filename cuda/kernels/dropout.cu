// dropout.cu: inverted dropout with a counter-based random number per element, so the mask
// is a pure function of (seed, step, element index): no generator state, identical on every
// backend. The arithmetic is EXACTLY LaPerm.Core.Backend.DropoutRandom's, on 64-bit integers:
//
//   mix(z)      = SplitMix64's finaliser
//   stream      = mix(seed ^ (step * golden))
//   uniform(i)  = (mix(stream + (i + 1) * golden) >> 40) * 2^-24      (24 random bits)
//
// An element is kept when uniform(i) >= rate; kept elements are scaled by `scale`
// (= 1 / (1 - rate), computed once in float by the caller, as the CPU backend does).
// The step comes from the per-step block (laperm/step.cuh), so a captured launch draws a new
// mask at every replayed step.
#include "laperm/device.cuh"
#include "laperm/step.cuh"

static __device__ __forceinline__ unsigned long long dropout_mix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static __device__ __forceinline__ float dropout_uniform(unsigned long long stream, unsigned index) {
    const unsigned long long z = dropout_mix(stream + ((unsigned long long)index + 1ull) * 0x9E3779B97F4A7C15ull);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

// v1: one element per thread iteration (grid-stride). mask[i] = 1 kept, 0 dropped.
extern "C" __global__ void dropout_forward_v1(long long n, float rate, float scale, unsigned long long seed,
                                              const StepScalars* __restrict__ scalars,
                                              const float* __restrict__ x, float* __restrict__ y,
                                              unsigned char* __restrict__ mask) {
    const unsigned long long step = (unsigned long long)scalars->step;
    const unsigned long long stream = dropout_mix(seed ^ (step * 0x9E3779B97F4A7C15ull));
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const bool keep = dropout_uniform(stream, (unsigned)i) >= rate;
        mask[i] = keep ? 1 : 0;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

// dx = mask ? dy * scale : 0 (dy and dx may be the same buffer).
extern "C" __global__ void dropout_backward_v1(long long n, float scale, const float* dy, const unsigned char* __restrict__ mask,
                                               float* dx) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        dx[i] = mask[i] != 0 ? dy[i] * scale : 0.0f;
    }
}
