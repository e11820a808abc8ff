// engine/csr.h - CSR utilities.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace engine {

// Checks that indptr (n + 1 entries) and indices (m entries) form a CSR whose rows lie in
// [0, m) and whose column ids lie in [0, n): indptr[0] == 0, indptr[n] == m, non-decreasing,
// every index in range. O(n + m). Throws std::invalid_argument naming the first violation
// (before anything reads through them).
inline void validate_csr(int64_t n, int64_t m, const int64_t* indptr, const int32_t* indices) {
  if (n < 0 || m < 0) throw std::invalid_argument("negative graph size");
  if (indptr[0] != 0 || indptr[n] != m) throw std::invalid_argument("indptr must run from 0 to num_edges");
  for (int64_t v = 0; v < n; ++v)
    if (indptr[v + 1] < indptr[v]) throw std::invalid_argument("indptr must be non-decreasing");
  for (int64_t e = 0; e < m; ++e)
    if (indices[e] < 0 || indices[e] >= n) throw std::invalid_argument("edge source out of range");
}

// Transposes a CSR-by-destination graph (in-edges of v: indices[indptr[v] .. indptr[v+1]))
// into CSR by source with a counting sort, O(n + m), single pass over the edges in order,
// so each out-row lists its targets in ascending order. The input must be a valid CSR
// (validate_csr); m = indptr[n].
// Outputs (preallocated): out_indptr (n + 1), targets (m), edge_ids (m, the position of each
// out-edge in `indices`).
inline void transpose(int64_t n, const int64_t* indptr, const int32_t* indices, int64_t* out_indptr,
                      int32_t* targets, int64_t* edge_ids) {
  const int64_t m = indptr[n];
  for (int64_t v = 0; v <= n; ++v) out_indptr[v] = 0;
  for (int64_t e = 0; e < m; ++e) ++out_indptr[indices[e] + 1];
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
