// Backward pass of an extremum (max/min) aggregation of linear messages, for training: the
// MPNN processor's messages M = H @ W + b reduced channel by channel to their maximum.
//
// Contract. Message e (rows of H, messages x k, and of M, messages x w) belongs to
// destination row v for row_start[v] <= e < row_start[v + 1] (messages grouped by
// destination); agg (rows x w) holds each row's channel-wise extremum of its messages (any
// mix of max and min channels; 0 for a row without messages). Given G = dLoss/dagg, a
// framework's scatter-max backward splits G[v, c] evenly among the row's tied messages
// (those with M[e, c] == agg[v, c]), and the linear layer's backward then multiplies that
// whole (messages x w) gradient with W and with H. Only the tied entries are nonzero (one
// per row and channel where the values are distinct), so this kernel visits those alone:
// with t(v, c) ties and q = G[v, c] / t(v, c), for each tie e of (v, c):
//
//   dH[e, :] += q * W[:, c]      dW[:, c] += q * H[e, :]      db[c] += q
//
// in the order e ascending, then c ascending (a channel with no tie, a NaN extremum, adds
// nothing; an entry with q == 0 adds nothing). That is n * w * k multiply-adds each for dH
// and dW where the framework's products cost messages * w * k: the mean in-degree fewer.
// The sums are grouped differently from a matrix product's, so the results equal the
// framework's up to rounding. Rows are split into `threads` contiguous ranges; dH rows are
// each written by one range, and dW and db accumulate per range (thread_partials.h), so
// the result is deterministic for a given thread count.
//
// Preconditions (checked by the bindings): row_start non-decreasing from 0 to the number of
// messages; C-contiguous arrays of the shapes above; WT is W transposed (w x k).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/message_passing.h"
#include "engine/thread_partials.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace engine {

template <typename T>
struct ExtremumGradArgs {
  const T* H = nullptr;          // messages x k: the linear layer's inputs
  const T* WT = nullptr;         // w x k: its weight, transposed
  const T* M = nullptr;          // messages x w: the messages
  const T* agg = nullptr;        // rows x w: their extremum per row
  const T* G = nullptr;          // rows x w: dLoss/dagg
  const int64_t* row_start = nullptr;  // rows + 1
  int64_t messages = 0, rows = 0, k = 0, w = 0;
};

namespace detail {

// Rows [r0, r1): dH rows written, dWT (w x k) and db (w) accumulated. `q` holds w values.
template <typename T>
ENGINE_INLINE void extremum_grad_rows_impl(const ExtremumGradArgs<T>& A, int64_t r0, int64_t r1, T* dH, T* dWT,
                                           T* db, T* q) {
  const int64_t k = A.k, w = A.w;
  for (int64_t v = r0; v < r1; ++v) {
    const int64_t lo = A.row_start[v], hi = A.row_start[v + 1];
    if (lo == hi) continue;
    const T* agg = A.agg + v * w;
    // the ties of each channel: q[c] = G[v, c] / t(v, c), or 0 where no message ties
    std::fill(q, q + w, T(0));
    for (int64_t e = lo; e < hi; ++e) {
      const T* m = A.M + e * w;
      for (int64_t c = 0; c < w; ++c) q[c] = q[c] + (m[c] == agg[c] ? T(1) : T(0));
    }
    const T* g = A.G + v * w;
    for (int64_t c = 0; c < w; ++c) q[c] = q[c] > T(0) ? g[c] / q[c] : T(0);
    for (int64_t e = lo; e < hi; ++e) {
      const T* m = A.M + e * w;
      const T* __restrict h = A.H + e * k;
      T* __restrict dh = dH + e * k;
      for (int64_t c = 0; c < w; ++c) {
        if (!(m[c] == agg[c]) || q[c] == T(0)) continue;
        const T qc = q[c];
        const T* __restrict wc = A.WT + c * k;
        T* __restrict dwc = dWT + c * k;
        for (int64_t j = 0; j < k; ++j) dh[j] = dh[j] + qc * wc[j];
        for (int64_t j = 0; j < k; ++j) dwc[j] = dwc[j] + qc * h[j];
        db[c] = db[c] + qc;
      }
    }
  }
}

#define ENGINE_DEFINE_EXTREMUM_GRAD_LOOPS(T)                                                               \
  ENGINE_ISA_CLONES static void extremum_grad_rows(const ExtremumGradArgs<T>& A, int64_t r0, int64_t r1, \
                                                   T* dH, T* dWT, T* db, T* q) {                         \
    extremum_grad_rows_impl<T>(A, r0, r1, dH, dWT, db, q);                                               \
  }
ENGINE_DEFINE_EXTREMUM_GRAD_LOOPS(float)
ENGINE_DEFINE_EXTREMUM_GRAD_LOOPS(double)
#undef ENGINE_DEFINE_EXTREMUM_GRAD_LOOPS

inline int extremum_grad_threads(int threads, int64_t rows) {
  // below a few dozen rows per thread a thread costs more than it saves
  const int64_t most = std::max<int64_t>(1, rows / 32);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, most)));
}

}  // namespace detail

// dH (messages x k), dWT (w x k: dW transposed) and db (w), all overwritten.
template <typename T>
void extremum_linear_backward(const ExtremumGradArgs<T>& A, T* dH, T* dWT, T* db, int threads) {
  const int nt = detail::extremum_grad_threads(threads, A.rows);
  std::fill(dH, dH + A.messages * A.k, T(0));
  ThreadPartials<T> acc({{dWT, static_cast<size_t>(A.w * A.k)}, {db, static_cast<size_t>(A.w)}}, nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int tid = 0;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
#endif
    std::vector<T> q(static_cast<size_t>(A.w));
    detail::extremum_grad_rows(A, A.rows * tid / nt, A.rows * (tid + 1) / nt, dH, acc.part(tid, 0),
                               acc.part(tid, 1), q.data());
  }
  acc.add_ranges();
}

}  // namespace engine
