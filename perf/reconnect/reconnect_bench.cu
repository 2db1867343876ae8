// Standalone GPU harness for the reconnection kernels (cuda/kernels/reconnect.cu), built with
// nvcc on a GPU machine, independent of the C# runtime:
//   nvcc -O3 -std=c++17 -arch=sm_90 -I cuda/include perf/reconnect/reconnect_bench.cu -o reconnect_bench  (from the repo root)
//   ./reconnect_bench --shapes resnet50-imagenet --variant all [--shapes-file perf/reconnect/shapes.json]
// Its planner mirrors LaPerm.Cuda.Reconnect.ReconnectPlanner (same path choice, size classes,
// launch shapes); the C# bench (laperm bench reconnect) is the product, this is the probe.
// Prints one line per variant and shape: median time (CUDA events, warmed up, inputs rotated
// across copies so the working set exceeds L2), elements/s, effective GB/s against the
// 12 B/element floor, percent of a DtoD copy's bandwidth measured in the same run, mismatches
// against a CPU reference of Reconnection.SyncRow.
#include <cuda_runtime.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../cuda/kernels/reconnect.cu"

#define CHECK(call)                                                                                  \
    do {                                                                                             \
        cudaError_t e_ = (call);                                                                     \
        if (e_ != cudaSuccess) {                                                                     \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            std::exit(1);                                                                            \
        }                                                                                            \
    } while (0)

struct Shape { std::string name; int rows; int length; };

enum class Path { Warp32, Warp64, Warp128, BlockBitonic, BlockRadix, BlockBucket, BlockStaged, BlockNarrow, TwoPass, Chunked };
static const char* path_name(Path p)
{
    switch (p) {
        case Path::Warp32: return "warp32"; case Path::Warp64: return "warp64"; case Path::Warp128: return "warp128";
        case Path::BlockBitonic: return "bitonic"; case Path::BlockRadix: return "radix"; case Path::BlockBucket: return "bucket"; case Path::BlockStaged: return "staged"; case Path::BlockNarrow: return "narrow";
        case Path::TwoPass: return "twopass"; default: return "chunked";
    }
}

struct Limits { int maxSharedBytes; };

static int next_pow2(int n) { int p = 1; while (p < n) p <<= 1; return p; }
static int radix_threads(int n) { int t = ((n + 15) / 16 + 31) / 32 * 32; return std::min(256, std::max(32, t)); }
static int radix_shared_bytes(int n, int threads) { return 4 * (256 * (threads / 32) + 32) + 12 * n; }
static int chunk_limit(const Limits& l) { return (l.maxSharedBytes / 8) / 256 * 256; }
static bool radix_fits(int n, const Limits& l) { return n <= 65535 && radix_shared_bytes(n, 256) <= l.maxSharedBytes; }
static bool bitonic_fits(int n, const Limits& l) { return 12LL * n <= l.maxSharedBytes; }
static bool argsort_fits(int n, const Limits& l) { return 8LL * n <= l.maxSharedBytes; }

static int bucket_items(int n) { return next_pow2((n + 255) / 256); }
static int bucket_shared_bytes(int n)
{
    int items = bucket_items(n), buckets = items == 1 ? 256 : 128 * items;
    return std::max(4 * (buckets + 64) + 8 * n, radix_shared_bytes(n, 256));
}
static bool bucket_fits(int n, const Limits& l) { return n <= 8192 && radix_fits(n, l) && bucket_shared_bytes(n) <= l.maxSharedBytes; }

static int staged_class(int n) { return std::max(256, next_pow2(n)); }
static int staged_threads(int n) { return staged_class(n) <= 2048 ? 256 : 512; }
static int staged_shared_bytes(int n)
{
    int buckets = std::max(staged_threads(n), staged_class(n) / 2);
    return std::max(4 * (buckets + 64) + 12 * n, radix_shared_bytes(n, staged_threads(n)));
}
static bool staged_fits(int n, const Limits& l) { return n <= 8192 && staged_shared_bytes(n) <= l.maxSharedBytes; }

static int narrow_threads(int n) { return std::max(32, staged_class(n) / 16); }
static int narrow_shared_bytes(int n)
{
    return std::max(4 * (staged_class(n) / 2 + 64) + 12 * n, radix_shared_bytes(n, narrow_threads(n)));
}
static bool narrow_fits(int n, const Limits& l) { return n <= 8192 && narrow_shared_bytes(n) <= l.maxSharedBytes; }

// As ReconnectPlanner.AutoPath: the staged bucket kernel wherever it fits (measured on an H200,
// 2026-11-29: the best single choice over the four shape sets); make_plan then gives crowded
// classes to the narrow kernel (narrow_pays).
static Path auto_path(int n, const Limits& l)
{
    if (staged_fits(n, l)) return Path::BlockStaged;
    if (n <= 32) return Path::Warp32;
    if (bucket_fits(n, l)) return Path::BlockBucket;
    if (n <= 64) return Path::Warp64;
    if (n <= 128) return Path::Warp128;
    if (radix_fits(n, l)) return Path::BlockRadix;
    return Path::Chunked;
}

// As ReconnectPlanner.NarrowPays: the classes where the narrow kernel beat the staged one on an
// H200, given to it when they hold rows enough to fill the GPU several times over.
static bool narrow_pays(int staged_class_elements, long long rows)
{
    return staged_class_elements == 256 ? rows >= 8192 : staged_class_elements == 8192 && rows >= 1024;
}

static Path warp_path(int n, const Limits& l)
{
    if (n <= 32) return Path::Warp32;
    if (n <= 64) return Path::Warp64;
    if (n <= 128) return Path::Warp128;
    return radix_fits(n, l) ? Path::BlockRadix : Path::Chunked;
}

static Path choose_path(int variant, int n, const Limits& l)
{
    switch (variant) {
        case 1: return argsort_fits(n, l) ? Path::TwoPass : Path::Chunked;
        case 2: return warp_path(n, l);
        case 3: return bitonic_fits(n, l) ? Path::BlockBitonic : Path::Chunked;
        case 4: return radix_fits(n, l) ? Path::BlockRadix : Path::Chunked;
        case 5: return Path::Chunked;
        case 6: return bucket_fits(n, l) ? Path::BlockBucket : radix_fits(n, l) ? Path::BlockRadix : Path::Chunked;
        case 7: return staged_fits(n, l) ? Path::BlockStaged : radix_fits(n, l) ? Path::BlockRadix : Path::Chunked;
        case 8: return narrow_fits(n, l) ? Path::BlockNarrow : radix_fits(n, l) ? Path::BlockRadix : Path::Chunked;
        default: return auto_path(n, l);
    }
}

struct Launch { Path path; int tableStart, tensorCount, rows, chunks, maxLength, threads, sharedBytes, chunk; };
struct Plan {
    std::vector<int> order;            // table index -> shape index
    std::vector<ReconnectTensor> table; // pointers filled per copy
    std::vector<Launch> launches;
    long long scratchElements = 0;
};

static Plan make_plan(int variant, const std::vector<Shape>& shapes, const Limits& l)
{
    const int chunk = chunk_limit(l);
    struct Item { int shape; Path path; int bucket; };
    std::vector<Item> items;
    for (int i = 0; i < (int)shapes.size(); i++) {
        Path p = choose_path(variant, shapes[i].length, l);
        int bucket = (p == Path::Warp32 || p == Path::Warp64 || p == Path::Warp128) ? 0
                   : (p == Path::BlockStaged || p == Path::BlockNarrow) ? staged_class(shapes[i].length)
                   : next_pow2(p == Path::Chunked ? std::min(shapes[i].length, chunk) : shapes[i].length);
        items.push_back({i, p, bucket});
    }
    if (variant == 0) {
        std::map<int, long long> rows_per_class;
        for (const Item& it : items)
            if (it.path == Path::BlockStaged) rows_per_class[it.bucket] += shapes[it.shape].rows;
        for (Item& it : items)
            if (it.path == Path::BlockStaged && narrow_pays(it.bucket, rows_per_class[it.bucket]) && narrow_fits(shapes[it.shape].length, l))
                it.path = Path::BlockNarrow;
    }
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
        return a.path != b.path ? a.path < b.path : a.bucket < b.bucket; });
    Plan plan;
    size_t i = 0;
    while (i < items.size()) {
        size_t j = i;
        Launch L{items[i].path, (int)i, 0, 0, 0, 0, 0, 0, chunk};
        while (j < items.size() && items[j].path == items[i].path && items[j].bucket == items[i].bucket) {
            const Shape& s = shapes[items[j].shape];
            ReconnectTensor t{};
            t.rows = s.rows; t.rowLength = s.length; t.firstRow = L.rows; t.firstChunk = L.chunks;
            t.scratchOffset = (L.path == Path::TwoPass || L.path == Path::Chunked) ? plan.scratchElements : 0;
            if (L.path == Path::TwoPass || L.path == Path::Chunked) plan.scratchElements += (long long)s.rows * s.length;
            L.rows += s.rows;
            L.chunks += s.rows * ((s.length + chunk - 1) / chunk);
            L.maxLength = std::max(L.maxLength, s.length);
            plan.table.push_back(t);
            plan.order.push_back(items[j].shape);
            j++;
        }
        L.tensorCount = (int)(j - i);
        switch (L.path) {
            case Path::Warp32: case Path::Warp64: case Path::Warp128: L.threads = 256; break;
            case Path::BlockBitonic: L.threads = std::min(512, std::max(32, next_pow2(L.maxLength) / 2)); L.sharedBytes = 12 * L.maxLength; break;
            case Path::BlockRadix: L.threads = radix_threads(L.maxLength); L.sharedBytes = radix_shared_bytes(L.maxLength, L.threads); break;
            case Path::BlockBucket: L.threads = 256; L.sharedBytes = bucket_shared_bytes(L.maxLength); break;
            case Path::BlockStaged: L.threads = staged_threads(L.maxLength); L.sharedBytes = staged_shared_bytes(L.maxLength); break;
            case Path::BlockNarrow: L.threads = narrow_threads(L.maxLength); L.sharedBytes = narrow_shared_bytes(L.maxLength); break;
            case Path::TwoPass: L.threads = std::min(512, std::max(32, next_pow2(L.maxLength) / 2)); L.sharedBytes = 8 * L.maxLength; break;
            case Path::Chunked: { int c = std::min(L.maxLength, chunk); L.threads = std::min(1024, std::max(32, next_pow2(c) / 2)); L.sharedBytes = 8 * c; break; }
        }
        plan.launches.push_back(L);
        i = j;
    }
    return plan;
}

static void enqueue(const Plan& plan, const ReconnectTensor* deviceTable, unsigned long long* scratch, cudaStream_t stream)
{
    for (const Launch& L : plan.launches) {
        const ReconnectTensor* t = deviceTable + L.tableStart;
        switch (L.path) {
            case Path::Warp32: reconnect_warp32<<<(L.rows + 7) / 8, 256, 0, stream>>>(t, L.tensorCount, L.rows); break;
            case Path::Warp64: reconnect_warp64<<<(L.rows + 7) / 8, 256, 0, stream>>>(t, L.tensorCount, L.rows); break;
            case Path::Warp128: reconnect_warp128<<<(L.rows + 7) / 8, 256, 0, stream>>>(t, L.tensorCount, L.rows); break;
            case Path::BlockBitonic: reconnect_block_bitonic<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
            case Path::BlockRadix: reconnect_block_radix<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
            case Path::BlockBucket:
                switch (bucket_items(L.maxLength)) {
                    case 1: reconnect_bucket_i1<<<L.rows, 256, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 2: reconnect_bucket_i2<<<L.rows, 256, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 4: reconnect_bucket_i4<<<L.rows, 256, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 8: reconnect_bucket_i8<<<L.rows, 256, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 16: reconnect_bucket_i16<<<L.rows, 256, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    default: reconnect_bucket_i32<<<L.rows, 256, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                }
                break;
            case Path::BlockStaged:
                switch (staged_class(L.maxLength)) {
                    case 256: reconnect_bucket_staged_256<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 512: reconnect_bucket_staged_512<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 1024: reconnect_bucket_staged_1024<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 2048: reconnect_bucket_staged_2048<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 4096: reconnect_bucket_staged_4096<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    default: reconnect_bucket_staged_8192<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                }
                break;
            case Path::BlockNarrow:
                switch (staged_class(L.maxLength)) {
                    case 256: reconnect_bucket_narrow_256<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 512: reconnect_bucket_narrow_512<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 1024: reconnect_bucket_narrow_1024<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 2048: reconnect_bucket_narrow_2048<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    case 4096: reconnect_bucket_narrow_4096<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                    default: reconnect_bucket_narrow_8192<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows); break;
                }
                break;
            case Path::TwoPass:
                reconnect_argsort_rows<<<L.rows, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.rows, scratch);
                reconnect_scatter_rows<<<L.rows, 256, 0, stream>>>(t, L.tensorCount, L.rows, scratch);
                break;
            case Path::Chunked:
                reconnect_chunk_sort<<<L.chunks, L.threads, L.sharedBytes, stream>>>(t, L.tensorCount, L.chunks, L.chunk, scratch);
                reconnect_chunk_merge<<<L.rows, 256, 0, stream>>>(t, L.tensorCount, L.rows, L.chunk, scratch);
                break;
        }
    }
}

static uint32_t order_key(float v) { uint32_t b; std::memcpy(&b, &v, 4); return (b & 0x80000000u) ? ~b : (b | 0x80000000u); }

static void cpu_sync(float* w, const float* s0, int rows, int n)
{
    std::vector<uint64_t> pairs(n);
    for (int r = 0; r < rows; r++) {
        float* row = w + (size_t)r * n; const float* srow = s0 + (size_t)r * n;
        for (int i = 0; i < n; i++) pairs[i] = ((uint64_t)order_key(row[i]) << 32) | (uint32_t)i;
        std::sort(pairs.begin(), pairs.end());
        for (int i = 0; i < n; i++) row[(uint32_t)pairs[i]] = srow[i];
    }
}

static std::map<std::string, std::vector<Shape>> load_shapes(const std::string& file)
{
    std::ifstream in(file);
    if (!in) { std::fprintf(stderr, "cannot read %s\n", file.c_str()); std::exit(2); }
    std::stringstream ss; ss << in.rdbuf(); std::string s = ss.str();
    std::map<std::string, std::vector<Shape>> sets;
    size_t p = 0; std::string current;
    while (p < s.size()) {
        size_t q = s.find('"', p); if (q == std::string::npos) break;
        size_t e = s.find('"', q + 1); std::string str = s.substr(q + 1, e - q - 1);
        size_t k = e + 1; while (k < s.size() && (s[k] == ' ')) k++;
        if (s[k] == ':') { current = str; p = k + 1; continue; }
        int rows = 0, len = 0; std::sscanf(s.c_str() + k, ", %d, %d", &rows, &len);
        sets[current].push_back({str, rows, len});
        p = s.find(']', k) + 1;
    }
    return sets;
}

static std::vector<Shape> parse_shapes(const std::string& spec, const std::string& file)
{
    if (spec.find(':') != std::string::npos) {
        std::vector<Shape> out; std::stringstream ss(spec); std::string part; int i = 0;
        while (std::getline(ss, part, ',')) {
            int r = 0, l = 0;
            if (std::sscanf(part.c_str(), "%d:%d", &r, &l) != 2 || r < 1 || l < 1) { std::fprintf(stderr, "bad shape '%s' (want ROWS:LENGTH)\n", part.c_str()); std::exit(2); }
            out.push_back({"t" + std::to_string(i++), r, l});
        }
        return out;
    }
    auto sets = load_shapes(file);
    if (!sets.count(spec)) { std::fprintf(stderr, "unknown shape set '%s'\n", spec.c_str()); std::exit(2); }
    return sets[spec];
}

int main(int argc, char** argv)
{
    std::string shapesSpec = "resnet50-imagenet", variantSpec = "all", shapesFile = "perf/reconnect/shapes.json", jsonOut;
    int samples = 15;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--shapes") shapesSpec = argv[i + 1];
        else if (a == "--variant") variantSpec = argv[i + 1];
        else if (a == "--shapes-file") shapesFile = argv[i + 1];
        else if (a == "--samples") samples = std::atoi(argv[i + 1]);
        else if (a == "--json") jsonOut = argv[i + 1];
        else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
    }
    cudaDeviceProp prop; CHECK(cudaGetDeviceProperties(&prop, 0));
    Limits limits{(int)prop.sharedMemPerBlockOptin};
    for (const void* f : {(const void*)reconnect_block_bitonic, (const void*)reconnect_block_radix,
                          (const void*)reconnect_argsort_rows, (const void*)reconnect_chunk_sort,
                          (const void*)reconnect_bucket_i1, (const void*)reconnect_bucket_i2, (const void*)reconnect_bucket_i4,
                          (const void*)reconnect_bucket_i8, (const void*)reconnect_bucket_i16, (const void*)reconnect_bucket_i32,
                          (const void*)reconnect_bucket_staged_256, (const void*)reconnect_bucket_staged_512, (const void*)reconnect_bucket_staged_1024,
                          (const void*)reconnect_bucket_staged_2048, (const void*)reconnect_bucket_staged_4096, (const void*)reconnect_bucket_staged_8192,
                          (const void*)reconnect_bucket_narrow_256, (const void*)reconnect_bucket_narrow_512, (const void*)reconnect_bucket_narrow_1024,
                          (const void*)reconnect_bucket_narrow_2048, (const void*)reconnect_bucket_narrow_4096, (const void*)reconnect_bucket_narrow_8192})
        CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, limits.maxSharedBytes));

    std::vector<std::string> specs; { std::stringstream ss(shapesSpec); std::string p; while (std::getline(ss, p, ';')) specs.push_back(p); }
    std::vector<int> variants;
    if (variantSpec == "all") variants = {0, 1, 2, 3, 4, 5, 6, 7, 8}; else variants = {std::atoi(variantSpec.c_str())};

    cudaStream_t stream; CHECK(cudaStreamCreate(&stream));
    cudaEvent_t e0, e1; CHECK(cudaEventCreate(&e0)); CHECK(cudaEventCreate(&e1));

    // Copy bandwidth: DtoD of 512 MB, bytes read + written.
    double copyGBs = 0;
    {
        size_t bytes = 512ull << 20; void *a, *b; CHECK(cudaMalloc(&a, bytes)); CHECK(cudaMalloc(&b, bytes));
        CHECK(cudaMemset(a, 1, bytes));
        std::vector<float> ms;
        for (int i = 0; i < 12; i++) {
            CHECK(cudaEventRecord(e0, stream)); CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
            CHECK(cudaEventRecord(e1, stream)); CHECK(cudaEventSynchronize(e1));
            float t; CHECK(cudaEventElapsedTime(&t, e0, e1)); if (i >= 2) ms.push_back(t);
        }
        std::sort(ms.begin(), ms.end()); copyGBs = 2.0 * bytes / (ms[ms.size() / 2] * 1e-3) / 1e9;
        CHECK(cudaFree(a)); CHECK(cudaFree(b));
    }
    std::printf("device %s, %d SMs, L2 %d MB, smem/block opt-in %d B, DtoD copy %.0f GB/s (read+write)\n",
                prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, limits.maxSharedBytes, copyGBs);

    std::string json = "[";
    long long total_mismatches = 0;   // any mismatch makes the exit code 1
    for (const std::string& spec : specs) {
        std::vector<Shape> shapes = parse_shapes(spec, shapesFile);
        long long elements = 0; for (auto& s : shapes) elements += (long long)s.rows * s.length;
        // Copies so that w + sorted0 of all copies exceed L2 several times.
        const long long bytesPerCopy = 8 * elements;
        const int copies = (int)std::max<long long>(2, std::min<long long>(256, (256ll << 20) / bytesPerCopy + 1));
        std::vector<long long> offset(shapes.size()); { long long o = 0; for (size_t i = 0; i < shapes.size(); i++) { offset[i] = o; o += (long long)shapes[i].rows * shapes[i].length; } }

        // Inputs: w has ties, -0/+0 and NaN; sorted0 is a sorted random row set.
        std::mt19937 rng(12345);
        std::vector<float> hw(elements), hs(elements);
        std::normal_distribution<float> nd(0.f, 1.f);
        for (long long i = 0; i < elements; i++) {
            uint32_t r = rng();
            // Ties, both zeros and NaN, rare enough to look like trained weights (heavy ties are the emulator tests' job).
            hw[i] = (r % 1997 == 0) ? 0.25f : (r % 1999 == 0) ? -0.0f : (r % 2003 == 0) ? 0.0f : (r % 4001 == 0) ? NAN : nd(rng);
            hs[i] = nd(rng);
        }
        for (size_t i = 0; i < shapes.size(); i++)
            for (int r = 0; r < shapes[i].rows; r++) {
                float* row = hs.data() + offset[i] + (size_t)r * shapes[i].length;
                std::sort(row, row + shapes[i].length, [](float a, float b) { return order_key(a) < order_key(b); });
            }
        std::vector<float> ref = hw;
        {
            std::vector<std::thread> pool; unsigned nt = std::max(1u, std::thread::hardware_concurrency());
            for (unsigned k = 0; k < nt; k++) pool.emplace_back([&, k] { for (size_t i = k; i < shapes.size(); i += nt) cpu_sync(ref.data() + offset[i], hs.data() + offset[i], shapes[i].rows, shapes[i].length); });
            for (auto& th : pool) th.join();
        }

        float *dw, *ds; CHECK(cudaMalloc(&dw, 4 * elements * copies)); CHECK(cudaMalloc(&ds, 4 * elements * copies));
        for (int c = 0; c < copies; c++) {
            CHECK(cudaMemcpy(dw + c * elements, hw.data(), 4 * elements, cudaMemcpyHostToDevice));
            CHECK(cudaMemcpy(ds + c * elements, hs.data(), 4 * elements, cudaMemcpyHostToDevice));
        }
        std::vector<float> got(elements);

        for (int variant : variants) {
            Plan plan = make_plan(variant, shapes, limits);
            const size_t tn = plan.table.size();
            std::vector<ReconnectTensor> tables(tn * copies);
            for (int c = 0; c < copies; c++)
                for (size_t k = 0; k < tn; k++) {
                    ReconnectTensor t = plan.table[k];
                    t.w = dw + c * elements + offset[plan.order[k]];
                    t.sorted0 = ds + c * elements + offset[plan.order[k]];
                    tables[c * tn + k] = t;
                }
            ReconnectTensor* dt; CHECK(cudaMalloc(&dt, sizeof(ReconnectTensor) * tables.size()));
            CHECK(cudaMemcpy(dt, tables.data(), sizeof(ReconnectTensor) * tables.size(), cudaMemcpyHostToDevice));
            unsigned long long* scratch = nullptr;
            if (plan.scratchElements) CHECK(cudaMalloc(&scratch, 8 * plan.scratchElements));

            // Verify on copy 0 from the pristine input.
            CHECK(cudaMemcpy(dw, hw.data(), 4 * elements, cudaMemcpyHostToDevice));
            enqueue(plan, dt, scratch, stream);
            CHECK(cudaStreamSynchronize(stream)); CHECK(cudaGetLastError());
            CHECK(cudaMemcpy(got.data(), dw, 4 * elements, cudaMemcpyDeviceToHost));
            long long mismatches = 0;
            for (long long i = 0; i < elements; i++) mismatches += std::memcmp(&got[i], &ref[i], 4) != 0;
            total_mismatches += mismatches;

            // Time: one sample = one pass over every copy, divided by the copy count.
            for (int c = 0; c < copies; c++) enqueue(plan, dt + c * tn, scratch, stream);
            std::vector<float> ms;
            for (int s = 0; s < samples; s++) {
                CHECK(cudaEventRecord(e0, stream));
                for (int c = 0; c < copies; c++) enqueue(plan, dt + c * tn, scratch, stream);
                CHECK(cudaEventRecord(e1, stream)); CHECK(cudaEventSynchronize(e1));
                float t; CHECK(cudaEventElapsedTime(&t, e0, e1)); ms.push_back(t / copies);
            }
            CHECK(cudaGetLastError());
            std::sort(ms.begin(), ms.end());
            const double med = ms[ms.size() / 2] * 1e-3;
            const double gbs = 12.0 * elements / med / 1e9;
            std::string launches;
            for (auto& L : plan.launches) launches += std::string(launches.empty() ? "" : "+") + path_name(L.path) + "/" + std::to_string(next_pow2(L.maxLength));
            std::printf("reconnect %-18s variant %d  elements %10lld  median %9.1f us  %7.2f Gelem/s  %7.1f GB/s  %5.1f%% of copy  floor x%.2f  mismatches %lld  launches %zu [%s]\n",
                        spec.c_str(), variant, elements, med * 1e6, elements / med / 1e9, gbs, 100 * gbs / copyGBs, copyGBs / gbs,
                        mismatches, plan.launches.size(), launches.c_str());
            std::fflush(stdout);
            char buf[512];
            std::snprintf(buf, sizeof buf, "%s{\"shapes\":\"%s\",\"variant\":%d,\"elements\":%lld,\"median_us\":%.2f,\"gbs\":%.1f,\"copy_gbs\":%.1f,\"mismatches\":%lld}",
                          json.size() > 1 ? "," : "", spec.c_str(), variant, elements, med * 1e6, gbs, copyGBs, mismatches);
            json += buf;
            CHECK(cudaFree(dt)); if (scratch) CHECK(cudaFree(scratch));
        }
        CHECK(cudaFree(dw)); CHECK(cudaFree(ds));
    }
    json += "]\n";
    if (!jsonOut.empty()) { std::ofstream(jsonOut) << json; }
    if (total_mismatches != 0) std::printf("FAILED: %lld mismatching element(s) in total\n", total_mismatches);
    return total_mismatches == 0 ? 0 : 1;
}
