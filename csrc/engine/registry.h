// engine/registry.h - the kinds the kernels understand, by name (the aggregation kinds have
// their own header, reduce.h).
//
// The same lists exist once in Python (engine/model/registry.py); a test checks that the
// names and their integer codes agree.
#pragma once

#include <array>
#include <string_view>

namespace engine {

// Elementwise activation after a dense layer.
enum class Activation : int { Identity = 0, Relu = 1 };

inline constexpr std::array<std::string_view, 2> kActivationNames = {"identity", "relu"};

// How each channel of a graph readout is reduced over the nodes: on its own (min, max), or as
// the key of an argmin/argmax group, whose following payload channels are taken from the node
// that wins the key.
enum class ReadoutReduce : int { Min = 0, Max = 1, ArgMin = 2, ArgMax = 3, Payload = 4 };

inline constexpr std::array<std::string_view, 5> kReadoutNames = {"min", "max", "argmin", "argmax", "payload"};

// How the step loop applies a layer: to every row (dense), to the rows whose inputs changed
// (active), or either, whichever is cheaper at that application (auto).
enum class Mode : int { Dense = 0, Active = 1, Auto = 2 };

inline constexpr std::array<std::string_view, 3> kModeNames = {"dense", "active", "auto"};

}  // namespace engine
