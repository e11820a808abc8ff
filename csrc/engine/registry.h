// engine/registry.h - the kinds the kernels understand, by name.
//
// The same lists exist once in Python (engine/model/registry.py); a test checks that the
// names and their integer codes agree.
#pragma once

#include <array>
#include <string_view>

namespace engine {

// How a group of message channels is reduced over a node's incoming messages.
enum class Reduce : int { Sum = 0, Mean = 1, Max = 2, Min = 3, ArgMax = 4, ArgMin = 5, Softmax = 6 };

// Elementwise activation after a dense layer.
enum class Activation : int { Identity = 0, Relu = 1 };

inline constexpr std::array<std::string_view, 7> kReduceNames = {"sum",    "mean",   "max",    "min",
                                                                  "argmax", "argmin", "softmax"};
inline constexpr std::array<std::string_view, 2> kActivationNames = {"identity", "relu"};

}  // namespace engine
