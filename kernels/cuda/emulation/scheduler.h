// The CPU emulation's thread scheduler: each CUDA thread of a launch is a fiber (its own
// stack, switched cooperatively on one host thread), so unmodified kernels that wait at
// __syncthreads or exchange values through warp shuffles run as they would on a GPU.
//
// A launch runs its blocks one after another, in a random order (the seed comes from
// the caller), and the threads of a block in a new random order after each barrier: a kernel
// whose result depends on the order of blocks or threads (an atomic sum of floats, a
// race on shared memory) shows it from run to run, as on a GPU. What CUDA leaves
// undefined and a GPU may quietly survive is an error here: a barrier reached by only
// part of a block, a full-warp shuffle with a lane missing or at another shuffle, a
// block of a partial warp.
//
// This is a check of kernels' logic, not of their speed or of the GPU's memory model.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace fastnn_emu {

// ---------------------------------------------------------------------------- contexts
// A saved execution context and the switch between two. On x86-64 a switch saves the
// callee-saved registers on the old stack and loads them from the new one (a few
// nanoseconds); elsewhere, and under a sanitizer, which must see stack switches,
// ucontext (a system call per switch).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define FASTNN_EMU_FAST_SWITCH 1
extern "C" void fastnn_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .hidden fastnn_emu_switch
    .type fastnn_emu_switch, @function
fastnn_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fastnn_emu_switch, .-fastnn_emu_switch
)");

struct Context {
    void* sp = nullptr;
};

// A context that, switched to, calls ``entry`` (which must never return) on ``stack``.
inline void start_context(Context& c, char* stack, size_t size, void (*entry)()) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
    auto* slot = reinterpret_cast<uint64_t*>(top);
    *--slot = 0;                                   // entry's return address: never used
    *--slot = reinterpret_cast<uint64_t>(entry);   // where the first switch returns to
    for (int i = 0; i < 6; ++i) *--slot = 0;       // rbp rbx r12 r13 r14 r15
    uint32_t control[2];
    asm volatile("stmxcsr %0" : "=m"(control[0]));  // the caller's floating-point modes
    asm volatile("fnstcw %0" : "=m"(control[1]));
    --slot;
    std::memcpy(slot, control, sizeof control);
    c.sp = slot;
}

inline void switch_context(Context& from, Context& to) {
    fastnn_emu_switch(&from.sp, to.sp);
}
#else
struct Context {
    ucontext_t uc;
};

inline void start_context(Context& c, char* stack, size_t size, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}

inline void switch_context(Context& from, Context& to) {
    swapcontext(&from.uc, &to.uc);
}
#endif

struct uint3 {
    unsigned int x, y, z;
};
using dim3 = uint3;

//: a kernel's mistake the emulation detected; aborts the launch with this message
struct KernelError {
    std::string message;
};

enum class State { ready, at_block_barrier, at_warp_barrier, done };

struct Fiber {
    Context context;
    uint3 thread_idx;
    unsigned int linear;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
    State state;
    unsigned long long shuffles;  // shuffles done so far: lanes must agree at each one
};

struct Warp {
    int arrived = 0;
    unsigned long long shuffle = 0;  // the shuffle number the arrived lanes are at
    uint64_t exchange[2][32] = {};   // values in flight, double-buffered by shuffle parity
};

// What the running fiber sees: its launch's shape and its own place in it.
struct Launch {
    uint3 grid_dim{1, 1, 1};
    uint3 block_dim{1, 1, 1};
    uint3 block_idx{0, 0, 0};
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    int block_arrived = 0;
    Fiber* current = nullptr;
    Context scheduler;
    std::string error;
    void (*call)(void** args) = nullptr;
    void** args = nullptr;
};

inline thread_local Launch* active = nullptr;

inline Fiber& this_fiber() {
    return *active->current;
}

// ------------------------------------------------------------------------------ stacks
constexpr size_t STACK_BYTES = 256 * 1024;  // kernels are shallow; sanitizers need room

// One stack per thread slot, kept for the life of the host thread.
inline std::vector<char*>& stacks(size_t count) {
    static thread_local std::vector<char*> pool;
    while (pool.size() < count) pool.push_back(new char[STACK_BYTES]);
    return pool;
}

// ----------------------------------------------------------------------------- waiting
inline void fail(const std::string& message) {
    throw KernelError{message};
}

// Back to the scheduler until this fiber is ready again.
inline void yield() {
    switch_context(this_fiber().context, active->scheduler);
}

inline std::string where(const Fiber& f) {
    return "thread (" + std::to_string(f.thread_idx.x) + "," + std::to_string(f.thread_idx.y) +
           "," + std::to_string(f.thread_idx.z) + ") of block (" +
           std::to_string(active->block_idx.x) + "," + std::to_string(active->block_idx.y) + "," +
           std::to_string(active->block_idx.z) + ")";
}

inline void sync_block() {
    Launch& launch = *active;
    for (const Fiber& f : launch.fibers) {
        if (f.state == State::done) {
            fail("__syncthreads reached by " + where(this_fiber()) + " after " + where(f) +
                 " had returned: every thread of a block must reach each barrier");
        }
    }
    if (++launch.block_arrived < static_cast<int>(launch.fibers.size())) {
        this_fiber().state = State::at_block_barrier;
        yield();
        return;
    }
    launch.block_arrived = 0;  // the last to arrive releases the others
    for (Fiber& f : launch.fibers) {
        if (f.state == State::at_block_barrier) f.state = State::ready;
    }
}

// Wait until the 32 lanes of this fiber's warp are all at this shuffle.
inline void sync_warp() {
    Launch& launch = *active;
    Fiber& self = this_fiber();
    const unsigned int first = self.linear / 32 * 32;
    if (first + 32 > launch.fibers.size()) {
        fail("a full-warp shuffle in a block of " + std::to_string(launch.fibers.size()) +
             " threads: blocks must be a whole number of warps");
    }
    Warp& warp = launch.warps[self.linear / 32];
    if (warp.arrived == 0) warp.shuffle = self.shuffles;
    for (unsigned int lane = first; lane < first + 32; ++lane) {
        const Fiber& other = launch.fibers[lane];
        if (other.state == State::done) {
            fail("a full-warp shuffle by " + where(self) + " after " + where(other) +
                 " had returned");
        }
    }
    if (warp.shuffle != self.shuffles) {
        fail("the lanes of a warp reached different shuffles (" + where(self) +
             "): shuffles must be warp-uniform");
    }
    if (++warp.arrived < 32) {
        self.state = State::at_warp_barrier;
        yield();
        return;
    }
    warp.arrived = 0;
    for (unsigned int lane = first; lane < first + 32; ++lane) {
        Fiber& other = launch.fibers[lane];
        if (other.state == State::at_warp_barrier) other.state = State::ready;
    }
}

// The value ``value`` of lane ``source`` of this fiber's warp, all lanes taking part.
template <typename T>
inline T exchange(T value, unsigned int source) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move up to 8 bytes");
    Fiber& self = this_fiber();
    Warp& warp = active->warps[self.linear / 32];
    const int parity = static_cast<int>(self.shuffles & 1);
    std::memcpy(&warp.exchange[parity][self.linear % 32], &value, sizeof(T));
    sync_warp();
    ++self.shuffles;
    T result;
    std::memcpy(&result, &warp.exchange[parity][source % 32], sizeof(T));
    return result;
}

// ------------------------------------------------------------------------------ launch
[[noreturn]] inline void fiber_main() {
    Launch& launch = *active;
    try {
        launch.call(launch.args);
    } catch (const KernelError& error) {
        if (launch.error.empty()) launch.error = error.message;
    }
    launch.current->state = State::done;
    for (;;) switch_context(launch.current->context, launch.scheduler);  // never resumed
}

// Run one block to its end; false when a thread failed or the threads deadlocked.
inline bool run_block(Launch& launch, std::mt19937_64& random) {
    const uint3 b = launch.block_dim;
    const size_t count = static_cast<size_t>(b.x) * b.y * b.z;
    std::vector<char*>& pool = stacks(count);
    launch.fibers.assign(count, Fiber{});
    launch.warps.assign((count + 31) / 32, Warp{});
    launch.block_arrived = 0;
    for (size_t i = 0; i < count; ++i) {
        Fiber& f = launch.fibers[i];
        f.linear = static_cast<unsigned int>(i);
        f.thread_idx = {static_cast<unsigned int>(i % b.x),
                        static_cast<unsigned int>(i / b.x % b.y),
                        static_cast<unsigned int>(i / (static_cast<size_t>(b.x) * b.y))};
        f.state = State::ready;
        start_context(f.context, pool[i], STACK_BYTES, fiber_main);
    }
    std::vector<size_t> order(count);
    for (size_t i = 0; i < count; ++i) order[i] = i;
    size_t finished = 0;
    while (finished < count) {
        // a new order for every round between barriers: what runs first differs each time
        std::shuffle(order.begin(), order.end(), random);
        bool progressed = false;
        for (size_t i : order) {
            Fiber& f = launch.fibers[i];
            if (f.state != State::ready) continue;
            progressed = true;
            launch.current = &f;
            switch_context(launch.scheduler, f.context);
            if (!launch.error.empty()) return false;
            if (f.state == State::done) ++finished;
        }
        if (!progressed) {
            launch.error =
                "deadlock: the threads of a block wait at barriers that can never all be reached";
            return false;
        }
    }
    return true;
}

// Run ``call(args)`` as a grid of blocks; returns the kernel's error, empty if none.
inline std::string launch(void (*call)(void**), void** args, uint3 grid, uint3 block,
                          uint64_t seed) {
    const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
    if (threads == 0 || threads > 1024) {
        return "a block of " + std::to_string(threads) + " threads; CUDA allows 1 to 1024";
    }
    Launch state;
    state.grid_dim = grid;
    state.block_dim = block;
    state.call = call;
    state.args = args;
    Launch* outer = active;
    active = &state;
    std::mt19937_64 random(seed);
    std::vector<uint3> blocks;
    for (unsigned int z = 0; z < grid.z; ++z)
        for (unsigned int y = 0; y < grid.y; ++y)
            for (unsigned int x = 0; x < grid.x; ++x) blocks.push_back({x, y, z});
    std::shuffle(blocks.begin(), blocks.end(), random);
    for (const uint3& b : blocks) {
        state.block_idx = b;
        if (!run_block(state, random)) break;
    }
    active = outer;
    return state.error;
}

}  // namespace fastnn_emu
