// data.cu: one training batch gathered on the device from the data set's raw bytes, uploaded once
// per run. Per image: the epoch order's record for the batch position (a keyed Feistel network with
// cycle-walking), its label, and its pixels normalised to x / 255 or warped by the image's random
// affine transform. Every step is EXACTLY the C# reference's arithmetic, so the batch is bit for
// bit the CPU backend's:
//
//   epoch_order_index   LaPerm.Core.Data.EpochShuffler.IndexAt   (64-bit integers only)
//   augment_uniform     LaPerm.Core.Backend.DropoutRandom.Uniform, drawn as Augmenter.Draw does
//   sincos_degrees      LaPerm.Core.Data.ImageWarp.SinCosDegrees (+ - * / on doubles only)
//   sampling map        LaPerm.Core.Data.AffineTransform.ToSamplingMap (double, rounded once to float)
//   bilinear warp       LaPerm.Core.Data.ImageWarp.Warp        (float, in the same order)
//
// No contraction anywhere (the build compiles with it off: nvcc -fmad=false, clang/g++
// -ffp-contract=off), and IEEE +, -, *, / and float<->double conversions round the same on the
// GPU, in the emulator and in .NET, which does not contract either.
#include "laperm/device.cuh"
#include "laperm/step.cuh"

// The data set on the device, written once by the upload (48 bytes: pointers first).
struct DataSetRecord {
    const unsigned char* images;   // count x channels x height x width bytes
    const unsigned char* labels;   // count bytes
    int count;
    int channels;
    int height;
    int width;
    long long reserved;
};

// SplitMix64's finaliser (LaPerm.Core.Backend.DropoutRandom.Mix; dropout.cu has the same function).
static __device__ __forceinline__ unsigned long long data_mix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// ---- the epoch order (EpochShuffler) ---------------------------------------------------------

#define DATA_SHUFFLE_SALT 0x5D1F0B6A93C427E5ull
#define DATA_SHUFFLE_ROUNDS 6u

// Position -> record: a balanced Feistel network on 2 * half_bits bits, walked until below count.
static __device__ int epoch_order_index(unsigned long long seed, int epoch, int count, int position) {
    const unsigned long long key = data_mix(seed ^ DATA_SHUFFLE_SALT ^ ((unsigned long long)(unsigned)epoch * 0x9E3779B97F4A7C15ull));
    const int bits = 32 - __clz(count - 1);
    const int half_bits = max(1, (bits + 1) / 2);
    const unsigned mask = (1u << half_bits) - 1u;
    unsigned x = (unsigned)position;
    do {
        unsigned left = x >> half_bits, right = x & mask;
        for (unsigned round = 0; round < DATA_SHUFFLE_ROUNDS; round++) {
            const unsigned long long f = data_mix(key ^ ((((unsigned long long)round << 32) | right) * 0xD1B54A32D192ED03ull));
            const unsigned next = left ^ ((unsigned)f & mask);
            left = right;
            right = next;
        }
        x = (left << half_bits) | right;
    } while (x >= (unsigned)count);
    return (int)x;
}

// ---- the augmentation draw (Augmenter.Draw) and its sampling map --------------------------------

#define DATA_DRAWS_PER_IMAGE 8u

// DropoutRandom.Uniform(stream, epoch, index): 24 random bits in [0, 1).
static __device__ float augment_uniform(unsigned long long stream, int epoch, unsigned index) {
    const unsigned long long s = data_mix(stream ^ ((unsigned long long)(long long)epoch * 0x9E3779B97F4A7C15ull));
    const unsigned long long z = data_mix(s + ((unsigned long long)index + 1ull) * 0x9E3779B97F4A7C15ull);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

// Uniform in [-range, range]; exactly 0 without a draw when the range is 0 (as the C# Symmetric).
static __device__ float augment_symmetric(unsigned long long stream, int epoch, unsigned index, float range) {
    if (range == 0.0f) return 0.0f;
    return (2.0f * augment_uniform(stream, epoch, index) - 1.0f) * range;
}

// ImageWarp.SinCosDegrees: |degrees| <= 360 (the Augmenter checks its preset), reduced to
// [-45, 45] by exact steps of 90, then the Taylor series in Horner form.
static __device__ void sincos_degrees(float degrees, double* sin_out, double* cos_out) {
    double reduced = (double)degrees;
    int quadrant = 0;
    while (reduced > 45.0) { reduced -= 90.0; quadrant++; }
    while (reduced < -45.0) { reduced += 90.0; quadrant--; }
    const double x = reduced * (3.141592653589793 / 180.0);
    const double x2 = x * x;
    double sin_series = 1.0, cos_series = 1.0;
    for (int k = 9; k >= 1; k--) {
        sin_series = 1.0 - x2 / (double)((2 * k) * (2 * k + 1)) * sin_series;
        cos_series = 1.0 - x2 / (double)((2 * k - 1) * (2 * k)) * cos_series;
    }
    const double s = x * sin_series, c = cos_series;
    switch (quadrant & 3) {
        case 0: *sin_out = s; *cos_out = c; break;
        case 1: *sin_out = c; *cos_out = -s; break;
        case 2: *sin_out = -s; *cos_out = -c; break;
        default: *sin_out = -c; *cos_out = s; break;
    }
}

// Augmenter.Draw + AffineTransform.ToSamplingMap: map[0..5] = A, B, C, D, E, F.
static __device__ void augment_map(unsigned long long stream, int epoch, int record, int height, int width,
                                   float rotation_range, float zoom_range, float shift_range_x, float shift_range_y,
                                   int flip_enabled, float* map) {
    const unsigned first = (unsigned)record * DATA_DRAWS_PER_IMAGE;
    const float rotation = augment_symmetric(stream, epoch, first + 0u, rotation_range);
    const float zoom_x = 1.0f + augment_symmetric(stream, epoch, first + 1u, zoom_range);
    const float zoom_y = 1.0f + augment_symmetric(stream, epoch, first + 2u, zoom_range);
    const float shift_x = augment_symmetric(stream, epoch, first + 3u, shift_range_x);
    const float shift_y = augment_symmetric(stream, epoch, first + 4u, shift_range_y);
    const bool flip = flip_enabled != 0 && augment_uniform(stream, epoch, first + 5u) < 0.5f;

    double sin, cos;
    sincos_degrees(rotation, &sin, &cos);
    const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
    double a = cos / (double)zoom_x, b = -sin / (double)zoom_x;
    const double d = sin / (double)zoom_y, e = cos / (double)zoom_y;
    const double ox = cx + (double)shift_x, oy = cy + (double)shift_y;
    double c = cx - a * ox - b * oy;
    const double f = cy - d * ox - e * oy;
    if (flip) {
        a = -a;
        b = -b;
        c = (width - 1) - c;
    }
    map[0] = (float)a; map[1] = (float)b; map[2] = (float)c;
    map[3] = (float)d; map[4] = (float)e; map[5] = (float)f;
}

// Math.Clamp's order of comparisons (value below min: min; above max: max).
static __device__ __forceinline__ float data_clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
static __device__ __forceinline__ int data_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// ---- the kernel ---------------------------------------------------------------------------------

// v1: one block per batch image (grid.x = batch size). Training (stored_start < 0): the epoch and the
// batch's first position come from the per-step block (laperm/step.cuh) that BeginStep writes, so a
// launch captured into a graph gathers the right batch at every replayed step, and image i is the
// epoch order's record at that position. Evaluation (stored_start >= 0, never captured): image i is
// record stored_start + i in stored order, with every augmentation range 0 (the block is not read). Thread 0 finds the record and its sampling
// map, then the block's threads write the pixels (C x H x W floats) as ImageWarp.Warp or
// ImageWarp.Normalise. Augmentation is off when every range is 0 and flipping is off
// (AugmentationPreset.IsIdentity). The stream is Augmenter.RandomStream; shift ranges are
// ShiftFraction * width and * height, in float, as Augmenter.Draw computes them.
extern "C" __global__ void gather_batch_v1(const DataSetRecord* __restrict__ data, unsigned long long shuffle_seed,
                                           const StepScalars* __restrict__ scalars, int stored_start,
                                           unsigned long long augment_stream, float rotation_range, float zoom_range,
                                           float shift_range_x, float shift_range_y, int flip_enabled,
                                           float* __restrict__ images, int* __restrict__ labels) {
    __shared__ int s_record;
    __shared__ float s_map[6];
    const int count = data->count, channels = data->channels, height = data->height, width = data->width;
    const bool augment = rotation_range != 0.0f || zoom_range != 0.0f || shift_range_x != 0.0f || shift_range_y != 0.0f
                         || flip_enabled != 0;
    const bool in_epoch_order = stored_start < 0;
    const int epoch = in_epoch_order ? scalars->epoch : 0;
    const int image = blockIdx.x;
    const long long position = (in_epoch_order ? (long long)scalars->batch_start : (long long)stored_start) + image;
    if (threadIdx.x == 0) {
        // The host checks the batch against the values it gave BeginStep; a position outside the
        // epoch here (a block written by something else) must not walk forever: it gives NaN
        // pixels and label -1, which make the loss NaN.
        const bool inside = position >= 0 && position < count;
        const int record = !inside ? -1 : in_epoch_order ? epoch_order_index(shuffle_seed, epoch, count, (int)position) : (int)position;
        s_record = record;
        labels[image] = inside ? (int)data->labels[record] : -1;
        if (augment && inside)
            augment_map(augment_stream, epoch, record, height, width, rotation_range, zoom_range,
                        shift_range_x, shift_range_y, flip_enabled, s_map);
    }
    __syncthreads();

    const int plane = height * width;
    const long long sample = (long long)channels * plane;
    float* dst = images + (long long)image * sample;
    if (s_record < 0) {
        for (long long i = threadIdx.x; i < sample; i += blockDim.x) dst[i] = NAN;
        return;
    }
    const unsigned char* src = data->images + (long long)s_record * sample;
    if (!augment) {
        for (long long i = threadIdx.x; i < sample; i += blockDim.x) dst[i] = (float)src[i] / 255.0f;
        return;
    }
    const float A = s_map[0], B = s_map[1], C = s_map[2], D = s_map[3], E = s_map[4], F = s_map[5];
    const int last_x = width - 1, last_y = height - 1;
    // (y, x) of pixel o, stepped along with o: two divisions per thread instead of one per pixel.
    const int step_y = (int)blockDim.x / width, step_x = (int)blockDim.x - step_y * width;
    int y = (int)threadIdx.x / width, x = (int)threadIdx.x - y * width;
    for (int o = threadIdx.x; o < plane; o += blockDim.x, x += step_x, y += step_y) {
        if (x >= width) {
            x -= width;
            ++y;
        }
        const float fxo = (float)x, fyo = (float)y;
        const float sx = data_clampf(A * fxo + B * fyo + C, -1.0f, (float)width);
        const float sy = data_clampf(D * fxo + E * fyo + F, -1.0f, (float)height);
        const float floor_x = floorf(sx), floor_y = floorf(sy);
        const float fx = sx - floor_x, fy = sy - floor_y;
        const int ix = (int)floor_x, iy = (int)floor_y;
        const int x0 = data_clampi(ix, 0, last_x), x1 = data_clampi(ix + 1, 0, last_x);
        const int y0 = data_clampi(iy, 0, last_y) * width, y1 = data_clampi(iy + 1, 0, last_y) * width;
        for (int p = 0; p < channels * plane; p += plane) {
            const float p00 = (float)src[p + y0 + x0], p01 = (float)src[p + y0 + x1];
            const float p10 = (float)src[p + y1 + x0], p11 = (float)src[p + y1 + x1];
            const float top = p00 + fx * (p01 - p00);
            const float bottom = p10 + fx * (p11 - p10);
            const float value = top + fy * (bottom - top);
            dst[p + o] = data_clampf(value, 0.0f, 255.0f) / 255.0f;
        }
    }
}
