// engine/thread_partials.h - gradients accumulated per thread, added in a fixed order.
//
// Contract. A backward kernel that splits its work into `ranges` contiguous ranges (one per
// thread) and lets every range add into the same gradients gives each range its own copy of
// them: range 0 accumulates into the caller's output buffers, ranges 1.. into zeroed buffers
// of their own, and add_ranges() then adds range 1, 2, ... into the outputs, element by
// element. The result is deterministic for a given number of ranges (not across numbers:
// the additions are grouped differently).
//
// The outputs are `parts` (pointer, length) pairs; the constructor zeroes them. part(r, p)
// is range r's buffer for part p.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <utility>
#include <vector>

namespace engine {

template <typename T>
class ThreadPartials {
 public:
  ThreadPartials(std::initializer_list<std::pair<T*, size_t>> parts, int ranges) : parts_(parts) {
    size_t total = 0;
    for (const auto& part : parts_) {
      offsets_.push_back(total);
      total += part.second;
      std::fill(part.first, part.first + part.second, T(0));
    }
    stride_ = total;
    extra_.assign(static_cast<size_t>(std::max(ranges - 1, 0)) * stride_, T(0));
  }

  T* part(int range, size_t p) {
    if (range == 0) return parts_[p].first;
    return extra_.data() + static_cast<size_t>(range - 1) * stride_ + offsets_[p];
  }

  void add_ranges() {
    const size_t ranges = stride_ ? extra_.size() / stride_ : 0;
    for (size_t r = 0; r < ranges; ++r)
      for (size_t p = 0; p < parts_.size(); ++p) {
        const T* src = extra_.data() + r * stride_ + offsets_[p];
        T* out = parts_[p].first;
        for (size_t i = 0; i < parts_[p].second; ++i) out[i] = out[i] + src[i];
      }
  }

 private:
  std::vector<std::pair<T*, size_t>> parts_;
  std::vector<size_t> offsets_;
  size_t stride_ = 0;
  std::vector<T> extra_;
};

}  // namespace engine
