// emu_runtime.cpp: executes a kernel launch on the CPU with CUDA semantics.
//
// Design (details in cuda/README.md, "The emulator"):
//  - Blocks run one after another on the calling OS thread (deterministic). Optionally
//    LAPERM_EMU_THREADS=N spreads blocks over N OS threads (results of float atomics may
//    then depend on timing, as on a GPU); not in the AddressSanitizer build, which also runs
//    one launch at a time (its static shared arrays are plain statics: laperm/device.cuh).
//  - The threads of a block are fibers with small pooled stacks. A fiber runs until it
//    reaches a barrier, a warp-synchronous operation or its end, then yields to the block
//    scheduler, which resumes runnable fibers round-robin in thread order. No preemption,
//    so the interleaving is a pure function of the kernel and its inputs.
//  - __syncthreads releases when every thread of the block has arrived. A warp operation
//    completes when every lane named by the mask has arrived at the same operation with the
//    same mask; results are computed for all of them at once (PTX shfl.sync semantics).
//  - When no fiber can run and not all have finished, the launch fails with a message
//    naming the kernel, the block and what the threads wait for.
#include "laperm_emu.h"
#include "emu_registry.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

// AddressSanitizer (an emulator built with LAPERM_EMU_SANITIZE=ON, see cuda/README.md): the
// fiber switches are announced to it, and the guard bytes around dynamic shared memory and
// after device buffers are poisoned, so a kernel that reads or writes there is reported at
// that access with its source line (the access still happens; the launch fails when it
// ends). Without it the guards see writes only, after the block or the launch; reads, and
// writes before a device buffer, are not seen at all.
#if defined(__SANITIZE_ADDRESS__)
#define LAPERM_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LAPERM_EMU_ASAN 1
#endif
#endif
#if defined(LAPERM_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__) && !defined(LAPERM_EMU_UCONTEXT)
#define LAPERM_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace lp_emu {

namespace {
// The view of the fiber running on this OS thread (null outside a block); see current_thread().
thread_local const ThreadView* tls_current_thread = nullptr;
}  // namespace

LP_EMU_API const ThreadView* current_thread() { return tls_current_thread; }

namespace {

namespace asan {
#if defined(LAPERM_EMU_ASAN)
inline void poison(const void* p, std::size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
inline void unpoison(const void* p, std::size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
inline void start_switch(void** fake_stack, const void* bottom, std::size_t size) {
    __sanitizer_start_switch_fiber(fake_stack, bottom, size);
}
inline void finish_switch(void* fake_stack, const void** bottom_old, std::size_t* size_old) {
    __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
}
#else
inline void poison(const void*, std::size_t) {}
inline void unpoison(const void*, std::size_t) {}
inline void start_switch(void**, const void*, std::size_t) {}
inline void finish_switch(void*, const void**, std::size_t*) {}
#endif

// Offset of the first byte of [p, p + n) that is not `value` (n when all are), and a fill.
// Under AddressSanitizer guard bytes are checked and rewritten without unpoisoning them (no
// window in which another OS thread's launch could read a guard unseen): byte loops the
// sanitizer does not instrument, through volatile so that the compiler cannot turn them into
// (intercepted, checked) memcmp/memset calls.
#if defined(LAPERM_EMU_ASAN)
__attribute__((no_sanitize_address, noinline)) std::size_t first_other_byte(const unsigned char* p, std::size_t n, unsigned char value) {
    const volatile unsigned char* v = p;
    for (std::size_t i = 0; i < n; ++i)
        if (v[i] != value) return i;
    return n;
}
__attribute__((no_sanitize_address, noinline)) void fill_bytes(unsigned char* p, std::size_t n, unsigned char value) {
    volatile unsigned char* v = p;
    for (std::size_t i = 0; i < n; ++i) v[i] = value;
}
#else
inline std::size_t first_other_byte(const unsigned char* p, std::size_t n, unsigned char value) {
    const std::uint64_t pattern = 0x0101010101010101ull * value;
    std::size_t i = 0;
    for (std::uint64_t word; i + 8 <= n; i += 8) {
        std::memcpy(&word, p + i, 8);
        if (word != pattern) break;
    }
    for (; i < n; ++i)
        if (p[i] != value) return i;
    return n;
}
inline void fill_bytes(unsigned char* p, std::size_t n, unsigned char value) { std::memset(p, value, n); }
#endif
}  // namespace asan

constexpr unsigned kDefaultSharedLimit = 48u * 1024u;  // static + dynamic per block without opt-in
constexpr unsigned kMaxSharedOptIn = 227u * 1024u;     // sm_90 per-block maximum with opt-in
constexpr unsigned kMaxThreadsPerBlock = 1024;
// The register file a block may use (sm_50 to sm_90): 64 Ki 32-bit registers, given out per
// warp in units of 256, i.e. a thread's count rounded up to a multiple of 8, times 32 lanes.
constexpr unsigned kRegistersPerBlock = 64u * 1024u;
constexpr std::uint64_t block_registers(std::uint64_t threads, unsigned registers_per_thread) {
    const std::uint64_t warps = (threads + 31) / 32;
    const std::uint64_t per_warp = (std::uint64_t{registers_per_thread} * 32 + 255) / 256 * 256;
    return warps * per_warp;
}
constexpr std::size_t kDefaultStackBytes = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Context switch. x86-64: a hand-written switch of the callee-saved registers (no signal
// mask syscall, unlike swapcontext). The floating-point control state (MXCSR, x87 control
// word) is not switched: kernels never change it, and fldcw costs more than the rest of the
// switch together. Elsewhere: ucontext.
// ---------------------------------------------------------------------------------------
#if defined(LAPERM_EMU_ASM_SWITCH)
extern "C" void lp_emu_switch_context(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl lp_emu_switch_context
    .hidden lp_emu_switch_context
    .type lp_emu_switch_context,@function
lp_emu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size lp_emu_switch_context, .-lp_emu_switch_context
)");

struct Context {
    void* sp = nullptr;
};
inline void switch_context(Context& save, Context& load) { lp_emu_switch_context(&save.sp, load.sp); }
void prepare_context(Context& ctx, void* stack_base, std::size_t stack_bytes, void (*entry)()) {
    auto top = (reinterpret_cast<std::uintptr_t>(stack_base) + stack_bytes) & ~std::uintptr_t{15};
    auto* sp = reinterpret_cast<std::uint64_t*>(top);
    *--sp = 0;                                        // fake return address of `entry` (it never returns)
    *--sp = reinterpret_cast<std::uint64_t>(entry);   // popped by `ret`; leaves rsp = 8 mod 16 at entry
    for (int i = 0; i < 6; ++i) *--sp = 0;            // rbp rbx r12 r13 r14 r15
    ctx.sp = sp;
}
#else
struct Context {
    ucontext_t uc;
};
inline void switch_context(Context& save, Context& load) { swapcontext(&save.uc, &load.uc); }
void prepare_context(Context& ctx, void* stack_base, std::size_t stack_bytes, void (*entry)()) {
    getcontext(&ctx.uc);
    ctx.uc.uc_stack.ss_sp = stack_base;
    ctx.uc.uc_stack.ss_size = stack_bytes;
    ctx.uc.uc_link = nullptr;
    makecontext(&ctx.uc, entry, 0);
}
#endif

// ---------------------------------------------------------------------------------------
// Kernel registry (filled by static initialisers of the generated kernel units).
// ---------------------------------------------------------------------------------------
struct KernelEntry {
    KernelInfo info;
    int static_shared = -1;                // bytes, from the PTX; -1 when unknown
    unsigned max_threads = 0;              // per block, from the PTX's .maxntid; 0 when none or unknown
    unsigned registers = 0;                // per thread, from ptxas's report; 0 when unknown
    std::atomic<unsigned> max_dynamic_shared{0};  // 0: not opted in (static + dynamic <= 48 KiB)
};

struct Registry {
    std::vector<std::unique_ptr<KernelEntry>> kernels;  // sorted by name once queried
    std::unordered_map<std::string_view, KernelEntry*> by_name;
    bool sorted = false;
    std::mutex sort_mutex;

    const std::vector<std::unique_ptr<KernelEntry>>& sorted_kernels() {
        std::lock_guard lock(sort_mutex);
        if (!sorted) {
            std::sort(kernels.begin(), kernels.end(),
                      [](const auto& a, const auto& b) { return std::strcmp(a->info.name, b->info.name) < 0; });
            sorted = true;
        }
        return kernels;
    }
};

Registry& registry() {
    static Registry r;
    return r;
}

KernelEntry* find_kernel(const char* name) {
    if (name == nullptr) return nullptr;
    static const bool ptx_limits_known = [] {
        for (const PtxKernelLimits* s = ptx_kernel_limits; s->kernel != nullptr; ++s) {
            auto it = registry().by_name.find(std::string_view(s->kernel));
            if (it == registry().by_name.end()) continue;
            it->second->static_shared = static_cast<int>(s->static_shared_bytes);
            it->second->max_threads = s->max_threads;
            it->second->registers = s->registers;
        }
        return true;
    }();
    (void)ptx_limits_known;
    auto& by_name = registry().by_name;
    auto it = by_name.find(std::string_view(name));
    return it == by_name.end() ? nullptr : it->second;
}

// ---------------------------------------------------------------------------------------
// Registered device buffers.
// ---------------------------------------------------------------------------------------
// A guarded buffer has `guard` bytes of kBufferGuardByte right after its end (allocated by the
// caller, outside the registered range): a kernel that writes past the end of a device buffer
// (an off-by-one row, a tail the grid should not cover) is reported after its launch instead of
// silently corrupting the host heap, where a GPU would corrupt a neighbour or fault.
constexpr unsigned char kBufferGuardByte = 0xA5;

struct BufferTable {
    std::mutex mutex;
    std::map<std::uintptr_t, std::size_t> buffers;  // base -> bytes
    std::map<std::uintptr_t, std::size_t> guards;   // base -> guard bytes after the end

    // Every guarded buffer whose guard changed gets its guard written anew; returns the first
    // (base, bytes, offset of its first changed byte from base), base 0 when all were intact.
    // The whole process is scanned: a kernel may write through pointers held in a device table.
    std::tuple<std::uintptr_t, std::size_t, std::size_t> repair_guards() {
        std::tuple<std::uintptr_t, std::size_t, std::size_t> first{0, 0, 0};
        std::lock_guard lock(mutex);
        for (const auto& [base, guard] : guards) {
            const std::size_t bytes = buffers.at(base);
            auto* g = reinterpret_cast<unsigned char*>(base + bytes);
            const std::size_t at = asan::first_other_byte(g, guard, kBufferGuardByte);
            if (at == guard) continue;
            if (std::get<0>(first) == 0) first = {base, bytes, bytes + at};
            asan::fill_bytes(g, guard, kBufferGuardByte);
        }
        return first;
    }

    bool contains(const void* p) {
        auto a = reinterpret_cast<std::uintptr_t>(p);
        std::lock_guard lock(mutex);
        auto it = buffers.upper_bound(a);
        if (it == buffers.begin()) return false;
        --it;
        return a <= it->first + it->second;  // one past the end is a valid (empty) position
    }
};

BufferTable& buffer_table() {
    static BufferTable t;
    return t;
}

// ---------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------
thread_local std::string tls_last_error;

template <class... A>
std::string format(const char* fmt, A... args) {
    int n = std::snprintf(nullptr, 0, fmt, args...);
    std::string s(static_cast<std::size_t>(n > 0 ? n : 0), '\0');
    std::snprintf(s.data(), s.size() + 1, fmt, args...);
    return s;
}

int fail_call(std::string message) {
    tls_last_error = std::move(message);
    return 1;
}

// AddressSanitizer's reports (a recoverable build, run with halt_on_error=0) become the
// failure of the launch that made them, so a test sees a failed launch naming the kernel and
// the source line of the access instead of a report on stderr beside a passing test. Each
// launch collects the reports of its own blocks (the OS thread that runs a block knows its
// launch, also with LAPERM_EMU_THREADS); one made outside any block (a host-side call) is
// charged to the next launch that ends.
struct SanitizerReports {
    std::mutex mutex;
    std::string first;
    unsigned count = 0;

    void add(const char* report) {
        std::lock_guard lock(mutex);
        if (count++ == 0) first = report;
    }

    // The first report since the last take (its error line, stack and what the address is;
    // the shadow-byte dump cut off) and how many came; empty when none.
    std::string take() {
        std::lock_guard lock(mutex);
        if (count == 0) return {};
        std::string report = std::move(first);
        if (auto cut = report.find("Shadow bytes around"); cut != std::string::npos) report.resize(cut);
        while (!report.empty() && (report.back() == '\n' || report.back() == ' ')) report.pop_back();
        if (count > 1) report += format("\n(%u AddressSanitizer reports in all; the first is above)", count);
        first.clear();
        count = 0;
        return report;
    }
};

SanitizerReports& reports_outside_launches() {
    static SanitizerReports r;
    return r;
}

const char* warp_op_name(WarpOp op) {
    switch (op) {
        case WarpOp::Sync: return "__syncwarp";
        case WarpOp::ShflIdx: return "__shfl_sync";
        case WarpOp::ShflUp: return "__shfl_up_sync";
        case WarpOp::ShflDown: return "__shfl_down_sync";
        case WarpOp::ShflXor: return "__shfl_xor_sync";
        case WarpOp::Ballot: return "__ballot_sync";
        case WarpOp::Any: return "__any_sync";
        case WarpOp::All: return "__all_sync";
    }
    return "warp operation";
}

const char* barrier_op_name(BarrierOp op) {
    switch (op) {
        case BarrierOp::Plain: return "__syncthreads";
        case BarrierOp::Count: return "__syncthreads_count";
        case BarrierOp::And: return "__syncthreads_and";
        case BarrierOp::Or: return "__syncthreads_or";
    }
    return "barrier";
}

// ---------------------------------------------------------------------------------------
// Fibers, blocks, workers.
// ---------------------------------------------------------------------------------------
enum class State : std::uint8_t { Ready, AtBarrier, AtWarp, Done, Aborted };

struct Thread {
    ThreadView view{};
    State state = State::Ready;
    Context context;
    // Pending warp operation (valid while state == AtWarp) and its result.
    WarpOp op = WarpOp::Sync;
    unsigned mask = 0;
    std::uint64_t value = 0;
    int b = 0;
    int c = 0;
    std::uint64_t result = 0;
    int barrier_result = 0;
    const char* barrier_file = nullptr;  // source place of the barrier this thread waits at
    int barrier_line = 0;
    int stack = -1;  // index into Worker::stacks while the fiber has started and not finished
    void* fake_stack = nullptr;  // AddressSanitizer's, kept while the fiber is switched out
    // lp_copy_async_4's copies, written to shared memory only at lp_copy_async_wait_all: the
    // latest a GPU may complete them, so a read that does not wait sees the old bytes.
    struct PendingCopy {
        void* dst;
        std::uint32_t bytes;
    };
    std::vector<PendingCopy> copies;
};

// The order in which the scheduler resumes runnable fibers and runs blocks
// (LAPERM_EMU_SCHEDULE). A GPU promises no order at all, so a kernel whose result depends on
// it has a race: the same tests run under `reverse` and `shuffle:SEED` expose races that the
// default thread order happens to hide (a thread reading what a lower-numbered thread wrote
// without a barrier in between, or the reverse). Each of those runs every thread to its first
// barrier or warp operation before any runs further, so a race between warps across a warp
// operation stays hidden (warp A's lanes finish a ballot and write what warp B has not yet
// initialised): Warps and WarpsReverse run one warp alone, through its warp operations, until
// every lane of it waits at __syncthreads or has exited, then the next (ascending or
// descending), as a GPU may when one warp is far ahead of another; WarpsShuffle picks that warp
// at random among the runnable ones (seeded), so any warp may run ahead of any other.
enum class Order : std::uint8_t { Forward, Reverse, Shuffle, Warps, WarpsReverse, WarpsShuffle };

// Whether each round is one warp's (Warps, WarpsReverse, WarpsShuffle).
bool one_warp_at_a_time(Order order) { return order == Order::Warps || order == Order::WarpsReverse || order == Order::WarpsShuffle; }
struct Schedule {
    Order order = Order::Forward;
    std::uint64_t seed = 0;
};

struct Launch {
    const KernelEntry* kernel;
    void** args;
    dim3 grid;
    dim3 block;
    unsigned threads_per_block;
    unsigned dynamic_shared_bytes;
    Schedule schedule;
    SanitizerReports* reports;
};

struct Block {
    const Launch* launch = nullptr;
    uint3 index{};
    unsigned threads = 0;
    unsigned at_barrier = 0;
    BarrierOp barrier_op = BarrierOp::Plain;
    int barrier_accumulator = 0;
    unsigned done = 0;
    std::string error;  // set by a fiber that hit a usage error; ends the launch
};

struct Stack {
    void* base = nullptr;  // lowest address; the stack grows down towards it
    std::size_t bytes = 0;
};

// Stacks come in chunks of kStacksPerChunk in one mapping with one guard page below, so a
// thread of 1024-thread blocks costs few memory mappings (the kernel limits their number per
// process, and every OS thread that launches keeps its own stacks). The lowest bytes of each
// stack hold a canary, written when a thread gets the stack and checked when it ends: an
// overflow becomes an error naming the kernel (the overflowing thread writes into the stack
// below, which is free or another thread's; the lowest stack of a chunk hits the guard page
// and crashes). Threads take the highest free stack first.
constexpr unsigned kStacksPerChunk = 32;
constexpr std::size_t kCanaryWords = 8;
constexpr std::uint64_t kCanary = 0x5a17c0dedeadbeefull;

void write_canary(const Stack& s) {
    auto* w = static_cast<std::uint64_t*>(s.base);
    for (std::size_t i = 0; i < kCanaryWords; ++i) w[i] = kCanary;
}
bool canary_intact(const Stack& s) {
    const auto* w = static_cast<const std::uint64_t*>(s.base);
    for (std::size_t i = 0; i < kCanaryWords; ++i)
        if (w[i] != kCanary) return false;
    return true;
}

// Dynamic shared memory has guard bytes on both sides of what the launch asked for, checked
// when a block ends: a kernel that writes past its dynamic shared memory (a host-side size
// smaller than the kernel's layout) gets an error naming the kernel, the block and the
// offset, where a GPU would corrupt or fault without saying why. Writes farther out than
// the guards are not seen.
constexpr std::size_t kSharedGuardFront = 256;   // keeps the kernel's base 256-byte aligned
constexpr std::size_t kSharedGuardBack = 4096;
constexpr unsigned char kSharedGuardByte = 0xA5;

std::size_t stack_bytes_setting() {
    const char* kb = std::getenv("LAPERM_EMU_STACK_KB");
    if (kb != nullptr) {
        long v = std::strtol(kb, nullptr, 10);
        if (v >= 16 && v <= 8192) return static_cast<std::size_t>(v) * 1024;
    }
    return kDefaultStackBytes;
}

// Everything one OS thread needs to run blocks: a fiber stack per thread of the block
// (mapped once, with a guard page below so an overflow faults instead of corrupting),
// the thread records and the block's dynamic shared memory.
struct Worker {
    std::vector<Stack> stacks;
    std::vector<int> free_stacks;  // a thread gets a stack when it first runs and returns it at its end
    std::vector<Thread> threads;
    std::vector<unsigned> order;  // the order of one scheduling round (Reverse, Shuffle)
    Context scheduler;
    const void* scheduler_stack_bottom = nullptr;  // the OS thread's stack, for AddressSanitizer's switches
    std::size_t scheduler_stack_size = 0;
    void* scheduler_fake_stack = nullptr;
    Thread* running = nullptr;
    Block* block = nullptr;
    unsigned slot = 0;     // the position in the current scheduling round (run_block's loop)
    unsigned slot_end = 0; // where the round ends (one warp's threads under one_warp_at_a_time)
    unsigned char* dynamic_shared = nullptr;       // what kernels see: the allocation past its front guard
    std::size_t dynamic_shared_capacity = 0;      // bytes usable from dynamic_shared, back guard excluded

    Worker() = default;
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    std::vector<std::pair<void*, std::size_t>> chunks;  // mappings holding the stacks

    ~Worker() {
        for (auto& c : chunks) {
            asan::unpoison(c.first, c.second);  // the runtime does not see munmap: stale shadow would meet a later mapping
            munmap(c.first, c.second);
        }
        release_dynamic_shared();
    }

    int take_stack() {
        if (free_stacks.empty()) add_stacks(static_cast<unsigned>(stacks.size()) + 1);
        int s = free_stacks.back();
        free_stacks.pop_back();
        return s;
    }

    void add_stacks(unsigned n) {
        if (stacks.size() >= n) return;
        const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t bytes = (stack_bytes_setting() + page - 1) / page * page;
        while (stacks.size() < n) {
            const std::size_t total = page + bytes * kStacksPerChunk;
            void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) throw std::bad_alloc();
            mprotect(m, page, PROT_NONE);
            chunks.emplace_back(m, total);
            for (unsigned i = 0; i < kStacksPerChunk; ++i) {
                Stack st{static_cast<unsigned char*>(m) + page + i * bytes, bytes};
                write_canary(st);
                free_stacks.push_back(static_cast<int>(stacks.size()));
                stacks.push_back(st);
            }
        }
    }

    void release_dynamic_shared() {
        if (dynamic_shared == nullptr) return;
        asan::unpoison(dynamic_shared - kSharedGuardFront, kSharedGuardFront + dynamic_shared_capacity + kSharedGuardBack);
        std::free(dynamic_shared - kSharedGuardFront);
    }

    void ensure_dynamic_shared(std::size_t bytes) {
        if (bytes <= dynamic_shared_capacity) return;
        release_dynamic_shared();
        dynamic_shared = nullptr;
        dynamic_shared_capacity = 0;
        std::size_t rounded = (bytes + 255) & ~std::size_t{255};
        auto* m = static_cast<unsigned char*>(std::aligned_alloc(256, kSharedGuardFront + rounded + kSharedGuardBack));
        if (m == nullptr) throw std::bad_alloc();
        dynamic_shared = m + kSharedGuardFront;
        dynamic_shared_capacity = rounded;
    }

    // Guards right below and right above the block's dynamic shared memory (the requested
    // bytes exactly), written before the block runs. Both lie inside the allocation.
    // Under AddressSanitizer they, and the unused rest of the allocation, are poisoned too;
    // what an earlier block left poisoned (one that failed is never checked) is cleared first.
    void prepare_dynamic_shared(std::size_t bytes) {
        ensure_dynamic_shared(bytes);
        asan::unpoison(dynamic_shared - kSharedGuardFront, kSharedGuardFront + dynamic_shared_capacity + kSharedGuardBack);
        // Poison: shared memory is not initialised on a GPU either; all-ones is NaN / -1.
        std::memset(dynamic_shared, 0xFF, bytes);
        std::memset(dynamic_shared - kSharedGuardFront, kSharedGuardByte, kSharedGuardFront);
        std::memset(dynamic_shared + bytes, kSharedGuardByte, kSharedGuardBack);
        asan::poison(dynamic_shared - kSharedGuardFront, kSharedGuardFront);
        asan::poison(dynamic_shared + bytes, dynamic_shared_capacity - bytes + kSharedGuardBack);
    }

    // The lowest byte of the guards that a block wrote, as an offset from the start of its
    // dynamic shared memory (negative: below it); 0 when both are intact.
    std::ptrdiff_t shared_guard_hit(std::size_t bytes) const {
        const unsigned char* front = dynamic_shared - kSharedGuardFront;
        const unsigned char* back = dynamic_shared + bytes;
        if (const std::size_t i = asan::first_other_byte(front, kSharedGuardFront, kSharedGuardByte); i < kSharedGuardFront)
            return static_cast<std::ptrdiff_t>(i) - static_cast<std::ptrdiff_t>(kSharedGuardFront);
        if (const std::size_t i = asan::first_other_byte(back, kSharedGuardBack, kSharedGuardByte); i < kSharedGuardBack)
            return static_cast<std::ptrdiff_t>(bytes + i);
        return 0;
    }
};

Worker& worker() {
    thread_local Worker w;
    return w;
}

// The reports of the launch whose block this OS thread runs; null between blocks.
thread_local SanitizerReports* tls_block_reports = nullptr;

// Sets tls_block_reports for a block's run, and clears it however the run ends.
struct BlockReportsScope {
    explicit BlockReportsScope(SanitizerReports* reports) { tls_block_reports = reports; }
    ~BlockReportsScope() { tls_block_reports = nullptr; }
    BlockReportsScope(const BlockReportsScope&) = delete;
    BlockReportsScope& operator=(const BlockReportsScope&) = delete;
};

#if defined(LAPERM_EMU_ASAN)
void collect_sanitizer_report(const char* report) {
    (tls_block_reports != nullptr ? *tls_block_reports : reports_outside_launches()).add(report);
}
[[maybe_unused]] const bool sanitizer_reports_collected = (__asan_set_error_report_callback(&collect_sanitizer_report), true);
#endif

std::string block_prefix(const Block& b) {
    return format("kernel '%s': block (%u,%u,%u): ", b.launch->kernel->info.name, b.index.x, b.index.y, b.index.z);
}

std::string thread_name(const ThreadView& v) {
    return format("thread (%u,%u,%u)", v.thread_idx.x, v.thread_idx.y, v.thread_idx.z);
}

// Hands control back to the scheduler; returns when the scheduler resumes this fiber. A
// finished or aborted fiber is never resumed, so AddressSanitizer keeps no fake stack for it.
void yield_to_scheduler(Worker& w, Thread& t) {
    const bool resumes = t.state != State::Done && t.state != State::Aborted;
    asan::start_switch(resumes ? &t.fake_stack : nullptr, w.scheduler_stack_bottom, w.scheduler_stack_size);
    switch_context(t.context, w.scheduler);
    asan::finish_switch(t.fake_stack, &w.scheduler_stack_bottom, &w.scheduler_stack_size);
}

// A usage error inside a kernel: record it and never run this fiber again.
[[noreturn]] void abort_thread(Worker& w, Thread& t, std::string message) {
    w.block->error = block_prefix(*w.block) + message;
    t.state = State::Aborted;
    yield_to_scheduler(w, t);
    std::abort();  // unreachable: an aborted fiber is never resumed
}

// Whether a round's positions are the threads' own indices (no w.order table).
bool in_index_order(Order order) { return order == Order::Forward || one_warp_at_a_time(order); }

// The thread the scheduler would resume next in this round, if it has not started yet; it
// then becomes the round's current position. Null when the round ends there or the next
// thread has started (it has a fiber of its own to resume).
Thread* take_next_fresh_thread(Worker& w) {
    const Block& b = *w.block;
    const unsigned next = w.slot + 1;
    if (next >= w.slot_end) return nullptr;
    Thread& t = w.threads[in_index_order(b.launch->schedule.order) ? next : w.order[next]];
    if (t.state != State::Ready || t.stack >= 0) return nullptr;
    w.slot = next;
    return &t;
}

[[noreturn]] void fiber_main() {
    Worker& w = worker();
    asan::finish_switch(nullptr, &w.scheduler_stack_bottom, &w.scheduler_stack_size);
    const ThreadView*& current_thread = tls_current_thread;
    const Launch& launch = *w.block->launch;
    for (;;) {
        Thread& t = *w.running;
        launch.kernel->info.invoke(launch.args);
        if (!t.copies.empty())
            abort_thread(w, t, format("%s exits with %zu asynchronous copies (lp_copy_async_4) not waited for: call "
                                      "lp_copy_async_wait_all() before their shared memory is read",
                                      thread_name(t.view).c_str(), t.copies.size()));
        t.state = State::Done;
        ++w.block->done;
        // The next thread of the round, if it has not started, runs on this fiber at once, as
        // the scheduler would run it next: the same order, but no switch to the scheduler and
        // back, no new context. A kernel without barriers runs a whole block on one fiber. An
        // overflowed stack goes back to the scheduler, which names the thread that finished.
        if (!canary_intact(w.stacks[static_cast<std::size_t>(t.stack)])) break;
        Thread* next = take_next_fresh_thread(w);
        if (next == nullptr) break;
        next->stack = t.stack;
        t.stack = -1;
        w.running = next;
        current_thread = &next->view;
    }
    yield_to_scheduler(w, *w.running);
    std::abort();  // unreachable: a finished fiber is never resumed
}

std::string describe_lane_state(const Thread& t) {
    switch (t.state) {
        case State::Done: return "it exited";
        case State::AtBarrier: return "it waits at __syncthreads()";
        case State::AtWarp:
            return format("it waits at %s with mask 0x%08x", warp_op_name(t.op), t.mask);
        default: return "it is still running";
    }
}

std::string diagnose_deadlock(Worker& w, const Block& b) {
    unsigned at_barrier = 0, done = 0;
    const Thread* first_done = nullptr;
    const Thread* first_warp = nullptr;
    for (unsigned i = 0; i < b.threads; ++i) {
        const Thread& t = w.threads[i];
        if (t.state == State::AtBarrier) ++at_barrier;
        if (t.state == State::Done) {
            ++done;
            if (first_done == nullptr) first_done = &t;
        }
        if (t.state == State::AtWarp && first_warp == nullptr) first_warp = &t;
    }
    if (first_warp != nullptr) {
        const unsigned base = first_warp->view.linear & ~31u;
        for (unsigned lane = 0; lane < 32; ++lane) {
            if (!(first_warp->mask & (1u << lane))) continue;
            const Thread& o = w.threads[base + lane];
            if (o.state == State::AtWarp && o.mask == first_warp->mask && o.op == first_warp->op) continue;
            return block_prefix(b) + format("%s(mask 0x%08x) by %s (warp %u) never completes: lane %u, named by the mask, never joins (%s)",
                                            warp_op_name(first_warp->op), first_warp->mask,
                                            thread_name(first_warp->view).c_str(), base / 32, lane,
                                            describe_lane_state(o).c_str());
        }
    }
    if (at_barrier > 0 && first_done != nullptr) {
        return block_prefix(b) + format("%s() not reached by all threads of the block: %u thread(s) wait at it while %u exited without reaching it (first exited: %s)",
                                        barrier_op_name(b.barrier_op), at_barrier, done,
                                        thread_name(first_done->view).c_str());
    }
    return block_prefix(b) + format("deadlock: no thread can make progress (%u at a barrier, %u exited of %u)", at_barrier, done, b.threads);
}

// splitmix64's finaliser: a well-mixed 64-bit value from any input.
std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Fisher-Yates with a splitmix64 stream: the same seed gives the same order on every machine.
void shuffle(std::vector<unsigned>& v, std::uint64_t& state) {
    for (std::size_t i = v.size(); i > 1; --i) {
        state = mix64(state);
        std::swap(v[i - 1], v[static_cast<std::size_t>(state % i)]);
    }
}

// LAPERM_EMU_SCHEDULE: forward (default) | reverse | shuffle[:SEED] (SEED a decimal
// integer, 0 when absent) | warps | warps-reverse | warps:SEED. Returns false and sets `error` for anything else.
bool schedule_setting(Schedule& schedule, std::string& error) {
    const char* s = std::getenv("LAPERM_EMU_SCHEDULE");
    schedule = Schedule{};
    if (s == nullptr || *s == '\0' || std::strcmp(s, "forward") == 0) return true;
    if (std::strcmp(s, "reverse") == 0) {
        schedule.order = Order::Reverse;
        return true;
    }
    if (std::strcmp(s, "warps") == 0 || std::strcmp(s, "warps-reverse") == 0) {
        schedule.order = s[5] == '\0' ? Order::Warps : Order::WarpsReverse;
        return true;
    }
    const bool warps_seeded = std::strncmp(s, "warps:", 6) == 0;
    if (warps_seeded || (std::strncmp(s, "shuffle", 7) == 0 && (s[7] == '\0' || s[7] == ':'))) {
        schedule.order = warps_seeded ? Order::WarpsShuffle : Order::Shuffle;
        if (!warps_seeded && s[7] == '\0') return true;
        const char* digits = s + (warps_seeded ? 6 : 8);
        char* end = nullptr;
        errno = 0;
        const unsigned long long seed = std::strtoull(digits, &end, 10);
        if (*digits >= '0' && *digits <= '9' && end != digits && *end == '\0' && errno == 0) {
            schedule.seed = seed;
            return true;
        }
    }
    error = format("LAPERM_EMU_SCHEDULE is '%s'; expected forward, reverse, shuffle, shuffle:SEED, warps, warps-reverse or warps:SEED (SEED a decimal integer)", s);
    return false;
}

// Runs one block to completion on this OS thread. Returns an empty string or the error.
// noipa: GCC otherwise clones it with `w` folded to worker()'s thread-local object and then
// recomputes that address (a __tls_get_addr call) at every use in the scheduling loop; the
// thread-local current-thread slot is looked up once for the same reason.
__attribute__((noipa)) std::string run_block(Worker& w, const Launch& launch, uint3 index) {
    const ThreadView*& current_thread = tls_current_thread;
    const unsigned n = launch.threads_per_block;
    if (w.threads.size() < n) w.threads.resize(n);
    BlockReportsScope reports_scope(launch.reports);
    if (launch.dynamic_shared_bytes > 0) w.prepare_dynamic_shared(launch.dynamic_shared_bytes);

    Block block;
    block.launch = &launch;
    block.index = index;
    block.threads = n;
    const dim3 bd = launch.block;
    for (unsigned i = 0; i < n; ++i) {
        Thread& t = w.threads[i];
        t.view.thread_idx = uint3{i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)};
        t.view.block_idx = index;
        t.view.block_dim = bd;
        t.view.grid_dim = launch.grid;
        t.view.linear = i;
        t.state = State::Ready;
        t.stack = -1;
        t.copies.clear();
    }
    // Stacks are handed out when a thread first runs and taken back when it ends, so a kernel
    // without barriers runs every thread on the same (cache-hot) stack. A block that ended in
    // an error left fibers holding stacks: take them all back.
    // Their frames stay poisoned under AddressSanitizer (those fibers never returned).
    if (w.free_stacks.size() != w.stacks.size()) {
        w.free_stacks.clear();
        for (int s = 0; s < static_cast<int>(w.stacks.size()); ++s) {
            w.free_stacks.push_back(s);
            asan::unpoison(w.stacks[static_cast<std::size_t>(s)].base, w.stacks[static_cast<std::size_t>(s)].bytes);
        }
    }

    w.block = &block;
    std::string error;
    const Schedule& schedule = launch.schedule;
    if (!in_index_order(schedule.order)) {
        w.order.resize(n);
        for (unsigned i = 0; i < n; ++i) w.order[i] = schedule.order == Order::Reverse ? n - 1 - i : i;
    }
    std::uint64_t shuffle_state = mix64(schedule.seed ^ mix64((std::uint64_t{index.z} << 42) ^ (std::uint64_t{index.y} << 21) ^ index.x));
    unsigned running_warp = n;   // WarpsShuffle: the warp running alone (n: none yet)
    for (;;) {
        bool ran = false;
        if (schedule.order == Order::Shuffle) shuffle(w.order, shuffle_state);
        unsigned first = 0;
        w.slot_end = n;
        if (one_warp_at_a_time(schedule.order)) {
            // The round is one warp's: the first (last; a random) warp with a runnable thread. None
            // runnable: the whole block, in which the round finds none (a deadlock, diagnosed below).
            unsigned runnable = 0, pick = 0;
            // A warp picked at random runs alone until none of its lanes is runnable (each round
            // is one slice of it), like the ordered ones: only then is the next warp drawn.
            bool continuing = false;
            if (schedule.order == Order::WarpsShuffle && running_warp < n)
                for (unsigned i = running_warp; i < std::min(n, running_warp + 32) && !continuing; ++i)
                    continuing = w.threads[i].state == State::Ready;
            if (continuing) {
                first = running_warp;
                w.slot_end = std::min(n, first + 32);
            } else if (schedule.order == Order::WarpsShuffle) {
                for (unsigned wb = 0; wb < n; wb += 32)
                    for (unsigned i = wb; i < std::min(n, wb + 32); ++i)
                        if (w.threads[i].state == State::Ready) { ++runnable; break; }
                if (runnable > 0) {
                    shuffle_state = mix64(shuffle_state);
                    pick = static_cast<unsigned>(shuffle_state % runnable);
                }
            }
            for (unsigned k = 0; k < n && !continuing; ++k) {
                const unsigned i = schedule.order == Order::WarpsReverse ? n - 1 - k : k;
                if (w.threads[i].state != State::Ready) continue;
                if (schedule.order == Order::WarpsShuffle && pick > 0) {
                    // Skip whole warps until the picked one.
                    --pick;
                    k = i / 32 * 32 + 31;
                    continue;
                }
                first = i / 32 * 32;
                w.slot_end = std::min(n, first + 32);
                running_warp = first;
                break;
            }
        }
        // w.slot: a finishing fiber may run the round's next threads itself (fiber_main).
        for (w.slot = first; w.slot < w.slot_end; ++w.slot) {
            const unsigned i = in_index_order(schedule.order) ? w.slot : w.order[w.slot];
            Thread& t = w.threads[i];
            if (t.state != State::Ready) continue;
            ran = true;
            if (t.stack < 0) {
                t.stack = w.take_stack();
                const Stack& st = w.stacks[static_cast<std::size_t>(t.stack)];
                write_canary(st);  // a neighbour's overflow may have hit it while it was free
                prepare_context(t.context, st.base, st.bytes, &fiber_main);
            }
            w.running = &t;
            current_thread = &t.view;
            const Stack& running_stack = w.stacks[static_cast<std::size_t>(t.stack)];
            asan::start_switch(&w.scheduler_fake_stack, running_stack.base, running_stack.bytes);
            switch_context(w.scheduler, t.context);
            asan::finish_switch(w.scheduler_fake_stack, nullptr, nullptr);
            Thread& last = *w.running;   // t, or a later thread of the round that ran on t's fiber
            if (last.state == State::Done) {
                const Stack& st = w.stacks[static_cast<std::size_t>(last.stack)];
                if (!canary_intact(st)) {
                    error = block_prefix(block) + format("%s overflowed its %zu-byte emulator stack (large local arrays? "
                                                         "raise LAPERM_EMU_STACK_KB)", thread_name(last.view).c_str(), st.bytes);
                    write_canary(st);
                    break;
                }
                w.free_stacks.push_back(last.stack);
                last.stack = -1;
            }
            if (!block.error.empty()) break;
        }
        if (!error.empty()) break;
        if (!block.error.empty()) {
            error = std::move(block.error);
            break;
        }
        if (block.done == n) break;
        if (!ran) {
            error = diagnose_deadlock(w, block);
            break;
        }
    }
    current_thread = nullptr;
    w.running = nullptr;
    w.block = nullptr;
    if (error.empty() && launch.dynamic_shared_bytes > 0) {
        if (const std::ptrdiff_t hit = w.shared_guard_hit(launch.dynamic_shared_bytes); hit != 0)
            error = block_prefix(block) + format("wrote %s its %u bytes of dynamic shared memory (at byte offset %td): %s",
                                                 hit < 0 ? "before" : "past", launch.dynamic_shared_bytes, hit,
                                                 hit < 0 ? "a negative index in the kernel"
                                                         : "the launch's shared-memory size is smaller than what the kernel uses");
    }
    return error;
}

unsigned worker_threads_setting(std::uint64_t blocks) {
#if defined(LAPERM_EMU_ASAN)
    // Static shared arrays are plain statics in this build (laperm/device.cuh): one block at a time.
    (void)blocks;
    return 1;
#else
    const char* s = std::getenv("LAPERM_EMU_THREADS");
    long v = s != nullptr ? std::strtol(s, nullptr, 10) : 1;
    if (v < 1) v = 1;
    if (v > 256) v = 256;
    return static_cast<unsigned>(std::min<std::uint64_t>(static_cast<std::uint64_t>(v), blocks));
#endif
}

uint3 block_index(const dim3& grid, std::uint64_t linear) {
    return uint3{static_cast<unsigned>(linear % grid.x),
                 static_cast<unsigned>((linear / grid.x) % grid.y),
                 static_cast<unsigned>(linear / (std::uint64_t{grid.x} * grid.y))};
}

// Runs all blocks; the error of the lowest-numbered failing block wins, so the message
// does not depend on timing even when several OS threads run blocks.
std::string run_grid(const Launch& launch) {
    const std::uint64_t blocks = std::uint64_t{launch.grid.x} * launch.grid.y * launch.grid.z;
    const unsigned workers = worker_threads_setting(blocks);
    // Block order follows the schedule too (a block that reads another block's output in the
    // same launch races on a GPU). Reverse runs the last block first; Shuffle visits blocks in
    // an affine order b -> (a*b + c) mod blocks with a coprime to blocks: a permutation that
    // needs no table however large the grid.
    std::uint64_t stride = 1, offset = 0;
    const bool shuffled_blocks = launch.schedule.order == Order::Shuffle || launch.schedule.order == Order::WarpsShuffle;
    if (shuffled_blocks && blocks > 1) {
        std::uint64_t state = mix64(launch.schedule.seed ^ 0x5bd1e995ull);
        offset = state % blocks;
        do {
            state = mix64(state);
            stride = 1 + state % (blocks - 1);
        } while (std::gcd(stride, blocks) != 1);
    }
    auto nth_block = [&](std::uint64_t b) {
        if (launch.schedule.order == Order::Reverse) return blocks - 1 - b;
        if (shuffled_blocks) return static_cast<std::uint64_t>((static_cast<unsigned __int128>(stride) * b + offset) % blocks);
        return b;
    };
    if (workers <= 1) {
        Worker& w = worker();
        for (std::uint64_t b = 0; b < blocks; ++b) {
            std::string e = run_block(w, launch, block_index(launch.grid, nth_block(b)));
            if (!e.empty()) return e;
        }
        return {};
    }
    std::atomic<std::uint64_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex error_mutex;
    std::uint64_t error_block = blocks;
    std::string error;
    auto body = [&] {
        try {
            Worker& w = worker();
            for (;;) {
                if (stop.load(std::memory_order_relaxed)) return;
                const std::uint64_t n = next.fetch_add(1, std::memory_order_relaxed);
                if (n >= blocks) return;
                const std::uint64_t b = nth_block(n);
                std::string e = run_block(w, launch, block_index(launch.grid, b));
                if (!e.empty()) {
                    std::lock_guard lock(error_mutex);
                    if (b < error_block) {
                        error_block = b;
                        error = std::move(e);
                    }
                    stop.store(true, std::memory_order_relaxed);
                    return;
                }
            }
        } catch (const std::exception& ex) {
            std::lock_guard lock(error_mutex);
            error_block = 0;
            error = format("kernel '%s': %s", launch.kernel->info.name, ex.what());
            stop.store(true);
        }
    };
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < workers; ++i) pool.emplace_back(body);
    body();
    for (auto& t : pool) t.join();
    return error;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Device-side runtime entry points (called from laperm/device.cuh in emulator builds).
// ---------------------------------------------------------------------------------------
LP_EMU_API bool register_kernel(const KernelInfo& info) {
    Registry& r = registry();
    if (r.by_name.count(std::string_view(info.name)) != 0) {
        std::fprintf(stderr, "laperm_emu: kernel '%s' is defined twice\n", info.name);
        std::abort();
    }
    auto entry = std::make_unique<KernelEntry>();
    entry->info = info;
    r.by_name.emplace(std::string_view(info.name), entry.get());
    r.kernels.push_back(std::move(entry));
    return true;
}

namespace {
const char* base_name(const char* path) {
    const char* slash = std::strrchr(path, '/');
    return slash != nullptr ? slash + 1 : path;
}
}  // namespace

LP_EMU_API int barrier(BarrierOp op, int predicate, const char* file, int line) {
    Worker& w = worker();
    Thread& t = *w.running;
    Block& b = *w.block;
    // A warp reaches a barrier together: every lane of t's warp already waiting must wait at
    // the same source place (bar.sync is .aligned on the GPU; divergence there hangs it).
    const unsigned base = t.view.linear & ~31u;
    const unsigned end = std::min(base + 32u, b.threads);
    for (unsigned i = base; i < end; ++i) {
        const Thread& o = w.threads[i];
        if (o.state != State::AtBarrier) continue;
        // The same place has the same file pointer almost always: strcmp only when they differ.
        if (o.barrier_line != line || (o.barrier_file != file && std::strcmp(o.barrier_file, file) != 0)) {
            abort_thread(w, t, format("%s (lane %u of warp %u) reaches %s() at %s:%d while lane %u of the same warp waits at "
                                      "%s:%d: the lanes of a warp must reach a barrier at the same place (on the GPU it is an "
                                      "aligned bar.sync, and a lane-divergent one hangs)",
                                      thread_name(t.view).c_str(), t.view.linear & 31u, base / 32, barrier_op_name(op),
                                      base_name(file), line, i & 31u, base_name(o.barrier_file), o.barrier_line));
        }
        break;
    }
    t.barrier_file = file;
    t.barrier_line = line;
    if (b.at_barrier == 0) {
        b.barrier_op = op;
        b.barrier_accumulator = op == BarrierOp::And ? 1 : 0;
    } else if (op != b.barrier_op) {
        abort_thread(w, t, format("%s calls %s() while other threads of the block wait at %s()",
                                  thread_name(t.view).c_str(), barrier_op_name(op), barrier_op_name(b.barrier_op)));
    }
    const int p = predicate != 0 ? 1 : 0;
    switch (op) {
        case BarrierOp::Plain: break;
        case BarrierOp::Count: b.barrier_accumulator += p; break;
        case BarrierOp::And: b.barrier_accumulator &= p; break;
        case BarrierOp::Or: b.barrier_accumulator |= p; break;
    }
    t.state = State::AtBarrier;
    if (++b.at_barrier == b.threads) {
        // Last to arrive: release everyone (including itself) and go on without yielding.
        for (unsigned i = 0; i < b.threads; ++i) {
            Thread& o = w.threads[i];
            if (o.state == State::AtBarrier) {
                o.state = State::Ready;
                o.barrier_result = b.barrier_accumulator;
            }
        }
        b.at_barrier = 0;
        return t.barrier_result;
    }
    yield_to_scheduler(w, t);
    return t.barrier_result;
}

namespace {
// PTX shfl.sync: c = ((32 - width) << 8) | clamp; an out-of-segment source reads the lane's own
// value; a source lane outside the mask reads garbage on a GPU, so here it reads all-ones
// (NaN / -1), which makes such a bug visible in results.
std::uint64_t shuffle_result(const Thread* lanes, unsigned mask, unsigned lane) {
    const Thread& t = lanes[lane];
    const int l = static_cast<int>(lane);
    const int segmask = (t.c >> 8) & 31;
    const int clamp = t.c & 31;
    const int min_lane = l & segmask;
    const int max_lane = min_lane | (clamp & ~segmask);
    int j = l;
    bool in_range = true;
    switch (t.op) {
        case WarpOp::ShflIdx: j = min_lane | (t.b & 31 & ~segmask); in_range = j <= max_lane; break;
        case WarpOp::ShflUp: j = l - t.b; in_range = j >= max_lane; break;
        case WarpOp::ShflDown: j = l + t.b; in_range = j <= max_lane; break;
        case WarpOp::ShflXor: j = l ^ t.b; in_range = j <= max_lane; break;
        default: break;
    }
    if (!in_range) j = l;
    if (j < 0 || j > 31 || !(mask & (1u << j))) return ~std::uint64_t{0};
    return lanes[j].value;
}
}  // namespace

LP_EMU_API std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int b, int c) {
    Worker& w = worker();
    Thread& t = *w.running;
    Block& blk = *w.block;
    const unsigned lane = t.view.linear & 31u;
    const unsigned base = t.view.linear & ~31u;
    const unsigned lanes_in_warp = std::min(32u, blk.threads - base);
    const unsigned existing = lanes_in_warp == 32 ? ~0u : ((1u << lanes_in_warp) - 1u);
    if (!(mask & (1u << lane))) {
        abort_thread(w, t, format("%s (lane %u of warp %u) calls %s with mask 0x%08x, which does not include its own lane",
                                  thread_name(t.view).c_str(), lane, base / 32, warp_op_name(op), mask));
    }
    if (mask & ~existing) {
        abort_thread(w, t, format("%s calls %s with mask 0x%08x, but warp %u has only %u lane(s) in this block",
                                  thread_name(t.view).c_str(), warp_op_name(op), mask, base / 32, lanes_in_warp));
    }
    t.op = op;
    t.mask = mask;
    t.value = value;
    t.b = b;
    t.c = c;
    t.state = State::AtWarp;

    Thread* lanes = &w.threads[base];
    for (unsigned l = 0; l < 32; ++l) {
        if (!(mask & (1u << l))) continue;
        const Thread& o = lanes[l];
        if (o.state != State::AtWarp || o.mask != mask || o.op != op) {
            yield_to_scheduler(w, t);  // a later lane completes the operation for us
            return t.result;
        }
    }
    // Every lane of the mask is here: compute all results, release the others, go on.
    unsigned ballot = 0;
    for (unsigned l = 0; l < 32; ++l)
        if ((mask & (1u << l)) && lanes[l].value != 0) ballot |= 1u << l;
    for (unsigned l = 0; l < 32; ++l) {
        if (!(mask & (1u << l))) continue;
        Thread& o = lanes[l];
        switch (op) {
            case WarpOp::Sync: o.result = 0; break;
            case WarpOp::Ballot: o.result = ballot; break;
            case WarpOp::Any: o.result = ballot != 0; break;
            case WarpOp::All: o.result = ballot == mask; break;
            default: o.result = shuffle_result(lanes, mask, l); break;
        }
    }
    for (unsigned l = 0; l < 32; ++l)
        if (mask & (1u << l)) lanes[l].state = State::Ready;
    return t.result;
}

LP_EMU_API void copy_async(void* dst, const void* src, int bytes) {
    Worker& w = worker();
    if (bytes != 4) abort_thread(w, *w.running, format("asynchronous copy of %d bytes; only 4 are supported", bytes));
    std::uint32_t value;
    std::memcpy(&value, src, sizeof value);  // the source is read at the call: it must be valid now
    w.running->copies.push_back(Thread::PendingCopy{dst, value});
}

LP_EMU_API void copy_async_wait_all() {
    Thread& t = *worker().running;
    for (const Thread::PendingCopy& c : t.copies) std::memcpy(c.dst, &c.bytes, sizeof c.bytes);
    t.copies.clear();
}

// A launch without dynamic shared memory leaves the pointer of an earlier launch (or none) in
// place: a kernel that uses it would read another block's leftovers or a null pointer, and on
// a GPU scribble over whatever follows its static shared memory. Stop it here instead.
LP_EMU_API unsigned char* dynamic_shared() {
    Worker& w = worker();
    if (w.block->launch->dynamic_shared_bytes == 0)
        abort_thread(w, *w.running, thread_name(w.running->view) +
                                        " uses dynamic shared memory, but the launch gave it 0 bytes (the host-side size is missing)");
    return w.dynamic_shared;
}

}  // namespace lp_emu

// ---------------------------------------------------------------------------------------
// C ABI
// ---------------------------------------------------------------------------------------
using namespace lp_emu;

extern "C" {

LAPERM_EMU_EXPORT const char* laperm_emu_last_error(void) { return tls_last_error.c_str(); }

LAPERM_EMU_EXPORT int laperm_emu_kernel_count(void) { return static_cast<int>(registry().kernels.size()); }

LAPERM_EMU_EXPORT const char* laperm_emu_kernel_name(int index) {
    const auto& k = registry().sorted_kernels();
    if (index < 0 || static_cast<std::size_t>(index) >= k.size()) {
        fail_call(format("kernel index %d is out of range: the emulator has %zu kernels", index, k.size()));
        return nullptr;
    }
    return k[static_cast<std::size_t>(index)]->info.name;
}

LAPERM_EMU_EXPORT int laperm_emu_kernel_arg_count(const char* kernel) {
    const KernelEntry* k = find_kernel(kernel);
    if (k == nullptr) {
        fail_call(format("no kernel named '%s' in the emulator", kernel ? kernel : "(null)"));
        return -1;
    }
    return static_cast<int>(k->info.arg_count);
}

LAPERM_EMU_EXPORT int laperm_emu_kernel_arg_size(const char* kernel, int index) {
    const KernelEntry* k = find_kernel(kernel);
    if (k == nullptr) {
        fail_call(format("no kernel named '%s' in the emulator", kernel ? kernel : "(null)"));
        return -1;
    }
    if (index < 0 || static_cast<unsigned>(index) >= k->info.arg_count) {
        fail_call(format("kernel '%s' has %u parameters, not a parameter %d", k->info.name, k->info.arg_count, index));
        return -1;
    }
    return k->info.arg_sizes[index];
}

LAPERM_EMU_EXPORT int laperm_emu_set_max_dynamic_shared(const char* kernel, unsigned bytes) {
    KernelEntry* k = find_kernel(kernel);
    if (k == nullptr) return fail_call(format("no kernel named '%s' in the emulator", kernel ? kernel : "(null)"));
    const unsigned static_bytes = k->static_shared > 0 ? static_cast<unsigned>(k->static_shared) : 0u;
    if (std::uint64_t{bytes} + static_bytes > kMaxSharedOptIn)
        return fail_call(format("kernel '%s': %u bytes of dynamic shared memory requested on top of %u static, "
                                "at most %u are possible per block",
                                k->info.name, bytes, static_bytes, kMaxSharedOptIn));
    k->max_dynamic_shared.store(bytes);
    return 0;
}

LAPERM_EMU_EXPORT int laperm_emu_kernel_registers(const char* kernel) {
    const KernelEntry* k = find_kernel(kernel);
    if (k == nullptr) {
        fail_call(format("no kernel named '%s' in the emulator", kernel ? kernel : "(null)"));
        return -1;
    }
    return static_cast<int>(k->registers);
}

LAPERM_EMU_EXPORT int laperm_emu_kernel_static_shared(const char* kernel) {
    const KernelEntry* k = find_kernel(kernel);
    if (k == nullptr) {
        fail_call(format("no kernel named '%s' in the emulator", kernel ? kernel : "(null)"));
        return -1;
    }
    return k->static_shared;
}

LAPERM_EMU_EXPORT int laperm_emu_launch(const char* kernel, unsigned gridX, unsigned gridY, unsigned gridZ,
                                        unsigned blockX, unsigned blockY, unsigned blockZ,
                                        unsigned dynamicSharedBytes, void** args) {
    // A kernel has no way to launch (no dynamic parallelism here): a call from inside one would
    // replace its OS thread's block state while it runs (and wait forever for the launch lock
    // of the AddressSanitizer build).
    if (tls_current_thread != nullptr)
        return fail_call(format("laperm_emu_launch('%s') was called from inside a kernel", kernel ? kernel : "(null)"));
    try {
        const KernelEntry* k = find_kernel(kernel);
        if (k == nullptr) return fail_call(format("no kernel named '%s' in the emulator", kernel ? kernel : "(null)"));
        const char* name = k->info.name;
        if (gridX == 0 || gridY == 0 || gridZ == 0 || blockX == 0 || blockY == 0 || blockZ == 0)
            return fail_call(format("kernel '%s': grid (%u,%u,%u) and block (%u,%u,%u) must be at least 1 in every dimension",
                                    name, gridX, gridY, gridZ, blockX, blockY, blockZ));
        const std::uint64_t threads = std::uint64_t{blockX} * blockY * blockZ;
        if (threads > kMaxThreadsPerBlock || blockZ > 64)
            return fail_call(format("kernel '%s': block (%u,%u,%u) has %llu threads; at most 1024 per block and 64 in z",
                                    name, blockX, blockY, blockZ, static_cast<unsigned long long>(threads)));
        if (k->max_threads != 0 && threads > k->max_threads)
            return fail_call(format("kernel '%s': block (%u,%u,%u) has %llu threads; its __launch_bounds__ allow at most %u "
                                    "(a GPU refuses the launch)",
                                    name, blockX, blockY, blockZ, static_cast<unsigned long long>(threads), k->max_threads));
        if (k->registers != 0 && block_registers(threads, k->registers) > kRegistersPerBlock)
            return fail_call(format("kernel '%s': block (%u,%u,%u) has %llu threads of %u registers (ptxas, sm_90), "
                                    "%llu registers as a GPU allocates them; a block gets at most %u (a GPU refuses the "
                                    "launch: too many resources requested)",
                                    name, blockX, blockY, blockZ, static_cast<unsigned long long>(threads), k->registers,
                                    static_cast<unsigned long long>(block_registers(threads, k->registers)),
                                    kRegistersPerBlock));
        if (gridX > 0x7fffffffu || gridY > 65535u || gridZ > 65535u)
            return fail_call(format("kernel '%s': grid (%u,%u,%u) exceeds the CUDA limits (2^31-1, 65535, 65535)",
                                    name, gridX, gridY, gridZ));
        const unsigned static_bytes = k->static_shared > 0 ? static_cast<unsigned>(k->static_shared) : 0u;
        const unsigned opted_in = k->max_dynamic_shared.load();
        if (opted_in == 0 && std::uint64_t{static_bytes} + dynamicSharedBytes > kDefaultSharedLimit)
            return fail_call(format("kernel '%s': %u bytes of static and %u bytes of dynamic shared memory exceed the %u bytes "
                                    "a block gets without opt-in (raise the dynamic limit with laperm_emu_set_max_dynamic_shared, "
                                    "as cuFuncSetAttribute does)",
                                    name, static_bytes, dynamicSharedBytes, kDefaultSharedLimit));
        if (opted_in != 0 && dynamicSharedBytes > opted_in)
            return fail_call(format("kernel '%s': %u bytes of dynamic shared memory exceed the kernel's opted-in limit of %u bytes",
                                    name, dynamicSharedBytes, opted_in));
        if (k->info.arg_count > 0 && args == nullptr)
            return fail_call(format("kernel '%s': takes %u arguments but args is null", name, k->info.arg_count));
        for (unsigned i = 0; i < k->info.arg_count; ++i) {
            if (args[i] == nullptr)
                return fail_call(format("kernel '%s': args[%u] is null (it must point to the argument value)", name, i));
            if (!(k->info.pointer_args & (std::uint64_t{1} << i))) continue;
            const void* p = *static_cast<void* const*>(args[i]);
            if (p != nullptr && !buffer_table().contains(p))
                return fail_call(format("kernel '%s': pointer argument %u (%p) does not point into any registered device buffer",
                                        name, i, p));
        }
        Schedule schedule;
        if (std::string e; !schedule_setting(schedule, e)) return fail_call(format("kernel '%s': %s", name, e.c_str()));
        SanitizerReports reports;
        Launch launch{k, args, dim3{gridX, gridY, gridZ}, dim3{blockX, blockY, blockZ},
                      static_cast<unsigned>(threads), dynamicSharedBytes, schedule, &reports};
#if defined(LAPERM_EMU_ASAN)
        // Static shared arrays are plain statics in this build (laperm/device.cuh): one launch at a time.
        static std::mutex one_launch_at_a_time;
        std::lock_guard serial(one_launch_at_a_time);
#endif
        std::string error = run_grid(launch);
        // Also after a failed launch: a guard it broke must not be blamed on the next one.
        const auto [base, bytes, at] = buffer_table().repair_guards();
        if (error.empty() && base != 0)
            error = format("kernel '%s' (grid (%u,%u,%u), block (%u,%u,%u)): a write past the end of the %zu-byte device buffer "
                           "at %p (byte %zu, %zu past its end; found after this launch, so it or a host-side "
                           "library call since the previous launch wrote it)",
                           name, gridX, gridY, gridZ, blockX, blockY, blockZ, bytes, reinterpret_cast<void*>(base), at, at - bytes);
        std::string report = reports.take();
        const char* what = "an access outside its memory";
        if (report.empty() && !(report = reports_outside_launches().take()).empty())
            what = "an access outside device memory by no kernel (a host-side call since an earlier launch, on any thread), charged to this launch";
        if (!report.empty())
            error = (error.empty() ? format("kernel '%s' (grid (%u,%u,%u), block (%u,%u,%u)): %s",
                                            name, gridX, gridY, gridZ, blockX, blockY, blockZ, what)
                                   : error) +
                    "; AddressSanitizer:\n" + report;
        if (!error.empty()) return fail_call(std::move(error));
        return 0;
    } catch (const std::exception& e) {
        return fail_call(format("kernel '%s': %s", kernel ? kernel : "(null)", e.what()));
    }
}

LAPERM_EMU_EXPORT int laperm_emu_register_buffer(void* base, size_t bytes) {
    if (base == nullptr) return fail_call("laperm_emu_register_buffer: base is null");
    auto& t = buffer_table();
    const auto a = reinterpret_cast<std::uintptr_t>(base);
    std::lock_guard lock(t.mutex);
    auto next = t.buffers.lower_bound(a);
    if (next != t.buffers.end() && (next->first == a || a + bytes > next->first))
        return fail_call(format("laperm_emu_register_buffer: [%p, +%zu) overlaps the registered buffer at %p",
                                base, bytes, reinterpret_cast<void*>(next->first)));
    if (next != t.buffers.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second > a)
            return fail_call(format("laperm_emu_register_buffer: [%p, +%zu) overlaps the registered buffer at %p",
                                    base, bytes, reinterpret_cast<void*>(prev->first)));
    }
    t.buffers.emplace(a, bytes);
    return 0;
}

LAPERM_EMU_EXPORT int laperm_emu_unregister_buffer(void* base) {
    auto& t = buffer_table();
    std::lock_guard lock(t.mutex);
    const auto a = reinterpret_cast<std::uintptr_t>(base);
    auto it = t.buffers.find(a);
    if (it == t.buffers.end())
        return fail_call(format("laperm_emu_unregister_buffer: %p is not the base of a registered buffer", base));
    if (auto g = t.guards.find(a); g != t.guards.end()) {
        asan::unpoison(reinterpret_cast<const void*>(a + it->second), g->second);  // the caller frees or reuses it
        t.guards.erase(g);
    }
    t.buffers.erase(it);
    return 0;
}

LAPERM_EMU_EXPORT const char* laperm_emu_sanitizers(void) {
#if defined(LAPERM_EMU_ASAN)
    return "address";
#else
    return "";
#endif
}

LAPERM_EMU_EXPORT int laperm_emu_guard_buffer(void* base, size_t guard) {
    auto& t = buffer_table();
    std::lock_guard lock(t.mutex);
    const auto a = reinterpret_cast<std::uintptr_t>(base);
    auto it = t.buffers.find(a);
    if (it == t.buffers.end())
        return fail_call(format("laperm_emu_guard_buffer: %p is not the base of a registered buffer", base));
    if (auto next = std::next(it); next != t.buffers.end() && a + it->second + guard > next->first)
        return fail_call(format("laperm_emu_guard_buffer: %zu guard bytes after [%p, +%zu) reach the registered buffer at %p",
                                guard, base, it->second, reinterpret_cast<void*>(next->first)));
    if (auto old = t.guards.find(a); old != t.guards.end()) asan::unpoison(reinterpret_cast<const void*>(a + it->second), old->second);
    std::memset(reinterpret_cast<unsigned char*>(a + it->second), kBufferGuardByte, guard);
    asan::poison(reinterpret_cast<const void*>(a + it->second), guard);
    t.guards[a] = guard;
    return 0;
}

}  // extern "C"
