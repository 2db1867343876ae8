// scan.cu: inclusive prefix sum, y[i] = x[0] + ... + x[i].
// One launch scans tiles of blockDim.x elements (one per block) and writes each tile's
// total; a longer array is finished by scanning the tile totals (the same kernel, again)
// and adding them back with scan_add_offsets_v1:
//   scan_inclusive_v1 (x -> y, totals)      grid = ceil(n / block)
//   scan_inclusive_v1 (totals -> totals, 0) grid = 1, if there is more than one tile
//   scan_add_offsets_v1 (y, totals)         grid = ceil(n / block)
#include "laperm/device.cuh"

// Inclusive scan across the 32 lanes of a full warp (Hillis-Steele with shuffles).
static __device__ __forceinline__ float warp_inclusive_scan(float value, unsigned lane) {
    for (unsigned offset = 1; offset < 32; offset *= 2) {
        float from_below = __shfl_up_sync(LP_FULL_MASK, value, offset);
        if (lane >= offset) {
            value += from_below;
        }
    }
    return value;
}

// v1: warp scans, then the first warp scans the warp totals, then every warp adds the
// total of the warps before it. blockDim.x must be a multiple of 32, at most 1024 (declared, so
// the driver's compilation of the PTX keeps to registers a 1024-thread block can hold).
// tile_totals may be null (single tile, or the scan of the totals itself). x and y may be the
// same buffer (the scan of the totals is in place), so neither is __restrict__.
extern "C" __global__ __launch_bounds__(1024) void scan_inclusive_v1(int n, const float* x, float* y,
                                             float* __restrict__ tile_totals) {
    __shared__ float warp_totals[32];
    const unsigned lane = threadIdx.x % 32;
    const unsigned warp = threadIdx.x / 32;
    const unsigned warps = blockDim.x / 32;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;

    float value = i < n ? x[i] : 0.0f;
    value = warp_inclusive_scan(value, lane);
    if (lane == 31) {
        warp_totals[warp] = value;
    }
    __syncthreads();

    if (warp == 0) {
        float total = lane < warps ? warp_totals[lane] : 0.0f;
        warp_totals[lane] = warp_inclusive_scan(total, lane);
    }
    __syncthreads();

    if (warp > 0) {
        value += warp_totals[warp - 1];
    }
    if (i < n) {
        y[i] = value;
    }
    if (tile_totals != nullptr && threadIdx.x == blockDim.x - 1) {
        tile_totals[blockIdx.x] = value;
    }
}

// Adds the scanned total of all previous tiles to every element of tile blockIdx.x.
extern "C" __global__ void scan_add_offsets_v1(int n, float* __restrict__ y, const float* __restrict__ scanned_tile_totals) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (blockIdx.x > 0 && i < n) {
        y[i] += scanned_tile_totals[blockIdx.x - 1];
    }
}
