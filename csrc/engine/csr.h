// engine/csr.h - CSR utilities.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

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
// into CSR by source with a counting sort, O(n + m), so each out-row lists its targets in
// ascending order (the same output as one pass over the edges in order). With OpenMP and
// more than one thread, the destinations are split into blocks of about equal edge counts:
// each thread counts its block's sources, a prefix over (source, block) gives every block
// its slots within each out-row, and each thread fills its block's slots in edge order
// (O(threads * n) extra memory; at most 8 threads). The input must be a valid CSR
// (validate_csr); m = indptr[n].
// Outputs (preallocated): out_indptr (n + 1), targets (m), edge_ids (m, the position of each
// out-edge in `indices`; nullptr skips them, and a third of the scattered writes).
inline void transpose(int64_t n, const int64_t* indptr, const int32_t* indices, int64_t* out_indptr,
                      int32_t* targets, int64_t* edge_ids) {
  const int64_t m = indptr[n];
  int blocks = 1;
#if defined(_OPENMP)
  blocks = std::min(omp_get_max_threads(), 8);
  if (m < (int64_t(1) << 16)) blocks = 1;  // small graphs: threads cost more than they save
#endif
  // block b holds destinations [first[b], first[b + 1]): the first v with indptr[v] >= b m / blocks
  std::vector<int64_t> first(blocks + 1, n);
  first[0] = 0;
  for (int b = 1; b < blocks; ++b)
    first[b] = std::lower_bound(indptr, indptr + n, m / blocks * b) - indptr;
  std::vector<int64_t> slot(static_cast<size_t>(blocks) * n, 0);  // per block: count, then next slot
#pragma omp parallel for schedule(static, 1) num_threads(blocks) if (blocks > 1)
  for (int b = 0; b < blocks; ++b) {
    int64_t* count = slot.data() + static_cast<size_t>(b) * n;
    for (int64_t e = indptr[first[b]]; e < indptr[first[b + 1]]; ++e) ++count[indices[e]];
  }
  out_indptr[0] = 0;
  for (int64_t u = 0; u < n; ++u) {
    int64_t next = out_indptr[u];
    for (int b = 0; b < blocks; ++b) {
      int64_t& s = slot[static_cast<size_t>(b) * n + u];
      const int64_t c = s;
      s = next;
      next += c;
    }
    out_indptr[u + 1] = next;
  }
#pragma omp parallel for schedule(static, 1) num_threads(blocks) if (blocks > 1)
  for (int b = 0; b < blocks; ++b) {
    int64_t* fill = slot.data() + static_cast<size_t>(b) * n;
    for (int64_t v = first[b]; v < first[b + 1]; ++v)
      for (int64_t e = indptr[v]; e < indptr[v + 1]; ++e) {
        const int64_t pos = fill[indices[e]]++;
        targets[pos] = static_cast<int32_t>(v);
        if (edge_ids) edge_ids[pos] = e;
      }
  }
}

}  // namespace engine
