// The C interface of an emulated module (one .cu source compiled for the CPU): its
// kernel instantiations by name, each with the types of its parameters, and a launch
// that takes the arguments as CUDA's cudaLaunchKernel does, an array of pointers to
// them. kernels/emulator.py writes a table of FASTNN_EMU_ENTRY lines after the source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "scheduler.h"

namespace fastnn_emu {

// A parameter type as the Python side names it: f4, f8, i4, i8, u4, u8, b1, and "*" before
// the pointee's code for a pointer.
template <typename T>
std::string type_code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) {
        using P = std::remove_cv_t<std::remove_pointer_t<U>>;
        if constexpr (std::is_void_v<P>) {
            return "*v";
        } else {
            return "*" + type_code<P>();
        }
    } else if constexpr (std::is_same_v<U, bool>) {
        return "b1";
    } else if constexpr (std::is_floating_point_v<U>) {
        return "f" + std::to_string(sizeof(U));
    } else if constexpr (std::is_integral_v<U>) {
        return (std::is_signed_v<U> ? "i" : "u") + std::to_string(sizeof(U));
    } else {
        static_assert(std::is_void_v<U>, "kernel parameters are numbers or pointers");
        return "";
    }
}

template <typename F, F Kernel>
struct Bind;

template <typename... A, void (*Kernel)(A...)>
struct Bind<void (*)(A...), Kernel> {
    template <size_t... I>
    static void unpack(void** args, std::index_sequence<I...>) {
        Kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
    }
    static void call(void** args) {
        unpack(args, std::index_sequence_for<A...>{});
    }
    static std::string signature() {
        std::string codes;
        ((codes += (codes.empty() ? "" : ",") + type_code<A>()), ...);
        return codes;
    }
};

struct Entry {
    const char* name;
    void (*call)(void**);
    std::string signature;
};

std::vector<Entry>& entries();

// The MXCSR bits that make SSE arithmetic flush subnormal results (FTZ) and read
// subnormal inputs as zero (DAZ), as CuPy's -ftz=true does to float32 on a GPU.
constexpr unsigned int FLUSH_BITS = 0x8040;

}  // namespace fastnn_emu

#define FASTNN_EMU_ENTRY(name, ...)                                                   \
    {name, &::fastnn_emu::Bind<decltype(__VA_ARGS__), __VA_ARGS__>::call,             \
     ::fastnn_emu::Bind<decltype(__VA_ARGS__), __VA_ARGS__>::signature()}

#define FASTNN_EMU_TABLE(...)                                                           \
    std::vector<::fastnn_emu::Entry>& ::fastnn_emu::entries() {                       \
        static std::vector<::fastnn_emu::Entry> table{__VA_ARGS__};                   \
        return table;                                                                   \
    }

extern "C" {

int fastnn_emu_count() {
    return static_cast<int>(fastnn_emu::entries().size());
}

const char* fastnn_emu_name(int index) {
    return fastnn_emu::entries().at(static_cast<size_t>(index)).name;
}

const char* fastnn_emu_signature(int index) {
    return fastnn_emu::entries().at(static_cast<size_t>(index)).signature.c_str();
}

// Runs kernel ``index``; returns 0, or 1 with the kernel's error written to ``error``.
int fastnn_emu_launch(int index, const unsigned int* grid, const unsigned int* block,
                      void** args, uint64_t seed, int flush_subnormals, char* error,
                      size_t error_size) {
    const fastnn_emu::Entry& entry = fastnn_emu::entries().at(static_cast<size_t>(index));
#if defined(__x86_64__) || defined(__i386__)
    const unsigned int saved = _mm_getcsr();
    if (flush_subnormals) _mm_setcsr(saved | fastnn_emu::FLUSH_BITS);
#endif
    const std::string message = fastnn_emu::launch(
        entry.call, args, {grid[0], grid[1], grid[2]}, {block[0], block[1], block[2]}, seed);
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(saved);
#endif
    if (message.empty()) return 0;
    std::snprintf(error, error_size, "%s", message.c_str());
    return 1;
}

}  // extern "C"
