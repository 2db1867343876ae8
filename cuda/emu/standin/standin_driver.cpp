// standin_driver.cpp: a libcuda.so.1 that runs on the host emulator.
//
// Why: the C# runtime's real-GPU path (CudaRuntime through CudaDriver and Cublas) is otherwise
// run only on a GPU, which our CI never has. Put this library's folder on LD_LIBRARY_PATH and the
// same binary opens it as the driver: every Gpu test and `laperm ... --device cuda` then runs
// through the exact driver calls a GPU would get, with the kernels executed by the emulator.
//
// It is written against cuda.h's prototypes (not against our bindings), and it keeps the driver's
// rules that a host emulator running work at once would hide:
//   - work on a stream is queued and runs only when something waits for it (stream, event or
//     context synchronisation, a copy to pageable memory), as it would run later on a GPU: a host
//     read of an asynchronous copy's destination before the wait sees stale bytes; a pinned source
//     changed before the wait is what the copy sends; new device memory holds garbage (0xFF bytes),
//     not zeros;
//   - every call that needs a context fails with CUDA_ERROR_INVALID_CONTEXT on a thread where
//     none is current (cuCtxSetCurrent is per thread);
//   - stream capture: only capturable work is recorded (kernels, device copies, pinned copies,
//     memsets, event records, library work); a pageable copy or a synchronisation of the capturing
//     stream invalidates the capture; allocation, freeing, module loading and context
//     synchronisation on a capturing thread fail; kernel arguments are copied at the launch, so a
//     graph replays the values it captured; cuGraphExecUpdate refuses a change of topology or kernel;
//   - a kernel the emulator refuses at run time (an argument outside every buffer, a write past a
//     buffer's end, a broken barrier) becomes a sticky CUDA_ERROR_ILLEGAL_ADDRESS reported by the
//     next synchronising call, and every later call of the process fails with it;
//   - each PTX .entry's parameters must match the emulator's C++ signature byte for byte (an
//     entry the emulator lacks loads, and cuModuleGetFunction does not find it, saying why; a
//     PTX with no kernel the emulator knows is refused as CUDA_ERROR_INVALID_PTX).
// Environment: LAPERM_STANDIN_CC=major.minor (default 9.0), LAPERM_STANDIN_DEVICES (default 1),
// LAPERM_STANDIN_MEMORY_MIB (device memory, default 4096).
#include "laperm_emu.h"
#include "standin.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

// CUresult values (cuda.h).
enum : int {
    kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2, kNotInitialized = 3,
    kNoDevice = 100, kInvalidDevice = 101,
    kInvalidImage = 200, kInvalidContext = 201, kInvalidPtx = 218,
    kInvalidHandle = 400, kIllegalState = 401, kNotFound = 500, kNotReady = 600,
    kIllegalAddress = 700, kNotSupported = 801,
    kCaptureUnsupported = 900, kCaptureInvalidated = 901, kCapturedEvent = 907, kCaptureWrongThread = 908,
    kGraphExecUpdateFailure = 910,
};

struct ErrorText { int code; const char* name; const char* text; };
constexpr ErrorText kErrors[] = {
    {kSuccess, "CUDA_SUCCESS", "no error"},
    {kInvalidValue, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {kOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {kNotInitialized, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {kNoDevice, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {kInvalidDevice, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {kInvalidImage, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {kInvalidContext, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {kInvalidPtx, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {kInvalidHandle, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {kIllegalState, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {kNotFound, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {kNotReady, "CUDA_ERROR_NOT_READY", "device not ready"},
    {kIllegalAddress, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {kNotSupported, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {kCaptureUnsupported, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
    {kCaptureInvalidated, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"},
    {kCapturedEvent, "CUDA_ERROR_CAPTURED_EVENT", "operation not permitted on an event last recorded in a capturing stream"},
    {kCaptureWrongThread, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD", "attempt to terminate a thread-local capture sequence from another thread"},
    {kGraphExecUpdateFailure, "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE", "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update"},
};

// Device attributes (CUdevice_attribute values of cuda.h) of an H100 SXM; an attribute not listed
// is refused, so that a new one the runtime reads is added here on purpose.
struct Attribute { int id; int value; };
constexpr Attribute kAttributes[] = {
    {1, 1024},        // MAX_THREADS_PER_BLOCK
    {2, 1024}, {3, 1024}, {4, 64},                 // MAX_BLOCK_DIM_X/Y/Z
    {5, 2147483647}, {6, 65535}, {7, 65535},       // MAX_GRID_DIM_X/Y/Z
    {8, 49152},       // MAX_SHARED_MEMORY_PER_BLOCK
    {10, 32},         // WARP_SIZE
    {12, 65536},      // MAX_REGISTERS_PER_BLOCK
    {13, 1980000},    // CLOCK_RATE (kHz)
    {16, 132},        // MULTIPROCESSOR_COUNT
    {36, 2619000},    // MEMORY_CLOCK_RATE (kHz)
    {37, 5120},       // GLOBAL_MEMORY_BUS_WIDTH
    {38, 52428800},   // L2_CACHE_SIZE
    {39, 2048},       // MAX_THREADS_PER_MULTIPROCESSOR
    {41, 1},          // UNIFIED_ADDRESSING
    {81, 233472},     // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
    {82, 65536},      // MAX_REGISTERS_PER_MULTIPROCESSOR
    {97, 232448},     // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
};
constexpr int kAttributeCcMajor = 75, kAttributeCcMinor = 76;
constexpr int kDefaultSharedLimit = 49152, kOptInSharedLimit = 232448;
constexpr std::size_t kGuardBytes = 256;
constexpr std::uintptr_t kLegacyStream = 0x1, kPerThreadStream = 0x2;

int env_int(const char* name, int fallback) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == 0) return fallback;
    char* end = nullptr;
    long value = std::strtol(text, &end, 10);
    return end != text && *end == 0 && value >= 0 && value < (1L << 30) ? static_cast<int>(value) : fallback;
}

struct Function;
struct Event;

// One unit of queued or captured work.
struct Operation {
    enum class Kind { Kernel, Copy, Memset, Record, Host } kind = Kind::Host;
    std::string name;                               // kernel or library operation
    const Function* function = nullptr;
    unsigned grid[3] = {1, 1, 1}, block[3] = {1, 1, 1}, shared = 0;
    std::vector<std::vector<unsigned char>> args;   // argument values, copied at the launch
    void* destination = nullptr;
    const void* source = nullptr;
    std::shared_ptr<std::vector<unsigned char>> staged;   // a pageable source, copied at the call
    std::size_t bytes = 0;
    std::uint32_t value = 0;
    Event* event = nullptr;
    std::function<int()> host;
};

struct Function {
    std::string name;
    std::vector<int> arg_sizes;
    int static_shared = 0;
    int max_dynamic_shared = -1;    // -1: cuFuncSetAttribute never called (48 KiB in all)
};

struct Module {
    std::map<std::string, std::unique_ptr<Function>> functions;
    std::vector<std::string> missing;   // entries of the PTX the emulator was not built with
};

struct Capture {
    std::thread::id thread;
    int mode = 0;
    std::string invalidated_by;     // empty while valid
    std::vector<Operation> operations;
};

struct Stream {
    unsigned flags = 0;
    std::deque<Operation> queue;
    std::unique_ptr<Capture> capture;
};

struct Event {
    unsigned flags = 0;
    bool recorded = false;          // ever recorded outside a capture (or by a graph replay)
    bool pending = false;           // its record is queued and has not run
    bool captured = false;          // last recorded into a capture
    int not_ready_answers = 0;      // cuEventQuery says NOT_READY this many times before it waits
    Stream* stream = nullptr;
    double milliseconds = 0;
};

struct Graph { std::vector<Operation> operations; };

// The whole driver state, behind one lock (the C# runtime calls from several threads).
struct Driver {
    std::recursive_mutex mutex;
    bool initialised = false;
    int sticky = kSuccess;          // a kernel fault: every later call fails with it, as on a GPU
    int primary_refs = 0;
    int cc_major = 9, cc_minor = 0, device_count = 1;
    std::size_t memory_budget = std::size_t(4096) << 20, memory_used = 0;
    std::map<std::uintptr_t, std::size_t> device_memory;   // base -> bytes
    std::map<std::uintptr_t, std::size_t> pinned_memory;   // base -> bytes
    std::map<Stream*, std::unique_ptr<Stream>> streams;
    std::map<Event*, std::unique_ptr<Event>> events;        // destroyed events stay until exit
    std::set<Event*> live_events;
    std::map<Module*, std::unique_ptr<Module>> modules;
    std::set<const Function*> live_functions;
    std::map<Graph*, std::unique_ptr<Graph>> graphs, executables;
    std::chrono::steady_clock::time_point epoch = std::chrono::steady_clock::now();

    Driver() {
        if (const char* cc = std::getenv("LAPERM_STANDIN_CC"); cc != nullptr && *cc != 0) {
            int major = 0, minor = 0;
            if (std::sscanf(cc, "%d.%d", &major, &minor) == 2) { cc_major = major; cc_minor = minor; }
        }
        device_count = env_int("LAPERM_STANDIN_DEVICES", 1);
        memory_budget = std::size_t(env_int("LAPERM_STANDIN_MEMORY_MIB", 4096)) << 20;
    }
};

Driver& driver() {
    static Driver instance;
    return instance;
}

thread_local bool t_context_current = false;

int context_marker;   // the primary context's handle is this object's address
void* primary_handle() { return &context_marker; }

using Lock = std::lock_guard<std::recursive_mutex>;

bool context_ready() { return t_context_current && driver().primary_refs > 0; }

// The checks every context call starts with.
int enter() {
    Driver& d = driver();
    if (!d.initialised) return kNotInitialized;
    if (!context_ready()) return kInvalidContext;
    return d.sticky;
}

void report(const char* what) { std::fprintf(stderr, "laperm stand-in driver: %s\n", what); }

const std::pair<const std::uintptr_t, std::size_t>* find_range(const std::map<std::uintptr_t, std::size_t>& map,
                                                              std::uintptr_t pointer, std::size_t bytes) {
    auto it = map.upper_bound(pointer);
    if (it == map.begin()) return nullptr;
    --it;
    if (pointer < it->first || pointer - it->first > it->second || bytes > it->second - (pointer - it->first)) return nullptr;
    return &*it;
}

bool is_device(std::uint64_t pointer, std::size_t bytes) { return find_range(driver().device_memory, pointer, bytes) != nullptr; }
bool is_pinned(const void* pointer, std::size_t bytes) {
    return find_range(driver().pinned_memory, reinterpret_cast<std::uintptr_t>(pointer), bytes) != nullptr;
}

int execute(Operation& op) {
    Driver& d = driver();
    switch (op.kind) {
    case Operation::Kind::Kernel: {
        std::vector<void*> argv(op.args.size());
        for (std::size_t i = 0; i < op.args.size(); i++) argv[i] = op.args[i].data();
        if (laperm_emu_launch(op.name.c_str(), op.grid[0], op.grid[1], op.grid[2], op.block[0], op.block[1], op.block[2],
                              op.shared, argv.data()) != 0) {
            std::string message = "kernel " + op.name + " faulted: " + laperm_emu_last_error();
            report(message.c_str());
            return kIllegalAddress;
        }
        return kSuccess;
    }
    case Operation::Kind::Copy:
        std::memmove(op.destination, op.staged ? op.staged->data() : op.source, op.bytes);
        return kSuccess;
    case Operation::Kind::Memset: {
        auto* words = static_cast<std::uint32_t*>(op.destination);
        std::fill(words, words + op.bytes / 4, op.value);
        return kSuccess;
    }
    case Operation::Kind::Record:
        op.event->pending = false;
        op.event->milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - d.epoch).count();
        return kSuccess;
    case Operation::Kind::Host: {
        int result = op.host();
        if (result != kSuccess) {
            std::string message = op.name + " failed with CUresult " + std::to_string(result);
            report(message.c_str());
        }
        return result;
    }
    }
    return kInvalidValue;
}

// A fault abandons all outstanding work, as a GPU's context does.
void fault(int result) {
    Driver& d = driver();
    d.sticky = result;
    for (auto& [key, stream] : d.streams) stream->queue.clear();
    for (auto& [key, event] : d.events) event->pending = false;
}

// Runs a stream's queued work in order, up to `until` (an event whose record then has run) or all of it.
int drain(Stream* stream, const Event* until = nullptr) {
    Driver& d = driver();
    while (!stream->queue.empty() && d.sticky == kSuccess) {
        Operation op = std::move(stream->queue.front());
        stream->queue.pop_front();
        if (int result = execute(op); result != kSuccess) fault(result);
        if (until != nullptr && !until->pending) break;
    }
    return d.sticky;
}

int drain_all(bool blocking_only = false) {
    Driver& d = driver();
    for (auto& [key, stream] : d.streams)
        if (!blocking_only || (stream->flags & 1) == 0) drain(stream.get());
    return d.sticky;
}

// Resolves a stream handle: nullptr for the legacy stream, the stream, or an error.
int resolve(void* handle, Stream** stream) {
    auto h = reinterpret_cast<std::uintptr_t>(handle);
    if (h == 0 || h == kLegacyStream) { *stream = nullptr; return kSuccess; }
    if (h == kPerThreadStream) return kNotSupported;
    auto it = driver().streams.find(static_cast<Stream*>(handle));
    if (it == driver().streams.end()) return kInvalidHandle;
    *stream = it->second.get();
    return kSuccess;
}

int invalidate(Stream* stream, const char* by) {
    if (stream->capture->invalidated_by.empty()) stream->capture->invalidated_by = by;
    return kCaptureUnsupported;
}

// What the driver refuses on a thread that captures (global mode: on any thread): the call
// fails, and the captures it would have broken are invalidated.
int refuse_if_capturing(const char* operation) {
    int result = kSuccess;
    for (auto& [key, stream] : driver().streams) {
        Capture* capture = stream->capture.get();
        if (capture == nullptr) continue;
        if (capture->mode == 0 || (capture->mode == 1 && capture->thread == std::this_thread::get_id()))
            result = invalidate(stream.get(), operation);
    }
    return result;
}

// Queues (or records, or for the legacy stream runs now) one operation.
int submit(Stream* stream, Operation op) {
    Driver& d = driver();
    if (stream == nullptr) {
        // The legacy stream waits for the blocking streams and they for it; ours run at once.
        if (drain_all(true) != kSuccess) return d.sticky;
        if (op.kind == Operation::Kind::Record) { op.event->recorded = true; op.event->captured = false; op.event->stream = nullptr; }
        if (int result = execute(op); result != kSuccess) fault(result);
        return d.sticky;
    }
    if (Capture* capture = stream->capture.get()) {
        if (!capture->invalidated_by.empty()) return kCaptureInvalidated;
        if (op.kind == Operation::Kind::Record) { op.event->captured = true; op.event->pending = false; }
        capture->operations.push_back(std::move(op));
        return kSuccess;
    }
    if (op.kind == Operation::Kind::Record) {
        Event* e = op.event;
        e->recorded = true;
        e->captured = false;
        e->pending = true;
        e->stream = stream;
        e->not_ready_answers = 1;
    }
    stream->queue.push_back(std::move(op));
    return kSuccess;
}

int copy_async(void* destination, const void* source, std::size_t bytes, void* stream_handle,
               bool destination_host, bool source_host) {
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(stream_handle, &stream); r != kSuccess) return r;
    auto dst = reinterpret_cast<std::uintptr_t>(destination), src = reinterpret_cast<std::uintptr_t>(source);
    if ((!destination_host && !is_device(dst, bytes)) || (!source_host && !is_device(src, bytes))) return kInvalidValue;
    if (bytes == 0) return kSuccess;
    bool pageable_source = source_host && !is_pinned(source, bytes);
    bool pageable_destination = destination_host && !is_pinned(destination, bytes);
    if (stream != nullptr && stream->capture && (pageable_source || pageable_destination))
        return invalidate(stream, "a copy from or to pageable host memory");
    Operation op;
    op.kind = Operation::Kind::Copy;
    op.destination = destination;
    op.bytes = bytes;
    if (pageable_source) {
        // The driver stages pageable memory before it returns: the caller may reuse it at once.
        op.staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(source),
                                                                 static_cast<const unsigned char*>(source) + bytes);
    } else {
        op.source = source;
    }
    if (pageable_destination) {
        // ... and returns from a copy to pageable memory only once it is complete.
        if (stream != nullptr && drain(stream) != kSuccess) return driver().sticky;
        return submit(nullptr, std::move(op));
    }
    return submit(stream, std::move(op));
}

int copy_sync(void* destination, const void* source, std::size_t bytes, bool destination_host, bool source_host) {
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("a synchronous copy"); r != kSuccess) return r;
    auto dst = reinterpret_cast<std::uintptr_t>(destination), src = reinterpret_cast<std::uintptr_t>(source);
    if ((!destination_host && !is_device(dst, bytes)) || (!source_host && !is_device(src, bytes))) return kInvalidValue;
    Operation op;
    op.kind = Operation::Kind::Copy;
    op.destination = destination;
    op.source = source;
    op.bytes = bytes;
    return submit(nullptr, std::move(op));
}

// ---- PTX ---------------------------------------------------------------------------------------

std::size_t ptx_type_bytes(const std::string& type) {
    if (type.size() < 3) return 0;
    std::string bits = type.substr(2);
    char kind = type[1];
    if (kind != 'u' && kind != 's' && kind != 'b' && kind != 'f') return 0;
    if (bits == "8") return 1;
    if (bits == "16") return 2;
    if (bits == "32") return 4;
    if (bits == "64") return 8;
    return 0;
}

// Each .entry and the byte size of each of its parameters, or an error message.
std::string parse_ptx(const std::string& text, std::vector<std::pair<std::string, std::vector<int>>>& entries) {
    std::size_t at = 0;
    while ((at = text.find(".entry", at)) != std::string::npos) {
        at += 6;
        std::size_t open = text.find('(', at);
        if (open == std::string::npos) return "an .entry without a parameter list";
        std::string name = text.substr(at, open - at);
        name.erase(std::remove_if(name.begin(), name.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }), name.end());
        std::size_t close = text.find(')', open);
        if (close == std::string::npos) return "the parameter list of " + name + " is not closed";
        std::vector<int> sizes;
        std::string list = text.substr(open + 1, close - open - 1);
        std::size_t start = 0;
        while (start < list.size()) {
            std::size_t comma = list.find(',', start);
            std::string param = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            start = comma == std::string::npos ? list.size() : comma + 1;
            if (param.find(".param") == std::string::npos) continue;
            std::size_t bytes = 0, count = 1, word_start = 0;
            std::vector<std::string> words;
            for (std::size_t i = 0; i <= param.size(); i++) {
                if (i == param.size() || std::isspace(static_cast<unsigned char>(param[i]))) {
                    if (i > word_start) words.push_back(param.substr(word_start, i - word_start));
                    word_start = i + 1;
                }
            }
            for (const std::string& word : words)
                if (bytes == 0) bytes = ptx_type_bytes(word);
            if (std::size_t bracket = param.find('['); bracket != std::string::npos) count = std::strtoul(param.c_str() + bracket + 1, nullptr, 10);
            if (bytes == 0) return "parameter '" + param + "' of " + name + " has no type the stand-in knows";
            sizes.push_back(static_cast<int>(bytes * count));
        }
        entries.emplace_back(name, std::move(sizes));
        at = close;
    }
    return "";
}

void write_log(char* buffer, std::size_t size, const std::string& text, std::size_t* written) {
    *written = 0;
    if (buffer == nullptr || size == 0) return;
    std::size_t n = std::min(size - 1, text.size());
    std::memcpy(buffer, text.data(), n);
    buffer[n] = 0;
    *written = n + 1;
}

}  // namespace

// ---- the driver API ------------------------------------------------------------------------------
// Types as cuda.h declares them: CUresult and CUdevice are int, CUdeviceptr is unsigned long long,
// handles are pointers to opaque structs.

extern "C" {
#define API LAPERM_STANDIN_EXPORT

API int cuGetErrorName(int error, const char** name) {
    for (const auto& e : kErrors)
        if (e.code == error) { *name = e.name; return kSuccess; }
    *name = nullptr;
    return kInvalidValue;
}

API int cuGetErrorString(int error, const char** text) {
    for (const auto& e : kErrors)
        if (e.code == error) { *text = e.text; return kSuccess; }
    *text = nullptr;
    return kInvalidValue;
}

API int cuInit(unsigned flags) {
    Lock lock(driver().mutex);
    if (flags != 0) return kInvalidValue;
    if (driver().device_count == 0) return kNoDevice;
    driver().initialised = true;
    return kSuccess;
}

API int cuDriverGetVersion(int* version) {
    if (version == nullptr) return kInvalidValue;
    *version = 12080;
    return kSuccess;
}

API int cuDeviceGetCount(int* count) {
    Lock lock(driver().mutex);
    if (!driver().initialised) return kNotInitialized;
    if (count == nullptr) return kInvalidValue;
    *count = driver().device_count;
    return kSuccess;
}

API int cuDeviceGet(int* device, int ordinal) {
    Lock lock(driver().mutex);
    if (!driver().initialised) return kNotInitialized;
    if (device == nullptr) return kInvalidValue;
    if (ordinal < 0 || ordinal >= driver().device_count) return kInvalidDevice;
    *device = ordinal;
    return kSuccess;
}

static int check_device(int device) {
    if (!driver().initialised) return kNotInitialized;
    return device >= 0 && device < driver().device_count ? kSuccess : kInvalidDevice;
}

API int cuDeviceGetName(char* name, int length, int device) {
    Lock lock(driver().mutex);
    if (int r = check_device(device); r != kSuccess) return r;
    if (name == nullptr || length <= 0) return kInvalidValue;
    std::snprintf(name, static_cast<std::size_t>(length), "LaPerm stand-in GPU (host emulator)");
    return kSuccess;
}

API int cuDeviceGetAttribute(int* value, int attribute, int device) {
    Lock lock(driver().mutex);
    if (int r = check_device(device); r != kSuccess) return r;
    if (value == nullptr) return kInvalidValue;
    if (attribute == kAttributeCcMajor) { *value = driver().cc_major; return kSuccess; }
    if (attribute == kAttributeCcMinor) { *value = driver().cc_minor; return kSuccess; }
    for (const auto& a : kAttributes)
        if (a.id == attribute) { *value = a.value; return kSuccess; }
    std::string message = "cuDeviceGetAttribute: attribute " + std::to_string(attribute) + " is not in the stand-in's table";
    report(message.c_str());
    return kInvalidValue;
}

API int cuDeviceTotalMem_v2(std::size_t* bytes, int device) {
    Lock lock(driver().mutex);
    if (int r = check_device(device); r != kSuccess) return r;
    if (bytes == nullptr) return kInvalidValue;
    *bytes = driver().memory_budget;
    return kSuccess;
}

API int cuDevicePrimaryCtxRetain(void** context, int device) {
    Lock lock(driver().mutex);
    if (int r = check_device(device); r != kSuccess) return r;
    if (context == nullptr) return kInvalidValue;
    driver().primary_refs++;
    *context = primary_handle();
    return kSuccess;
}

API int cuDevicePrimaryCtxRelease_v2(int device) {
    Lock lock(driver().mutex);
    if (int r = check_device(device); r != kSuccess) return r;
    Driver& d = driver();
    if (d.primary_refs == 0) return kInvalidContext;
    if (--d.primary_refs == 0) {
        // The context goes, and everything in it.
        drain_all();
        for (auto& [base, bytes] : d.device_memory) {
            laperm_emu_unregister_buffer(reinterpret_cast<void*>(base));
            std::free(reinterpret_cast<void*>(base));
        }
        for (auto& [base, bytes] : d.pinned_memory) std::free(reinterpret_cast<void*>(base));
        d.device_memory.clear();
        d.pinned_memory.clear();
        d.memory_used = 0;
        d.streams.clear();
        d.live_events.clear();
        d.modules.clear();
        d.live_functions.clear();
        d.graphs.clear();
        d.executables.clear();
    }
    return d.sticky;
}

API int cuCtxSetCurrent(void* context) {
    Lock lock(driver().mutex);
    if (!driver().initialised) return kNotInitialized;
    if (context != nullptr && context != primary_handle()) return kInvalidContext;
    t_context_current = context != nullptr;
    return kSuccess;
}

API int cuCtxSynchronize() {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("a context synchronisation"); r != kSuccess) return r;
    return drain_all();
}

// ---- memory ----

API int cuMemAlloc_v2(std::uint64_t* pointer, std::size_t bytes) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("a device allocation"); r != kSuccess) return r;
    Driver& d = driver();
    if (pointer == nullptr || bytes == 0) return kInvalidValue;
    if (bytes > d.memory_budget - d.memory_used) return kOutOfMemory;
    std::size_t total = (bytes + kGuardBytes + 255) / 256 * 256;
    void* base = std::aligned_alloc(256, total);
    if (base == nullptr) return kOutOfMemory;
    std::memset(base, 0xFF, bytes);   // fresh device memory is not zeroed
    if (laperm_emu_register_buffer(base, bytes) != 0 || laperm_emu_guard_buffer(base, kGuardBytes) != 0) {
        report(laperm_emu_last_error());
        std::free(base);
        return kOutOfMemory;
    }
    d.device_memory[reinterpret_cast<std::uintptr_t>(base)] = bytes;
    d.memory_used += bytes;
    *pointer = reinterpret_cast<std::uintptr_t>(base);
    return kSuccess;
}

API int cuMemFree_v2(std::uint64_t pointer) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("freeing device memory"); r != kSuccess) return r;
    Driver& d = driver();
    auto it = d.device_memory.find(pointer);
    if (it == d.device_memory.end()) return kInvalidValue;
    if (int r = drain_all(); r != kSuccess) return r;   // cuMemFree waits for the work that may use it
    laperm_emu_unregister_buffer(reinterpret_cast<void*>(pointer));
    d.memory_used -= it->second;
    d.device_memory.erase(it);
    std::free(reinterpret_cast<void*>(pointer));
    return kSuccess;
}

API int cuMemGetInfo_v2(std::size_t* free, std::size_t* total) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (free == nullptr || total == nullptr) return kInvalidValue;
    *free = driver().memory_budget - driver().memory_used;
    *total = driver().memory_budget;
    return kSuccess;
}

API int cuMemHostAlloc(void** pointer, std::size_t bytes, unsigned flags) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("a page-locked host allocation"); r != kSuccess) return r;
    if (pointer == nullptr || bytes == 0 || flags > 0xF) return kInvalidValue;
    void* base = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (base == nullptr) return kOutOfMemory;
    driver().pinned_memory[reinterpret_cast<std::uintptr_t>(base)] = bytes;
    *pointer = base;
    return kSuccess;
}

API int cuMemFreeHost(void* pointer) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("freeing page-locked host memory"); r != kSuccess) return r;
    Driver& d = driver();
    auto it = d.pinned_memory.find(reinterpret_cast<std::uintptr_t>(pointer));
    if (it == d.pinned_memory.end()) return kInvalidValue;
    if (int r = drain_all(); r != kSuccess) return r;
    d.pinned_memory.erase(it);
    std::free(pointer);
    return kSuccess;
}

API int cuMemcpyHtoD_v2(std::uint64_t destination, const void* source, std::size_t bytes) {
    Lock lock(driver().mutex);
    return copy_sync(reinterpret_cast<void*>(destination), source, bytes, false, true);
}

API int cuMemcpyDtoH_v2(void* destination, std::uint64_t source, std::size_t bytes) {
    Lock lock(driver().mutex);
    return copy_sync(destination, reinterpret_cast<const void*>(source), bytes, true, false);
}

API int cuMemcpyDtoD_v2(std::uint64_t destination, std::uint64_t source, std::size_t bytes) {
    Lock lock(driver().mutex);
    return copy_sync(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes, false, false);
}

API int cuMemcpyHtoDAsync_v2(std::uint64_t destination, const void* source, std::size_t bytes, void* stream) {
    Lock lock(driver().mutex);
    return copy_async(reinterpret_cast<void*>(destination), source, bytes, stream, false, true);
}

API int cuMemcpyDtoHAsync_v2(void* destination, std::uint64_t source, std::size_t bytes, void* stream) {
    Lock lock(driver().mutex);
    return copy_async(destination, reinterpret_cast<const void*>(source), bytes, stream, true, false);
}

API int cuMemcpyDtoDAsync_v2(std::uint64_t destination, std::uint64_t source, std::size_t bytes, void* stream) {
    Lock lock(driver().mutex);
    return copy_async(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes, stream, false, false);
}

API int cuMemsetD32Async(std::uint64_t destination, unsigned value, std::size_t count, void* stream_handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(stream_handle, &stream); r != kSuccess) return r;
    if (destination % 4 != 0 || !is_device(destination, count * 4)) return kInvalidValue;
    Operation op;
    op.kind = Operation::Kind::Memset;
    op.destination = reinterpret_cast<void*>(destination);
    op.bytes = count * 4;
    op.value = value;
    return submit(stream, std::move(op));
}

// ---- streams, events ----

API int cuStreamCreate(void** stream, unsigned flags) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (stream == nullptr || flags > 1) return kInvalidValue;
    auto s = std::make_unique<Stream>();
    s->flags = flags;
    *stream = s.get();
    driver().streams[s.get()] = std::move(s);
    return kSuccess;
}

API int cuStreamDestroy_v2(void* handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(handle, &stream); r != kSuccess) return r;
    if (stream == nullptr) return kInvalidHandle;
    if (stream->capture) return kIllegalState;
    drain(stream);   // queued work completes first
    for (auto& [key, event] : driver().events)
        if (event->stream == stream) event->stream = nullptr;
    driver().streams.erase(stream);
    return driver().sticky;
}

API int cuStreamSynchronize(void* handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(handle, &stream); r != kSuccess) return r;
    if (stream == nullptr) return drain_all(true);
    if (stream->capture) return invalidate(stream, "a synchronisation of the capturing stream");
    return drain(stream);
}

API int cuEventCreate(void** event, unsigned flags) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (event == nullptr || flags > 7) return kInvalidValue;
    auto e = std::make_unique<Event>();
    e->flags = flags;
    *event = e.get();
    driver().live_events.insert(e.get());
    driver().events[e.get()] = std::move(e);
    return kSuccess;
}

static int resolve_event(void* handle, Event** event) {
    auto* e = static_cast<Event*>(handle);
    if (!driver().live_events.contains(e)) return kInvalidHandle;
    *event = e;
    return kSuccess;
}

API int cuEventDestroy_v2(void* handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Event* event;
    if (int r = resolve_event(handle, &event); r != kSuccess) return r;
    driver().live_events.erase(event);   // queued records still point at it: the object stays
    return kSuccess;
}

API int cuEventRecord(void* handle, void* stream_handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Event* event;
    if (int r = resolve_event(handle, &event); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(stream_handle, &stream); r != kSuccess) return r;
    Operation op;
    op.kind = Operation::Kind::Record;
    op.event = event;
    return submit(stream, std::move(op));
}

API int cuEventSynchronize(void* handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Event* event;
    if (int r = resolve_event(handle, &event); r != kSuccess) return r;
    if (event->captured) return kCapturedEvent;
    if (int r = refuse_if_capturing("waiting for an event"); r != kSuccess) return r;
    if (event->pending && event->stream != nullptr) return drain(event->stream, event);
    return driver().sticky;
}

API int cuEventQuery(void* handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Event* event;
    if (int r = resolve_event(handle, &event); r != kSuccess) return r;
    if (event->captured) return kCapturedEvent;
    if (int r = refuse_if_capturing("querying an event"); r != kSuccess) return r;
    if (event->pending && event->stream != nullptr) {
        // A GPU is still busy when the host first asks; then the work is done.
        if (event->not_ready_answers > 0) { event->not_ready_answers--; return kNotReady; }
        return drain(event->stream, event);
    }
    return driver().sticky;
}

API int cuEventElapsedTime(float* milliseconds, void* start_handle, void* end_handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Event *start, *end;
    if (int r = resolve_event(start_handle, &start); r != kSuccess) return r;
    if (int r = resolve_event(end_handle, &end); r != kSuccess) return r;
    if (milliseconds == nullptr) return kInvalidValue;
    if ((start->flags & 2) != 0 || (end->flags & 2) != 0) return kInvalidHandle;   // CU_EVENT_DISABLE_TIMING
    if (start->captured || end->captured) return kCapturedEvent;
    if (!start->recorded || !end->recorded) return kInvalidHandle;
    if (start->pending || end->pending) return kNotReady;
    *milliseconds = static_cast<float>(end->milliseconds - start->milliseconds);
    return kSuccess;
}

// ---- modules, kernels ----

API int cuModuleLoadDataEx(void** module, const void* image, unsigned option_count, int* options, void** option_values) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("loading a module"); r != kSuccess) return r;
    if (module == nullptr || image == nullptr || (option_count > 0 && (options == nullptr || option_values == nullptr))) return kInvalidValue;
    char* error_log = nullptr;
    char* info_log = nullptr;
    std::size_t error_size = 0, info_size = 0;
    int error_size_slot = -1, info_size_slot = -1;
    bool verbose = false;
    for (unsigned i = 0; i < option_count; i++) {
        switch (options[i]) {
        case 3: info_log = static_cast<char*>(option_values[i]); break;                        // CU_JIT_INFO_LOG_BUFFER
        case 4: info_size = reinterpret_cast<std::uintptr_t>(option_values[i]); info_size_slot = int(i); break;
        case 5: error_log = static_cast<char*>(option_values[i]); break;                       // CU_JIT_ERROR_LOG_BUFFER
        case 6: error_size = reinterpret_cast<std::uintptr_t>(option_values[i]); error_size_slot = int(i); break;
        case 12: verbose = reinterpret_cast<std::uintptr_t>(option_values[i]) != 0; break;    // CU_JIT_LOG_VERBOSE
        default: break;
        }
    }
    std::string text(static_cast<const char*>(image));
    std::string error, info;
    std::vector<std::pair<std::string, std::vector<int>>> entries;
    int result = kSuccess;
    if (text.find(".version") == std::string::npos || text.find(".target") == std::string::npos) {
        error = "the stand-in driver loads PTX text only";
        result = kInvalidImage;
    } else if (std::size_t target = text.find(".target sm_"); target != std::string::npos &&
               std::atoi(text.c_str() + target + 11) > driver().cc_major * 10 + driver().cc_minor) {
        error = "ptxas fatal: the PTX targets sm_" + std::to_string(std::atoi(text.c_str() + target + 11)) +
                ", newer than this device's compute capability";
        result = kInvalidPtx;
    } else if (error = parse_ptx(text, entries); !error.empty()) {
        result = kInvalidPtx;
    }
    auto loaded = std::make_unique<Module>();
    for (const auto& [name, sizes] : entries) {
        if (result != kSuccess) break;
        int count = laperm_emu_kernel_arg_count(name.c_str());
        if (count < 0) {
            // Loads (a program may hold kernels it never launches); cuModuleGetFunction says why not.
            loaded->missing.push_back(name);
            continue;
        }
        auto function = std::make_unique<Function>();
        function->name = name;
        for (int i = 0; i < count; i++) function->arg_sizes.push_back(laperm_emu_kernel_arg_size(name.c_str(), i));
        if (function->arg_sizes != sizes) {
            error = "kernel " + name + ": the PTX parameters (" + std::to_string(sizes.size()) + ") and the emulator's C++ signature (" +
                    std::to_string(count) + ") differ in number or size";
            for (std::size_t i = 0; i < std::min<std::size_t>(sizes.size(), count); i++)
                if (sizes[i] != function->arg_sizes[i]) {
                    error += "; parameter " + std::to_string(i) + " is " + std::to_string(sizes[i]) + " bytes in the PTX, " +
                             std::to_string(function->arg_sizes[i]) + " in C++";
                    break;
                }
            result = kInvalidPtx;
            break;
        }
        function->static_shared = std::max(0, laperm_emu_kernel_static_shared(name.c_str()));
        driver().live_functions.insert(function.get());
        loaded->functions[name] = std::move(function);
    }
    if (result == kSuccess && loaded->functions.empty() && !loaded->missing.empty()) {
        // Not one kernel the emulator knows: not PTX of our sources (e.g. hand-written, or broken).
        error = "none of the PTX's kernels (" + loaded->missing.front() + ", ...) is in the emulator";
        result = kInvalidPtx;
    }
    if (verbose && result == kSuccess) info = "stand-in driver: " + std::to_string(entries.size()) + " kernel(s) mapped to the host emulator";
    std::size_t written = 0;
    write_log(error_log, error_size, error, &written);
    if (error_size_slot >= 0) option_values[error_size_slot] = reinterpret_cast<void*>(written);
    write_log(info_log, info_size, info, &written);
    if (info_size_slot >= 0) option_values[info_size_slot] = reinterpret_cast<void*>(written);
    if (result != kSuccess) {
        for (auto& [name, function] : loaded->functions) driver().live_functions.erase(function.get());
        return result;
    }
    *module = loaded.get();
    driver().modules[loaded.get()] = std::move(loaded);
    return kSuccess;
}

API int cuModuleUnload(void* handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (int r = refuse_if_capturing("unloading a module"); r != kSuccess) return r;
    auto it = driver().modules.find(static_cast<Module*>(handle));
    if (it == driver().modules.end()) return kInvalidHandle;
    if (int r = drain_all(); r != kSuccess) return r;
    for (auto& [name, function] : it->second->functions) driver().live_functions.erase(function.get());
    driver().modules.erase(it);
    return kSuccess;
}

API int cuModuleGetFunction(void** function, void* handle, const char* name) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    if (function == nullptr || name == nullptr) return kInvalidValue;
    auto it = driver().modules.find(static_cast<Module*>(handle));
    if (it == driver().modules.end()) return kInvalidHandle;
    auto f = it->second->functions.find(name);
    if (f == it->second->functions.end()) {
        const auto& missing = it->second->missing;
        if (std::find(missing.begin(), missing.end(), name) != missing.end()) {
            std::string message = "kernel " + std::string(name) + " is in the PTX but not in the emulator: it cannot run here";
            report(message.c_str());
        }
        return kNotFound;
    }
    *function = f->second.get();
    return kSuccess;
}

API int cuFuncSetAttribute(void* handle, int attribute, int value) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    auto* function = static_cast<Function*>(handle);
    if (!driver().live_functions.contains(function)) return kInvalidHandle;
    if (attribute != 8) return kInvalidValue;   // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES only
    if (value < 0 || function->static_shared + value > kOptInSharedLimit) return kInvalidValue;
    function->max_dynamic_shared = value;
    if (laperm_emu_set_max_dynamic_shared(function->name.c_str(), static_cast<unsigned>(value)) != 0) {
        report(laperm_emu_last_error());
        return kInvalidValue;
    }
    return kSuccess;
}

API int cuLaunchKernel(void* handle, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x, unsigned block_y,
                       unsigned block_z, unsigned shared_bytes, void* stream_handle, void** params, void** extra) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    auto* function = static_cast<const Function*>(handle);
    if (!driver().live_functions.contains(function)) return kInvalidHandle;
    Stream* stream;
    if (int r = resolve(stream_handle, &stream); r != kSuccess) return r;
    if (extra != nullptr) return kNotSupported;
    if (grid_x == 0 || grid_y == 0 || grid_z == 0 || block_x == 0 || block_y == 0 || block_z == 0) return kInvalidValue;
    if (grid_x > 2147483647u || grid_y > 65535 || grid_z > 65535) return kInvalidValue;
    if (block_x > 1024 || block_y > 1024 || block_z > 64 || std::uint64_t(block_x) * block_y * block_z > 1024) return kInvalidValue;
    int limit = function->max_dynamic_shared < 0 ? kDefaultSharedLimit - function->static_shared : function->max_dynamic_shared;
    if (shared_bytes > static_cast<unsigned>(std::max(limit, 0))) return kInvalidValue;
    if (!function->arg_sizes.empty() && params == nullptr) return kInvalidValue;
    Operation op;
    op.kind = Operation::Kind::Kernel;
    op.name = function->name;
    op.function = function;
    op.grid[0] = grid_x; op.grid[1] = grid_y; op.grid[2] = grid_z;
    op.block[0] = block_x; op.block[1] = block_y; op.block[2] = block_z;
    op.shared = shared_bytes;
    for (std::size_t i = 0; i < function->arg_sizes.size(); i++) {
        if (params[i] == nullptr) return kInvalidValue;
        const auto* value = static_cast<const unsigned char*>(params[i]);
        op.args.emplace_back(value, value + function->arg_sizes[i]);
    }
    return submit(stream, std::move(op));
}

// ---- graphs ----

API int cuStreamBeginCapture_v2(void* handle, int mode) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(handle, &stream); r != kSuccess) return r;
    if (stream == nullptr) return kCaptureUnsupported;   // the legacy stream cannot be captured
    if (mode < 0 || mode > 2) return kInvalidValue;
    if (stream->capture) return kIllegalState;
    stream->capture = std::make_unique<Capture>();
    stream->capture->thread = std::this_thread::get_id();
    stream->capture->mode = mode;
    return kSuccess;
}

API int cuStreamEndCapture(void* handle, void** graph) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(handle, &stream); r != kSuccess) return r;
    if (graph == nullptr) return kInvalidValue;
    if (stream == nullptr || !stream->capture) return kIllegalState;
    if (stream->capture->mode != 2 && stream->capture->thread != std::this_thread::get_id()) return kCaptureWrongThread;
    std::unique_ptr<Capture> capture = std::move(stream->capture);
    if (!capture->invalidated_by.empty()) {
        *graph = nullptr;
        return kCaptureInvalidated;
    }
    auto g = std::make_unique<Graph>();
    g->operations = std::move(capture->operations);
    *graph = g.get();
    driver().graphs[g.get()] = std::move(g);
    return kSuccess;
}

// Every recorded operation is one node (a real graph adds no others for what we capture: kernels,
// copies, memsets). With nodes, up to *count handles are written (the operations' addresses), the
// rest of the array set to null, and *count becomes how many were written.
API int cuGraphGetNodes(void* graph, void** nodes, std::size_t* count) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    auto it = driver().graphs.find(static_cast<Graph*>(graph));
    if (count == nullptr) return kInvalidValue;
    if (it == driver().graphs.end()) return kInvalidHandle;
    auto& operations = it->second->operations;
    if (nodes == nullptr) {
        *count = operations.size();
        return kSuccess;
    }
    const std::size_t capacity = *count;
    std::size_t written = 0;
    for (; written < capacity && written < operations.size(); ++written) nodes[written] = &operations[written];
    for (std::size_t i = written; i < capacity; ++i) nodes[i] = nullptr;
    *count = written;
    return kSuccess;
}

API int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long flags) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    (void)flags;
    auto it = driver().graphs.find(static_cast<Graph*>(graph));
    if (exec == nullptr) return kInvalidValue;
    if (it == driver().graphs.end()) return kInvalidHandle;
    auto e = std::make_unique<Graph>();
    e->operations = it->second->operations;
    *exec = e.get();
    driver().executables[e.get()] = std::move(e);
    return kSuccess;
}

API int cuGraphLaunch(void* exec, void* stream_handle) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    auto it = driver().executables.find(static_cast<Graph*>(exec));
    if (it == driver().executables.end()) return kInvalidHandle;
    Stream* stream;
    if (int r = resolve(stream_handle, &stream); r != kSuccess) return r;
    if (stream != nullptr && stream->capture) return kNotSupported;   // no child graphs here
    for (const Operation& op : it->second->operations)
        if (int r = submit(stream, op); r != kSuccess) return r;
    return kSuccess;
}

// CUgraphExecUpdateResultInfo (cuda.h): result, errorNode, errorFromNode.
struct GraphExecUpdateResultInfo { int result; void* error_node; void* error_from_node; };

API int cuGraphExecUpdate_v2(void* exec, void* graph, GraphExecUpdateResultInfo* info) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    auto e = driver().executables.find(static_cast<Graph*>(exec));
    auto g = driver().graphs.find(static_cast<Graph*>(graph));
    if (e == driver().executables.end() || g == driver().graphs.end()) return kInvalidHandle;
    if (info == nullptr) return kInvalidValue;
    info->error_node = nullptr;
    info->error_from_node = nullptr;
    const auto& from = e->second->operations;
    const auto& to = g->second->operations;
    int verdict = 0;   // CU_GRAPH_EXEC_UPDATE_SUCCESS
    if (from.size() != to.size()) verdict = 2;   // ERROR_TOPOLOGY_CHANGED
    for (std::size_t i = 0; verdict == 0 && i < from.size(); i++) {
        if (from[i].kind != to[i].kind) verdict = 3;                                      // ERROR_NODE_TYPE_CHANGED
        else if (from[i].kind == Operation::Kind::Kernel && from[i].function != to[i].function) verdict = 4;   // ERROR_FUNCTION_CHANGED
    }
    info->result = verdict;
    if (verdict != 0) return kGraphExecUpdateFailure;
    e->second->operations = to;
    return kSuccess;
}

API int cuGraphDestroy(void* graph) {
    Lock lock(driver().mutex);
    return driver().graphs.erase(static_cast<Graph*>(graph)) == 1 ? kSuccess : kInvalidHandle;
}

API int cuGraphExecDestroy(void* exec) {
    Lock lock(driver().mutex);
    return driver().executables.erase(static_cast<Graph*>(exec)) == 1 ? kSuccess : kInvalidHandle;
}

API int cuProfilerStart() {
    Lock lock(driver().mutex);
    return enter();
}

API int cuProfilerStop() {
    Lock lock(driver().mutex);
    return enter();
}

}  // extern "C"

// ---- for the stand-in cuBLAS (C++ linkage, declared in standin.h) ----

int laperm_standin_enqueue(void* stream_handle, const char* name, std::function<int()> work) {
    Lock lock(driver().mutex);
    if (int r = enter(); r != kSuccess) return r;
    Stream* stream;
    if (int r = resolve(stream_handle, &stream); r != kSuccess) return r;
    Operation op;
    op.kind = Operation::Kind::Host;
    op.name = name;
    op.host = std::move(work);
    return submit(stream, std::move(op));
}

int laperm_standin_check_device_range(std::uint64_t pointer, std::size_t bytes) {
    Lock lock(driver().mutex);
    return is_device(pointer, bytes) ? kSuccess : kInvalidValue;
}

int laperm_standin_check_context(void) {
    Lock lock(driver().mutex);
    return enter();
}

