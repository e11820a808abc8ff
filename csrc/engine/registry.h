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

// How each channel of a graph readout is reduced over the nodes: on its own (min, max), or as
// the key of an argmin/argmax group, whose following payload channels are taken from the node
// that wins the key.
enum class ReadoutReduce : int { Min = 0, Max = 1, ArgMin = 2, ArgMax = 3, Payload = 4 };

inline constexpr std::array<std::string_view, 5> kReadoutNames = {"min", "max", "argmin", "argmax", "payload"};

}  // namespace engine
