// standin_test.cpp: the stand-in driver (cuda/emu/standin) keeps the driver's rules.
//
// Each check calls the driver API as cuda.h declares it and expects what a GPU's driver does:
// queued work that runs only when waited for, a context current per thread, fresh memory that
// is not zeroed, capture rules, graphs replaying the argument values they captured, PTX whose
// parameters disagree with the emulator refused, and a kernel fault that sticks. Usage:
//   laperm_standin_test <folder with axpy.ptx>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern "C" {
int cuInit(unsigned);
int cuDeviceGet(int*, int);
int cuDevicePrimaryCtxRetain(void**, int);
int cuCtxSetCurrent(void*);
int cuCtxSynchronize();
int cuMemAlloc_v2(std::uint64_t*, std::size_t);
int cuMemFree_v2(std::uint64_t);
int cuMemHostAlloc(void**, std::size_t, unsigned);
int cuMemcpyHtoD_v2(std::uint64_t, const void*, std::size_t);
int cuMemcpyDtoH_v2(void*, std::uint64_t, std::size_t);
int cuMemcpyHtoDAsync_v2(std::uint64_t, const void*, std::size_t, void*);
int cuMemcpyDtoHAsync_v2(void*, std::uint64_t, std::size_t, void*);
int cuMemcpyDtoDAsync_v2(std::uint64_t, std::uint64_t, std::size_t, void*);
int cuStreamCreate(void**, unsigned);
int cuStreamSynchronize(void*);
int cuEventCreate(void**, unsigned);
int cuEventRecord(void*, void*);
int cuEventQuery(void*);
int cuModuleLoadDataEx(void**, const void*, unsigned, int*, void**);
int cuModuleGetFunction(void**, void*, const char*);
int cuLaunchKernel(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
int cuStreamBeginCapture_v2(void*, int);
int cuStreamEndCapture(void*, void**);
int cuGraphInstantiateWithFlags(void**, void*, unsigned long long);
int cuGraphLaunch(void*, void*);
int cuGraphGetNodes(void*, void**, std::size_t*);
struct UpdateInfo { int result; void* node; void* from; };
int cuGraphExecUpdate_v2(void*, void*, UpdateInfo*);
}

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) { std::fprintf(stderr, "usage: %s <ptx folder>\n", argv[0]); return 2; }
    const std::string ptx = read_file(std::string(argv[1]) + "/axpy.ptx");
    if (ptx.empty()) { std::fprintf(stderr, "no axpy.ptx in %s\n", argv[1]); return 2; }

    expect(cuMemAlloc_v2(nullptr, 4) == 3, "a call before cuInit is CUDA_ERROR_NOT_INITIALIZED");
    int device = -1;
    void* context = nullptr;
    if (cuInit(0) != 0 || cuDeviceGet(&device, 0) != 0 || cuDevicePrimaryCtxRetain(&context, device) != 0) return 1;
    std::uint64_t probe = 0;
    expect(cuMemAlloc_v2(&probe, 4) == 201, "without a current context an allocation is CUDA_ERROR_INVALID_CONTEXT");
    cuCtxSetCurrent(context);

    const int n = 1000;
    std::uint64_t x = 0, y = 0;
    expect(cuMemAlloc_v2(&x, n * 4) == 0 && cuMemAlloc_v2(&y, n * 4) == 0, "allocations");
    std::vector<std::uint32_t> bits(n, 0);
    cuMemcpyDtoH_v2(bits.data(), x, n * 4);
    expect(bits[0] == 0xFFFFFFFFu && bits[n - 1] == 0xFFFFFFFFu, "fresh device memory is not zeroed");

    int other_thread = -1;
    std::thread([&] { std::uint64_t p = 0; other_thread = cuMemAlloc_v2(&p, 4); }).join();
    expect(other_thread == 201, "a context is current per thread: another thread has none");

    void* stream = nullptr;
    cuStreamCreate(&stream, 1);
    float *pinned_in = nullptr, *pinned_out = nullptr;
    cuMemHostAlloc(reinterpret_cast<void**>(&pinned_in), n * 4, 0);
    cuMemHostAlloc(reinterpret_cast<void**>(&pinned_out), n * 4, 0);
    for (int i = 0; i < n; i++) { pinned_in[i] = float(i); pinned_out[i] = -1.0f; }
    cuMemcpyHtoDAsync_v2(x, pinned_in, n * 4, stream);
    pinned_in[0] = 42.0f;   // before the copy ran: the copy sends this
    cuMemcpyDtoHAsync_v2(pinned_out, x, n * 4, stream);
    expect(pinned_out[0] == -1.0f, "an asynchronous copy to pinned memory has not run before the wait");
    void* event = nullptr;
    cuEventCreate(&event, 0);
    cuEventRecord(event, stream);
    expect(cuEventQuery(event) == 600, "the first query of a pending event is CUDA_ERROR_NOT_READY");
    expect(cuEventQuery(event) == 0, "the next query waits and succeeds");
    expect(pinned_out[0] == 42.0f && pinned_out[n - 1] == float(n - 1), "the copies ran in stream order, reading the pinned source when they ran");

    // A kernel, from the PTX the build made.
    void* module = nullptr;
    void* axpy = nullptr;
    expect(cuModuleLoadDataEx(&module, ptx.c_str(), 0, nullptr, nullptr) == 0 && cuModuleGetFunction(&axpy, module, "axpy_v1") == 0,
           "axpy.ptx loads and axpy_v1 is found");
    std::vector<float> ones(n, 1.0f);
    cuMemcpyHtoD_v2(y, ones.data(), n * 4);
    int count = n;
    float a = 2.0f;
    void* args[] = {&count, &a, &x, &y};
    cuLaunchKernel(axpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args, nullptr);
    cuStreamSynchronize(stream);
    std::vector<float> out(n);
    cuMemcpyDtoH_v2(out.data(), y, n * 4);
    expect(out[0] == 1.0f + 2.0f * 42.0f && out[5] == 11.0f, "axpy_v1 ran on the emulator: y = 2x + y");

    // PTX whose parameter disagrees with the emulator's C++ signature.
    std::string wrong = ptx;
    std::size_t at = wrong.find(".param .u32 axpy_v1_param_0");
    expect(at != std::string::npos, "the PTX declares axpy_v1's first parameter as .u32");
    if (at != std::string::npos) {
        wrong.replace(at, 11, ".param .u64");
        char log[1024] = {0};
        int options[] = {5, 6};
        void* values[] = {log, reinterpret_cast<void*>(std::uintptr_t(sizeof log))};
        void* broken = nullptr;
        expect(cuModuleLoadDataEx(&broken, wrong.c_str(), 2, options, values) == 218 && std::strstr(log, "parameter 0") != nullptr,
               "a PTX parameter of another size than the C++ one is CUDA_ERROR_INVALID_PTX, and the log names it");
    }

    // Capture: a pageable copy invalidates it; allocation on the capturing thread is refused.
    cuStreamBeginCapture_v2(stream, 1);
    std::vector<float> pageable(n, 0.0f);
    expect(cuMemcpyHtoDAsync_v2(x, pageable.data(), n * 4, stream) == 900, "a pageable copy cannot be captured");
    void* graph = nullptr;
    expect(cuStreamEndCapture(stream, &graph) == 901 && graph == nullptr, "... and the capture ends invalidated, without a graph");
    cuStreamBeginCapture_v2(stream, 1);
    expect(cuMemAlloc_v2(&probe, 4) == 900, "an allocation on the capturing thread is refused");
    cuStreamEndCapture(stream, &graph);

    // A graph replays the argument values of its capture.
    cuMemcpyHtoD_v2(y, ones.data(), n * 4);
    cuStreamBeginCapture_v2(stream, 1);
    a = 3.0f;
    cuLaunchKernel(axpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args, nullptr);
    cuStreamEndCapture(stream, &graph);
    a = 100.0f;   // after the capture: not what the replays use
    void* exec = nullptr;
    expect(cuGraphInstantiateWithFlags(&exec, graph, 0) == 0, "the graph instantiates");
    expect(cuMemcpyDtoH_v2(out.data(), y, n * 4) == 0 && out[5] == 1.0f, "a capture runs nothing");
    cuGraphLaunch(exec, stream);
    cuGraphLaunch(exec, stream);
    cuStreamSynchronize(stream);
    cuMemcpyDtoH_v2(out.data(), y, n * 4);
    expect(out[5] == 1.0f + 2 * 3.0f * 5.0f, "two replays with the captured a = 3");

    // An update to a graph of another kernel is refused.
    void* axpy2 = nullptr;
    cuModuleGetFunction(&axpy2, module, "axpy_v2");
    cuStreamBeginCapture_v2(stream, 1);
    cuLaunchKernel(axpy2, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args, nullptr);
    void* other = nullptr;
    cuStreamEndCapture(stream, &other);
    UpdateInfo info{-1, nullptr, nullptr};
    expect(cuGraphExecUpdate_v2(exec, other, &info) == 910 && info.result == 4, "an update to another kernel is CU_GRAPH_EXEC_UPDATE_ERROR_FUNCTION_CHANGED");

    // A graph's nodes: one per captured operation; with an array, as many as fit, the rest null.
    cuStreamBeginCapture_v2(stream, 1);
    cuLaunchKernel(axpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args, nullptr);
    cuMemcpyDtoDAsync_v2(x, y, n * 4, stream);
    cuLaunchKernel(axpy2, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args, nullptr);
    void* three = nullptr;
    cuStreamEndCapture(stream, &three);
    std::size_t count_nodes = 0;
    expect(cuGraphGetNodes(three, nullptr, &count_nodes) == 0 && count_nodes == 3, "a graph of two launches and a copy has 3 nodes");
    void* nodes[5] = {&count_nodes, &count_nodes, &count_nodes, &count_nodes, &count_nodes};
    count_nodes = 2;
    expect(cuGraphGetNodes(three, nodes, &count_nodes) == 0 && count_nodes == 2 && nodes[0] && nodes[1] && nodes[0] != nodes[1]
               && nodes[2] == &count_nodes, "an array of 2 gets the first 2 nodes");
    count_nodes = 5;
    expect(cuGraphGetNodes(three, nodes, &count_nodes) == 0 && count_nodes == 3 && nodes[2] && !nodes[3] && !nodes[4],
           "an array of 5 gets 3 nodes and 2 nulls");
    expect(cuGraphGetNodes(three, nullptr, nullptr) == 1, "no count is CUDA_ERROR_INVALID_VALUE");
    expect(cuGraphGetNodes(&count_nodes, nullptr, &count_nodes) == 400, "an unknown graph is CUDA_ERROR_INVALID_HANDLE");

    // Last: a kernel fault sticks (every later call fails with it, as on a GPU).
    std::uint64_t outside = reinterpret_cast<std::uintptr_t>(out.data());   // host memory, not a device buffer
    void* bad[] = {&count, &a, &x, &outside};
    expect(cuLaunchKernel(axpy, 1, 1, 1, 32, 1, 1, 0, stream, bad, nullptr) == 0, "a bad launch is queued without complaint");
    expect(cuStreamSynchronize(stream) == 700, "the fault surfaces at the next wait as CUDA_ERROR_ILLEGAL_ADDRESS");
    expect(cuMemAlloc_v2(&probe, 4) == 700 && cuCtxSynchronize() == 700, "... and sticks");

    std::printf("%d failure(s)\n", failures);
    return failures == 0 ? 0 : 1;
}
