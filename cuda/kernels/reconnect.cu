// Reconnection on the device: for every row of every synchronised tensor,
//     w[order[i]] = sorted0[i],   order = stable argsort of the row,
// bit-identical to LaPerm.Core.Backend.Reconnection.SyncRow.
//
// Total order: a float maps to an unsigned key (sign set ? ~bits : bits | 0x80000000), so
// -NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN; ties keep column order. Sorting the
// 64-bit composite (key << 32 | column) gives the same result as a stable sort of the keys,
// because the composites are unique.
//
// Work comes from a device-resident descriptor table (ReconnectTensor, 40 bytes, mirrored by
// LaPerm.Cuda.Reconnect.ReconnectTensor). One launch covers a contiguous range of the table;
// blocks find their tensor by binary search over firstRow / firstChunk. Nothing allocates or
// synchronises with the host, so every launch can be captured in a CUDA graph.
//
// Kernels (variant numbers as in --reconnect-variant):
//   reconnect_argsort_rows + reconnect_scatter_rows variant 1 (two-pass baseline: argsort
//                                                  into a global index buffer, then scatter)
//   reconnect_chunk_sort + reconnect_chunk_merge   variant 5 (rows longer than a block holds;
//                                                  also the fallback of every other variant)
//   reconnect_warp32 / _warp64 / _warp128          variant 2 (warp per row, registers + shuffles)
//   reconnect_block_bitonic                        variant 3 (block per row, shared-memory bitonic)
//   reconnect_block_radix                          variant 4 (block per row, shared-memory LSD radix)
//   reconnect_bucket_i1 .. _i32                    variant 6 (block per row, bucket rank, registers)
//   reconnect_bucket_staged_256 .. _8192           variant 7 (variant 6, 512 threads above 2048, sorted0 in smem)
//   reconnect_bucket_narrow_256 .. _8192           variant 8 (variant 7's kernel, 16 elements per thread, 32..512 threads)
//   reconnect_bucket_sized_i8, _i12, _i16          variant 9 (variant 7's kernel, blocks sized to the row)
#include <laperm/device.cuh>

struct ReconnectTensor
{
    float* w;                  // row r starts at w + r * rowLength
    const float* sorted0;      // the sorted initial rows, same layout
    long long scratchOffset;   // first element of this tensor in the chunk kernels' scratch buffer
    int rows;
    int rowLength;
    int firstRow;              // prefix sum of rows over the launch's table range
    int firstChunk;            // prefix sum of chunks (chunk kernels only)
};

#define RC_FULL_MASK 0xffffffffu
// Kernels launched with more than 256 threads per block (bitonic, two-pass argsort and staged
// 4096/8192 up to 512, chunk sort up to 1024; see ReconnectPlanner) declare it with
// __launch_bounds__: the driver compiles our PTX when it loads it, without knowing the block
// size, and a kernel given more registers than such a block can hold would fail to launch.
//
// Unrolling keeps the warp kernels' register arrays in registers; the emulator's C++
// compiler does not know the pragma.
#if defined(__CUDACC__) || defined(__CUDA__)
#define RC_UNROLL _Pragma("unroll")
#define RC_UNROLL_2 _Pragma("unroll 2")
#define RC_NO_UNROLL _Pragma("unroll 1")
#else
#define RC_UNROLL
#define RC_UNROLL_2
#define RC_NO_UNROLL
#endif
#define RC_SENTINEL 0xffffffffffffffffull

__device__ __forceinline__ unsigned rc_order_key(float value)
{
    unsigned bits = __float_as_uint(value);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ unsigned long long rc_composite(float value, int column)
{
    return ((unsigned long long)rc_order_key(value) << 32) | (unsigned)column;
}

// Largest table index whose first item is <= item (tables are short: one entry per tensor).
__device__ __forceinline__ int rc_find_tensor(const ReconnectTensor* table, int tensorCount, int item, bool byChunk)
{
    int lo = 0, hi = tensorCount - 1;
    while (lo < hi)
    {
        int mid = (lo + hi + 1) >> 1;
        int first = byChunk ? table[mid].firstChunk : table[mid].firstRow;
        if (first <= item) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// The row a block (or a warp) reconnects: its tensor (for the two-pass paths' scratch offset),
// where the row starts in it, its weights and sorted initial values, and its length.
struct RcRow
{
    const ReconnectTensor* tensor;
    long long start;
    float* w;
    const float* s0;
    int n;
};

__device__ __forceinline__ RcRow rc_row(const ReconnectTensor* table, int tensorCount, int row)
{
    const ReconnectTensor* t = table + rc_find_tensor(table, tensorCount, row, false);
    const long long start = (long long)(row - t->firstRow) * t->rowLength;
    return RcRow{t, start, t->w + start, t->sorted0 + start, t->rowLength};
}

__device__ __forceinline__ unsigned long long rc_shfl_xor64(unsigned long long v, int laneMask)
{
    unsigned lo = __shfl_xor_sync(RC_FULL_MASK, (unsigned)v, laneMask);
    unsigned hi = __shfl_xor_sync(RC_FULL_MASK, (unsigned)(v >> 32), laneMask);
    return ((unsigned long long)hi << 32) | lo;
}

__device__ __forceinline__ int rc_next_pow2(int n)
{
    int p = 1;
    while (p < n) p <<= 1;
    return p;
}

// ---------------------------------------------------------------------------------------
// Variant 2: one warp per row, the row's composites in registers (K per lane, element
// index i = k * 32 + lane), bitonic network over 32*K slots padded with sentinels.
// Strides >= 32 swap registers, strides < 32 exchange through shuffles.
// ---------------------------------------------------------------------------------------
template <int K>
__device__ __forceinline__ void rc_warp_rows(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= totalRows) return; // uniform per warp: every lane of a warp has the same row
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;

    unsigned long long v[K];
RC_UNROLL
    for (int k = 0; k < K; k++)
    {
        int i = k * 32 + lane;
        v[k] = i < n ? rc_composite(w[i], i) : RC_SENTINEL;
    }

RC_UNROLL
    for (int size = 2; size <= 32 * K; size <<= 1)
    {
RC_UNROLL
        for (int stride = size >> 1; stride > 0; stride >>= 1)
        {
            if (K > 1 && stride >= 32) // K == 1: never (size <= 32); spelled out so no compiler sees v[1]
            {
                const int slotStride = stride >> 5;
RC_UNROLL
                for (int k = 0; k < K; k++)
                {
                    if ((k & slotStride) != 0) continue;
                    const int k2 = k | slotStride;
                    const bool ascending = ((k * 32) & size) == 0;
                    unsigned long long a = v[k], b = v[k2];
                    if ((a > b) == ascending) { v[k] = b; v[k2] = a; }
                }
            }
            else
            {
RC_UNROLL
                for (int k = 0; k < K; k++)
                {
                    const int i = k * 32 + lane;
                    const bool ascending = (i & size) == 0;
                    const bool lower = (lane & stride) == 0;
                    unsigned long long other = rc_shfl_xor64(v[k], stride);
                    unsigned long long lo = v[k] < other ? v[k] : other;
                    unsigned long long hi = v[k] < other ? other : v[k];
                    v[k] = (lower == ascending) ? lo : hi;
                }
            }
        }
    }

    // Every lane loaded its w values before the network, so scattering into w is safe. The
    // shuffles already order those loads before these stores in practice; the PTX memory model
    // only promises it through a barrier, so one is here (free: the whole warp is converged).
    __syncwarp(RC_FULL_MASK);
RC_UNROLL
    for (int k = 0; k < K; k++)
    {
        int i = k * 32 + lane;
        if (i < n) w[(unsigned)v[k]] = s0[i];
    }
}

extern "C" __global__ void reconnect_warp32(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    rc_warp_rows<1>(table, tensorCount, totalRows);
}

extern "C" __global__ void reconnect_warp64(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    rc_warp_rows<2>(table, tensorCount, totalRows);
}

extern "C" __global__ void reconnect_warp128(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    rc_warp_rows<4>(table, tensorCount, totalRows);
}

// ---------------------------------------------------------------------------------------
// Block bitonic sort of n composites in shared memory, ascending only ("flip" form: the
// first step of each merge compares i with the mirror element, the rest are half-cleaners).
// Every comparator puts the minimum at the lower index, so the virtual +inf padding beyond n
// never moves: comparators touching an index >= n are no-ops and are skipped. Storage is n,
// not the next power of two.
// ---------------------------------------------------------------------------------------
__device__ __forceinline__ void rc_compare_exchange(unsigned long long* keys, int lo, int hi)
{
    unsigned long long a = keys[lo], b = keys[hi];
    if (a > b) { keys[lo] = b; keys[hi] = a; }
}

__device__ void rc_block_bitonic_sort(unsigned long long* keys, int n)
{
    const int tid = threadIdx.x, threads = blockDim.x;
    const int padded = rc_next_pow2(n);
    const int pairs = padded >> 1;
    for (int size = 2; size <= padded; size <<= 1)
    {
        const int half = size >> 1;
        for (int p = tid; p < pairs; p += threads)
        {
            const int blockStart = (p & ~(half - 1)) << 1;
            const int offset = p & (half - 1);
            const int hi = blockStart + size - 1 - offset;
            if (hi < n) rc_compare_exchange(keys, blockStart + offset, hi);
        }
        __syncthreads();
        for (int stride = half >> 1; stride > 0; stride >>= 1)
        {
            for (int p = tid; p < pairs; p += threads)
            {
                const int lo = ((p & ~(stride - 1)) << 1) | (p & (stride - 1));
                const int hi = lo + stride;
                if (hi < n) rc_compare_exchange(keys, lo, hi);
            }
            __syncthreads();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Variant 3: block per row. Shared memory: n composites (8 B each), then n floats.
// After the sort, vals[column_i] = sorted0[i] in shared memory, then a coalesced w write:
// global traffic is exactly one read of w, one read of sorted0, one write of w.
// ---------------------------------------------------------------------------------------
extern "C" __global__ __launch_bounds__(512) void reconnect_block_bitonic(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned long long, rc_bitonic_smem);
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;
    unsigned long long* keys = rc_bitonic_smem;
    float* vals = (float*)(keys + n);
    const int tid = threadIdx.x, threads = blockDim.x;

    for (int i = tid; i < n; i += threads) keys[i] = rc_composite(w[i], i);
    __syncthreads();
    rc_block_bitonic_sort(keys, n);
    for (int i = tid; i < n; i += threads) vals[(unsigned)keys[i]] = s0[i];
    __syncthreads();
    for (int i = tid; i < n; i += threads) w[i] = vals[i];
}

// ---------------------------------------------------------------------------------------
// Variant 4: block per row, LSD radix sort of the 32-bit keys (4 passes of 8 bits), stable
// by construction, carrying 16-bit columns (rows <= 65535). Each warp owns a contiguous
// segment of the row and walks it in 32-element tiles; lanes with equal digits find each
// other with 8 ballots, so ranks within a tile keep column order. Per-(digit, warp)
// counters, scanned digit-major, give every warp its stable base per digit.
// Shared memory: counters[256 * warps] + 32 scan slots, keysA[n], keysB[n] (u32),
// colsA[n], colsB[n] (u16); the placed values reuse keysB.
// ---------------------------------------------------------------------------------------
__device__ __forceinline__ unsigned rc_peers_with_digit(unsigned digit, bool valid)
{
    unsigned peers = __ballot_sync(RC_FULL_MASK, valid);
RC_UNROLL
    for (int b = 0; b < 8; b++)
    {
        const bool bit = ((digit >> b) & 1u) != 0;
        const unsigned set = __ballot_sync(RC_FULL_MASK, bit);
        peers &= bit ? set : ~set;
    }
    return peers;
}

// Exclusive prefix sum, in place, of count entries (count a multiple of blockDim.x).
// warpTotals holds 32 entries. Callers synchronise before and after. Variant 9 inlines the
// body (rc_block_exclusive_scan_inline) with PER, the entries per thread, fixed: a call keeps a
// caller's live registers (the row's values) across the ABI's boundary, which ptxas pays in
// stack stores under launch bounds. With PER 0 (count / blockDim.x at run time) the loops are
// unrolled twice, not the compiler's 32 times: 32 loads in flight were every bucket kernel's
// register peak (through the radix fallback; variant 8's kernels spilled 56 bytes for it).
template <int PER = 0>
__device__ __forceinline__ void rc_block_exclusive_scan_inline(unsigned* data, int count, unsigned* warpTotals)
{
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int per = PER > 0 ? PER : (int)(count / blockDim.x);
    unsigned* mine = data + tid * per;
    unsigned sum = 0;
RC_UNROLL_2
    for (int i = 0; i < per; i++) sum += mine[i];
    unsigned inclusive = sum;
RC_UNROLL
    for (int d = 1; d < 32; d <<= 1)
    {
        unsigned up = __shfl_up_sync(RC_FULL_MASK, inclusive, d);
        if (lane >= d) inclusive += up;
    }
    if (lane == 31) warpTotals[warp] = inclusive;
    __syncthreads();
    if (warp == 0)
    {
        const int warps = blockDim.x >> 5;
        unsigned total = lane < warps ? warpTotals[lane] : 0u;
        unsigned scanned = total;
RC_UNROLL
        for (int d = 1; d < 32; d <<= 1)
        {
            unsigned up = __shfl_up_sync(RC_FULL_MASK, scanned, d);
            if (lane >= d) scanned += up;
        }
        if (lane < warps) warpTotals[lane] = scanned - total;
    }
    __syncthreads();
    unsigned running = warpTotals[warp] + inclusive - sum;
RC_UNROLL_2
    for (int i = 0; i < per; i++)
    {
        unsigned c = mine[i];
        mine[i] = running;
        running += c;
    }
}

__device__ void rc_block_exclusive_scan(unsigned* data, int count, unsigned* warpTotals)
{
    rc_block_exclusive_scan_inline(data, count, warpTotals);
}

// One row by the whole block; smem holds rc_radix_shared_words(n, warps) words.
__device__ void rc_block_radix_row(float* w, const float* s0, int n, unsigned* rc_radix_smem)
{
    const int tid = threadIdx.x, threads = blockDim.x, lane = tid & 31, warp = tid >> 5, warps = threads >> 5;
    unsigned* counters = rc_radix_smem;               // [digit][warp]
    unsigned* warpTotals = counters + 256 * warps;    // 32 scan slots
    unsigned* keysA = warpTotals + 32;
    unsigned* keysB = keysA + n;
    unsigned short* colsA = (unsigned short*)(keysB + n);
    unsigned short* colsB = colsA + n;

    for (int i = tid; i < n; i += threads)
    {
        keysA[i] = rc_order_key(w[i]);
        colsA[i] = (unsigned short)i;
    }
    const int segment = (((n + warps - 1) / warps) + 31) & ~31;
    const int segBegin = min(n, warp * segment);
    const int segEnd = min(n, segBegin + segment);
    const unsigned lanesBelow = (1u << lane) - 1u;
    __syncthreads();

    for (int shift = 0; shift < 32; shift += 8)
    {
        for (int i = tid; i < 256 * warps; i += threads) counters[i] = 0;
        __syncthreads();
        for (int base = segBegin; base < segEnd; base += 32)
        {
            const int i = base + lane;
            const bool valid = i < segEnd;
            const unsigned digit = valid ? (keysA[i] >> shift) & 255u : 0u;
            const unsigned peers = rc_peers_with_digit(digit, valid);
            if (valid && (peers & lanesBelow) == 0) counters[digit * warps + warp] += __popc(peers);
            __syncwarp(RC_FULL_MASK);
        }
        __syncthreads();
        rc_block_exclusive_scan(counters, 256 * warps, warpTotals);
        __syncthreads();
        for (int base = segBegin; base < segEnd; base += 32)
        {
            const int i = base + lane;
            const bool valid = i < segEnd;
            const unsigned key = valid ? keysA[i] : 0u;
            const unsigned digit = (key >> shift) & 255u;
            const unsigned peers = rc_peers_with_digit(digit, valid);
            if (valid)
            {
                const unsigned position = counters[digit * warps + warp] + __popc(peers & lanesBelow);
                keysB[position] = key;
                colsB[position] = colsA[i];
            }
            __syncwarp(RC_FULL_MASK);
            if (valid && (peers & lanesBelow) == 0) counters[digit * warps + warp] += __popc(peers);
            __syncwarp(RC_FULL_MASK);
        }
        __syncthreads();
        unsigned* tk = keysA; keysA = keysB; keysB = tk;
        unsigned short* tc = colsA; colsA = colsB; colsB = tc;
    }

    // Four passes: the sorted row is back in the first buffers; the second key buffer is free.
    float* vals = (float*)keysB;
    for (int i = tid; i < n; i += threads) vals[colsA[i]] = s0[i];
    __syncthreads();
    for (int i = tid; i < n; i += threads) w[i] = vals[i];
}

extern "C" __global__ void reconnect_block_radix(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_radix_smem);
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    rc_block_radix_row(r0.w, r0.s0, r0.n, rc_radix_smem);
}

// ---------------------------------------------------------------------------------------
// Variant 6: block per row, bucket rank. 256 threads, ITEMS elements per thread in
// registers (n <= 256 * ITEMS). Values are bucketed linearly between the row's finite
// min and max (B buckets; -NaN/-inf to the first, +inf/+NaN to the last): the bucket index
// is monotone in the total order, because v - min and the scaling are monotone under
// round-to-nearest. A shared-memory histogram (atomics) and a scan give each bucket its
// range; the composites are placed there (in any order), then each element's rank is its
// bucket's start plus the number of composites below its own in the bucket (exact: the
// composites are unique). w[j] = sorted0[rank(j)]: w is read once and written once,
// coalesced; sorted0 is gathered within the row. Rows with a bucket over RC_BUCKET_LIMIT
// elements (heavy ties, skewed values) take the radix path in the same block instead.
// Shared memory: max(bucket: 4*B + 128 + 8n + 16, radix fallback) bytes.
// ---------------------------------------------------------------------------------------
#define RC_BUCKET_THREADS 256
#define RC_BUCKET_LIMIT 96

// Loads a row into registers (ITEMS per thread, strided by THREADS; padding reads as 0.0f)
// and reduces the min and max of its finite values over the block: the value range the
// bucket kernels divide into buckets. Also zeroes the bucket counts. range: 32 floats of
// shared memory (per-warp min in 0..15, max in 16..31). With a STAGE, the row's sorted0 is
// copied to shared memory (stage) in the same pass: every load of both rows is issued
// before the first use of any, so the row costs one global-memory round trip, not two
// (sorted0 staged after the scan waited for a second one with the block's work done).
// RC_STAGE_REGISTERS loads sorted0 into registers and stores it; RC_STAGE_ASYNC copies it
// with cp.async, global to shared without a register (ITEMS fewer live registers at the
// loads, the point of variant 9). The barrier at the end covers the staged copy too.
#define RC_STAGE_NONE 0
#define RC_STAGE_REGISTERS 1
#define RC_STAGE_ASYNC 2
template <int THREADS, int ITEMS, int STAGE>
__device__ __forceinline__ void rc_load_row_range(const float* w, const float* s0, float* stage, int n, int buckets,
                                                  unsigned* counts, float* range, float (&v)[ITEMS], float& lo, float& hi)
{
    const int threads = THREADS > 0 ? THREADS : (int)blockDim.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    lo = INFINITY; hi = -INFINITY;
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * threads;
        v[k] = j < n ? w[j] : 0.0f;
    }
    if constexpr (STAGE == RC_STAGE_ASYNC)
    {
RC_UNROLL
        for (int k = 0; k < ITEMS; k++)
        {
            const int j = tid + k * threads;
            if (j < n) lp_copy_async_4(stage + j, s0 + j);
        }
    }
    if constexpr (STAGE == RC_STAGE_REGISTERS)
    {
        // Registers first, then shared memory: stores between the loads would make the
        // compiler wait for each load in turn (it cannot prove stage and s0 apart).
        float s[ITEMS];
RC_UNROLL
        for (int k = 0; k < ITEMS; k++)
        {
            const int j = tid + k * threads;
            s[k] = j < n ? s0[j] : 0.0f;
        }
RC_UNROLL
        for (int k = 0; k < ITEMS; k++)
        {
            const int j = tid + k * threads;
            if (j < n) stage[j] = s[k];
        }
    }
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * threads;
        if (j < n && isfinite(v[k])) { lo = fminf(lo, v[k]); hi = fmaxf(hi, v[k]); }
    }
    for (int i = tid; i < buckets; i += threads) counts[i] = 0;
RC_UNROLL
    for (int d = 16; d > 0; d >>= 1)
    {
        lo = fminf(lo, __shfl_xor_sync(RC_FULL_MASK, lo, d));
        hi = fmaxf(hi, __shfl_xor_sync(RC_FULL_MASK, hi, d));
    }
    if (lane == 0) { range[warp] = lo; range[16 + warp] = hi; }
    if constexpr (STAGE == RC_STAGE_ASYNC) lp_copy_async_wait_all();
    __syncthreads();
    lo = range[0]; hi = range[16];
    if constexpr (THREADS > 0)
    {
        for (int i = 1; i < THREADS / 32; i++) { lo = fminf(lo, range[i]); hi = fmaxf(hi, range[16 + i]); }
    }
    else
    {
        // Up to 16 warps, how many unknown here: unrolled, the loop loads all 32 values at once
        // (variant 9's register peak).
RC_NO_UNROLL
        for (int i = 1; i < threads / 32; i++) { lo = fminf(lo, range[i]); hi = fmaxf(hi, range[16 + i]); }
    }
}

template <int ITEMS>
__device__ __forceinline__ void rc_bucket_rows(const ReconnectTensor* table, int tensorCount, int totalRows, unsigned* smem)
{
    const int buckets = ITEMS == 1 ? RC_BUCKET_THREADS : 128 * ITEMS; // a multiple of the block size
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;
    const int tid = threadIdx.x;

    unsigned* counts = smem;                       // [buckets]
    unsigned* warpTotals = counts + buckets;       // [32]
    float* range = (float*)(warpTotals + 32);      // [2 * 8] per-warp min, max
    unsigned long long* placed = (unsigned long long*)(range + 16 + 16); // [n], 8-byte aligned

    float v[ITEMS];
    float lo, hi;
    rc_load_row_range<RC_BUCKET_THREADS, ITEMS, RC_STAGE_NONE>(w, s0, nullptr, n, buckets, counts, range, v, lo, hi);
    const float span = hi - lo;
    const float scale = span > 0.0f ? (float)buckets / span : 0.0f;

    int bucket[ITEMS];
    unsigned slot[ITEMS];
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * RC_BUCKET_THREADS;
        bucket[k] = 0;
        slot[k] = 0;
        if (j < n)
        {
            int b;
            if (isfinite(v[k]))
            {
                const float f = (v[k] - lo) * scale;          // >= 0; inf or NaN only when span overflowed
                b = f < (float)buckets ? (int)f : buckets - 1;
            }
            else
            {
                b = (__float_as_uint(v[k]) & 0x80000000u) ? 0 : buckets - 1;
            }
            bucket[k] = b;
            slot[k] = atomicAdd(&counts[b], 1u);
        }
    }
    __syncthreads();
    int crowded = 0;
    for (int i = tid; i < buckets; i += RC_BUCKET_THREADS) crowded |= counts[i] > RC_BUCKET_LIMIT;
    if (__syncthreads_or(crowded))
    {
        rc_block_radix_row(w, s0, n, smem); // w is untouched so far
        return;
    }
    rc_block_exclusive_scan(counts, buckets, warpTotals);
    __syncthreads();
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * RC_BUCKET_THREADS;
        if (j < n) placed[counts[bucket[k]] + slot[k]] = rc_composite(v[k], j);
    }
    __syncthreads();
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * RC_BUCKET_THREADS;
        if (j < n)
        {
            const unsigned long long c = rc_composite(v[k], j);
            const int b = bucket[k];
            const int begin = (int)counts[b];
            const int end = b + 1 < buckets ? (int)counts[b + 1] : n;
            int rank = begin;
            for (int i = begin; i < end; i++) rank += placed[i] < c;
            w[j] = s0[rank];
        }
    }
}

extern "C" __global__ void reconnect_bucket_i1(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_bucket_smem);
    rc_bucket_rows<1>(table, tensorCount, totalRows, rc_bucket_smem);
}

extern "C" __global__ void reconnect_bucket_i2(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_bucket_smem);
    rc_bucket_rows<2>(table, tensorCount, totalRows, rc_bucket_smem);
}

extern "C" __global__ void reconnect_bucket_i4(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_bucket_smem);
    rc_bucket_rows<4>(table, tensorCount, totalRows, rc_bucket_smem);
}

extern "C" __global__ void reconnect_bucket_i8(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_bucket_smem);
    rc_bucket_rows<8>(table, tensorCount, totalRows, rc_bucket_smem);
}

extern "C" __global__ void reconnect_bucket_i16(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_bucket_smem);
    rc_bucket_rows<16>(table, tensorCount, totalRows, rc_bucket_smem);
}

extern "C" __global__ void reconnect_bucket_i32(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_bucket_smem);
    rc_bucket_rows<32>(table, tensorCount, totalRows, rc_bucket_smem);
}

// ---------------------------------------------------------------------------------------
// Variant 7: variant 6 with wider blocks and sorted0 staged. THREADS threads, ITEMS elements per thread in
// registers (n <= THREADS * ITEMS). Values are bucketed linearly between the row's finite
// min and max (B = max(THREADS, THREADS*ITEMS/2) buckets; -NaN/-inf to the first,
// +inf/+NaN to the last): the bucket index is monotone in the total order, because v - min
// and the scaling are monotone under round-to-nearest. A shared-memory histogram (atomics)
// and a scan give each bucket its range; the composites are placed there (in any order),
// then each element's rank is its bucket's start plus the number of composites below its
// own in the bucket (exact: the composites are unique). sorted0 is staged in shared memory
// (coalesced, loaded together with w), so w[j] = sorted0[rank(j)] reads shared memory and
// global traffic is one coalesced read of w and sorted0 and one coalesced write of w. Rows with a bucket over
// RC_BUCKET_LIMIT elements (heavy ties, skewed values) take the radix path in the same
// block instead (w is untouched until then).
// Shared memory: max(4*(B + 64) + 12n, radix fallback with THREADS threads) bytes.
// ---------------------------------------------------------------------------------------
template <int THREADS, int ITEMS>
__device__ __forceinline__ void rc_bucket_staged_rows(const ReconnectTensor* table, int tensorCount, int totalRows, unsigned* smem)
{
    constexpr int threads = THREADS;
    const int buckets = threads * ITEMS / 2 > threads ? threads * ITEMS / 2 : threads; // a multiple of threads
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;
    const int tid = threadIdx.x;

    unsigned* counts = smem;                       // [buckets]
    unsigned* warpTotals = counts + buckets;       // [32]
    float* range = (float*)(warpTotals + 32);      // [32]: per-warp min (0..15), max (16..31)
    unsigned long long* placed = (unsigned long long*)(range + 32); // [n], 8-byte aligned
    float* vals = (float*)(placed + n);            // [n] sorted0 of the row

    float v[ITEMS];
    float lo, hi;
    rc_load_row_range<THREADS, ITEMS, RC_STAGE_REGISTERS>(w, s0, vals, n, buckets, counts, range, v, lo, hi);
    const float span = hi - lo;
    const float scale = span > 0.0f ? (float)buckets / span : 0.0f;

    unsigned where[ITEMS]; // bucket << 16 | slot (both < 65536)
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * threads;
        where[k] = 0;
        if (j < n)
        {
            int b;
            if (isfinite(v[k]))
            {
                const float f = (v[k] - lo) * scale;          // >= 0; inf or NaN only when span overflowed
                b = f < (float)buckets ? (int)f : buckets - 1;
            }
            else
            {
                b = (__float_as_uint(v[k]) & 0x80000000u) ? 0 : buckets - 1;
            }
            where[k] = ((unsigned)b << 16) | atomicAdd(&counts[b], 1u);
        }
    }
    __syncthreads();
    int crowded = 0;
    for (int i = tid; i < buckets; i += threads) crowded |= counts[i] > RC_BUCKET_LIMIT;
    if (__syncthreads_or(crowded))
    {
        rc_block_radix_row(w, s0, n, smem);
        return;
    }
    rc_block_exclusive_scan(counts, buckets, warpTotals);
    __syncthreads();
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * threads;
        if (j < n) placed[counts[where[k] >> 16] + (where[k] & 0xffffu)] = rc_composite(v[k], j);
    }
    __syncthreads();
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * threads;
        if (j < n)
        {
            const unsigned long long c = rc_composite(v[k], j);
            const int b = (int)(where[k] >> 16);
            const int begin = (int)counts[b];
            const int end = b + 1 < buckets ? (int)counts[b + 1] : n;
            int rank = begin;
            for (int i = begin; i < end; i++) rank += placed[i] < c;
            w[j] = vals[rank];
        }
    }
}

// Row length classes: <= 256, 512, 1024, 2048 (256 threads), <= 4096, 8192 (512 threads).
extern "C" __global__ void reconnect_bucket_staged_256(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_staged_smem);
    rc_bucket_staged_rows<256, 1>(table, tensorCount, totalRows, rc_staged_smem);
}

extern "C" __global__ void reconnect_bucket_staged_512(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_staged_smem);
    rc_bucket_staged_rows<256, 2>(table, tensorCount, totalRows, rc_staged_smem);
}

extern "C" __global__ void reconnect_bucket_staged_1024(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_staged_smem);
    rc_bucket_staged_rows<256, 4>(table, tensorCount, totalRows, rc_staged_smem);
}

extern "C" __global__ void reconnect_bucket_staged_2048(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_staged_smem);
    rc_bucket_staged_rows<256, 8>(table, tensorCount, totalRows, rc_staged_smem);
}

extern "C" __global__ __launch_bounds__(512) void reconnect_bucket_staged_4096(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_staged_smem);
    rc_bucket_staged_rows<512, 8>(table, tensorCount, totalRows, rc_staged_smem);
}

extern "C" __global__ __launch_bounds__(512) void reconnect_bucket_staged_8192(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_staged_smem);
    rc_bucket_staged_rows<512, 16>(table, tensorCount, totalRows, rc_staged_smem);
}


// ---------------------------------------------------------------------------------------
// Variant 8: variant 7's kernel in narrow blocks, 16 elements per thread (8 for rows up to
// 256) and as few threads as that allows: 32 threads up to 512 elements, 64 up to 1024, ...
// 512 up to 8192. Why: an SM holds at most 32 blocks and 2048 threads, so 256-thread blocks
// (variants 6 and 7) keep at most 8 rows in flight per SM, and a row of 256..1024 elements
// loads too few bytes to cover the memory latency of its block's next phases. Narrow blocks
// keep as many rows in flight as shared memory allows (228 KB per SM, 1 KB reserved per
// block): 32 rows up to 256 elements (4.2 KB each), 27 up to 512 (7.4 KB), 14 up to 1024
// (14.6 KB), 7 up to 2048; their barriers are a warp's or a few. The launch bounds ask for
// 32 blocks per SM in the 256 class (64 registers) and, above it, a little fewer than shared
// memory admits (24, 12, 6 instead of 27, 14, 7), so that the compiler may use up to 80
// registers (64 for 8192) rather than spill the 32 values each thread holds across barriers;
// at 80 registers the register file admits 25, 12 and 6 of these blocks. A row that takes the
// radix fallback reads sorted0 a second time (the staged copy shares its shared memory).
// ---------------------------------------------------------------------------------------
extern "C" __global__ __launch_bounds__(32, 32) void reconnect_bucket_narrow_256(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_narrow_smem);
    rc_bucket_staged_rows<32, 8>(table, tensorCount, totalRows, rc_narrow_smem);
}

extern "C" __global__ __launch_bounds__(32, 24) void reconnect_bucket_narrow_512(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_narrow_smem);
    rc_bucket_staged_rows<32, 16>(table, tensorCount, totalRows, rc_narrow_smem);
}

extern "C" __global__ __launch_bounds__(64, 12) void reconnect_bucket_narrow_1024(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_narrow_smem);
    rc_bucket_staged_rows<64, 16>(table, tensorCount, totalRows, rc_narrow_smem);
}

extern "C" __global__ __launch_bounds__(128, 6) void reconnect_bucket_narrow_2048(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_narrow_smem);
    rc_bucket_staged_rows<128, 16>(table, tensorCount, totalRows, rc_narrow_smem);
}

extern "C" __global__ __launch_bounds__(256, 3) void reconnect_bucket_narrow_4096(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_narrow_smem);
    rc_bucket_staged_rows<256, 16>(table, tensorCount, totalRows, rc_narrow_smem);
}

extern "C" __global__ __launch_bounds__(512, 2) void reconnect_bucket_narrow_8192(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_narrow_smem);
    rc_bucket_staged_rows<512, 16>(table, tensorCount, totalRows, rc_narrow_smem);
}

// ---------------------------------------------------------------------------------------
// Variant 9: variant 7's algorithm in blocks sized to the row: ITEMS elements per thread (8,
// 12 or 16) and as many whole warps as the row needs (ReconnectPlanner.SizedBlock picks the
// ITEMS with the fewest idle slots; ties to more threads). Why: the power-of-two classes of
// variants 7 and 8 leave 44 % of their slots idle on every 3x3 convolution's rows (576, 1152,
// 2304, 4608 = 9 * 2^k elements: 44 % of ResNet-50's weights), and idle slots still cost
// buckets, registers and threads. On the H200 (2026-11-29-h200-check, Nsight Compute) every
// bucket kernel was held to a few rows per SM by registers or shared memory, and the
// configuration with more resident threads won each class.
// Registers: a thread keeps only its values across the barriers, plus one byte per element for
// its slot in the bucket (a slot is used only when no bucket holds more than RC_BUCKET_LIMIT <
// 255), not variant 7's bucket-and-slot word: the bucket is recomputed from the value with the
// row's lo and scale, which every phase reads back from shared memory (so the compiler cannot
// keep the first computation alive instead). The launch bounds cap registers so that the
// blocks shared memory admits fit the register file too: i8 at 40 (ptxas 11.8 spills 16 bytes;
// 6 blocks of 256 threads per SM, 75 % occupancy, where 64 registers held variants 7 and 8 to
// 4 and 50 %), i12 at 56 (the 4608-element rows: 384 threads, three blocks of 66 KB per SM),
// i16 at 64. `laperm bench reconnect --plan` shows each launch's blocks per SM.
// Shared memory: max(4*(B + 64) + 12n, radix fallback) bytes, B = threads * ITEMS / 2.
// ---------------------------------------------------------------------------------------
struct RcSizedRange { float lo, scale; int threads, pad; };

__device__ __forceinline__ int rc_sized_bucket(float value, RcSizedRange r, int buckets)
{
    if (!isfinite(value)) return (__float_as_uint(value) & 0x80000000u) ? 0 : buckets - 1;
    const float f = (value - r.lo) * r.scale;   // >= 0; inf or NaN only when the span overflowed
    return f < (float)buckets ? (int)f : buckets - 1;
}

template <int ITEMS>
__device__ __forceinline__ void rc_bucket_sized_rows(const ReconnectTensor* table, int tensorCount, int totalRows, unsigned* smem)
{
    const int threads = blockDim.x;                // whole warps, at most 512
    const int buckets = threads * ITEMS / 2;       // a multiple of threads
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;
    const int tid = threadIdx.x;

    unsigned* counts = smem;                       // [buckets]
    unsigned* warpTotals = counts + buckets;       // [32]
    float* range = (float*)(warpTotals + 32);      // [32]: per-warp min (0..15), max (16..31)
    RcSizedRange* shared = (RcSizedRange*)(range + 32); // [1]
    unsigned long long* placed = (unsigned long long*)(range + 36); // [n], 8-byte aligned
    float* vals = (float*)(placed + n);            // [n] sorted0 of the row

    float v[ITEMS];
    float lo, hi;
    rc_load_row_range<0, ITEMS, RC_STAGE_ASYNC>(w, s0, vals, n, buckets, counts, range, v, lo, hi);
    if (tid == 0)
    {
        const float span = hi - lo;
        *shared = RcSizedRange{lo, span > 0.0f ? (float)buckets / span : 0.0f, threads, 0};
    }
    __syncthreads();

    unsigned slots[(ITEMS + 3) / 4];               // byte k & 3 of slots[k / 4]: element k's slot
    {
        const RcSizedRange r = *shared;
RC_UNROLL
        for (int k = 0; k < (ITEMS + 3) / 4; k++) slots[k] = 0;
RC_UNROLL
        for (int k = 0; k < ITEMS; k++)
        {
            const int j = tid + k * r.threads;
            if (j < n)
            {
                const unsigned slot = atomicAdd(&counts[rc_sized_bucket(v[k], r, buckets)], 1u);
                slots[k / 4] |= (slot < 255u ? slot : 255u) << (8 * (k % 4));
            }
        }
    }
    __syncthreads();
    int crowded = 0;
    for (int i = tid; i < buckets; i += threads) crowded |= counts[i] > RC_BUCKET_LIMIT;
    if (__syncthreads_or(crowded))
    {
        rc_block_radix_row(w, s0, n, smem);        // w is untouched so far
        return;
    }
    rc_block_exclusive_scan_inline<ITEMS / 2>(counts, buckets, warpTotals);
    __syncthreads();
    {
        const RcSizedRange r = *shared;
RC_UNROLL
        for (int k = 0; k < ITEMS; k++)
        {
            const int j = tid + k * r.threads;
            const unsigned slot = (slots[k / 4] >> (8 * (k % 4))) & 0xffu;
            if (j < n) placed[counts[rc_sized_bucket(v[k], r, buckets)] + slot] = rc_composite(v[k], j);
        }
    }
    __syncthreads();
    const RcSizedRange r = *shared;
RC_UNROLL
    for (int k = 0; k < ITEMS; k++)
    {
        const int j = tid + k * r.threads;
        if (j < n)
        {
            const unsigned long long c = rc_composite(v[k], j);
            const int b = rc_sized_bucket(v[k], r, buckets);
            const int begin = (int)counts[b];
            const int end = b + 1 < buckets ? (int)counts[b + 1] : n;
            int rank = begin;
            for (int i = begin; i < end; i++) rank += placed[i] < c;
            w[j] = vals[rank];
        }
    }
}

extern "C" __global__ __launch_bounds__(512, 3) void reconnect_bucket_sized_i8(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_sized_smem);
    rc_bucket_sized_rows<8>(table, tensorCount, totalRows, rc_sized_smem);
}

extern "C" __global__ __launch_bounds__(384, 3) void reconnect_bucket_sized_i12(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_sized_smem);
    rc_bucket_sized_rows<12>(table, tensorCount, totalRows, rc_sized_smem);
}

extern "C" __global__ __launch_bounds__(512, 2) void reconnect_bucket_sized_i16(const ReconnectTensor* table, int tensorCount, int totalRows)
{
    LP_DYNAMIC_SHARED(unsigned, rc_sized_smem);
    rc_bucket_sized_rows<16>(table, tensorCount, totalRows, rc_sized_smem);
}

// ---------------------------------------------------------------------------------------
// Variants 1 and 5: chunked two-pass.
// reconnect_chunk_sort: block per (row, chunk); sorts the chunk's composites in shared
//   memory and writes them, sorted, to scratch (same element layout as w).
// reconnect_chunk_merge: block per row. One chunk: the sorted composites are the argsort,
//   w[column_i] = sorted0[i]. Several chunks: rank(j) = sum over chunks of the number of
//   composites below composite(w[j]) (binary search; composites are unique, so this is the
//   stable rank), w[j] = sorted0[rank(j)].
// ---------------------------------------------------------------------------------------
extern "C" __global__ __launch_bounds__(1024) void reconnect_chunk_sort(const ReconnectTensor* table, int tensorCount, int totalChunks,
                                                int chunk, unsigned long long* scratch)
{
    LP_DYNAMIC_SHARED(unsigned long long, rc_chunk_smem);
    const int item = blockIdx.x;
    if (item >= totalChunks) return;
    const ReconnectTensor* t = table + rc_find_tensor(table, tensorCount, item, true);
    const int n = t->rowLength;
    const int chunksPerRow = (n + chunk - 1) / chunk;
    const int local = item - t->firstChunk;
    const int row = local / chunksPerRow;
    const int start = (local - row * chunksPerRow) * chunk;
    const int length = min(chunk, n - start);
    const long long rowStart = (long long)row * n;
    const float* w = t->w + rowStart + start;
    unsigned long long* out = scratch + t->scratchOffset + rowStart + start;
    const int tid = threadIdx.x, threads = blockDim.x;

    for (int i = tid; i < length; i += threads) rc_chunk_smem[i] = rc_composite(w[i], start + i);
    __syncthreads();
    rc_block_bitonic_sort(rc_chunk_smem, length);
    for (int i = tid; i < length; i += threads) out[i] = rc_chunk_smem[i];
}

// Number of entries of sorted[0, length) below key.
__device__ __forceinline__ int rc_count_below(const unsigned long long* sorted, int length, unsigned long long key)
{
    int lo = 0, hi = length;
    while (lo < hi)
    {
        int mid = (lo + hi) >> 1;
        if (sorted[mid] < key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

extern "C" __global__ void reconnect_chunk_merge(const ReconnectTensor* table, int tensorCount, int totalRows,
                                                 int chunk, const unsigned long long* scratch)
{
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;
    const unsigned long long* sorted = scratch + r0.tensor->scratchOffset + r0.start;
    const int tid = threadIdx.x, threads = blockDim.x;

    if (n <= chunk)
    {
        for (int i = tid; i < n; i += threads) w[(unsigned)sorted[i]] = s0[i];
        return;
    }
    for (int j = tid; j < n; j += threads)
    {
        const unsigned long long key = rc_composite(w[j], j);
        int rank = 0;
        for (int start = 0; start < n; start += chunk)
            rank += rc_count_below(sorted + start, min(chunk, n - start), key);
        w[j] = s0[rank];
    }
}

// ---------------------------------------------------------------------------------------
// Variant 1: two-pass baseline. reconnect_argsort_rows sorts each row's composites in
// shared memory (block bitonic) and writes the argsort (columns) to a global index buffer;
// reconnect_scatter_rows then does w[order[i]] = sorted0[i]. The index buffer costs an
// extra write and read of 4 B per element over the fused variants.
// ---------------------------------------------------------------------------------------
extern "C" __global__ __launch_bounds__(512) void reconnect_argsort_rows(const ReconnectTensor* table, int tensorCount, int totalRows,
                                                  unsigned long long* scratch)
{
    LP_DYNAMIC_SHARED(unsigned long long, rc_argsort_smem);
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    const float* w = r0.w;
    unsigned* order = (unsigned*)(scratch + r0.tensor->scratchOffset) + r0.start;
    const int tid = threadIdx.x, threads = blockDim.x;

    for (int i = tid; i < n; i += threads) rc_argsort_smem[i] = rc_composite(w[i], i);
    __syncthreads();
    rc_block_bitonic_sort(rc_argsort_smem, n);
    for (int i = tid; i < n; i += threads) order[i] = (unsigned)rc_argsort_smem[i];
}

extern "C" __global__ void reconnect_scatter_rows(const ReconnectTensor* table, int tensorCount, int totalRows,
                                                  const unsigned long long* scratch)
{
    const int row = blockIdx.x;
    if (row >= totalRows) return;
    const RcRow r0 = rc_row(table, tensorCount, row);
    const int n = r0.n;
    float* w = r0.w;
    const float* s0 = r0.s0;
    const unsigned* order = (const unsigned*)(scratch + r0.tensor->scratchOffset) + r0.start;
    for (int i = threadIdx.x; i < n; i += blockDim.x) w[order[i]] = s0[i];
}
