// engine/csr.h - CSR utilities.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace engine {

// Transposes a CSR-by-destination graph (in-edges of v: indices[indptr[v] .. indptr[v+1]))
// into CSR by source with a counting sort, O(n + m), single pass over the edges in order,
// so each out-row lists its targets in ascending order.
// Outputs (preallocated): out_indptr (n + 1), targets (m), edge_ids (m, the position of each
// out-edge in `indices`). Throws std::invalid_argument on an out-of-range source.
inline void transpose(int64_t n, const int64_t* indptr, const int32_t* indices, int64_t* out_indptr,
                      int32_t* targets, int64_t* edge_ids) {
  const int64_t m = indptr[n];
  for (int64_t v = 0; v <= n; ++v) out_indptr[v] = 0;
  for (int64_t e = 0; e < m; ++e) {
    const int64_t u = indices[e];
    if (u < 0 || u >= n) throw std::invalid_argument("edge source out of range");
    ++out_indptr[u + 1];
  }
  for (int64_t v = 0; v < n; ++v) out_indptr[v + 1] += out_indptr[v];
  std::vector<int64_t> fill(out_indptr, out_indptr + n);
  for (int64_t v = 0; v < n; ++v)
    for (int64_t e = indptr[v]; e < indptr[v + 1]; ++e) {
      const int64_t pos = fill[indices[e]]++;
      targets[pos] = static_cast<int32_t>(v);
      edge_ids[pos] = e;
    }
}

}  // namespace engine
