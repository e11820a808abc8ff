// Fused attention aggregation for training: per destination row and head, the softmax of the
// messages' scores and the weighted sum of their sources' values, forward and backward,
// without the (messages x d) gathered values and products a framework materialises.
//
// Contract. Message e has source src[e] and destination row pos[e]; pos is non-decreasing
// (messages grouped by destination, as the message index lays them out). With d value
// channels split into `heads` equal heads (dh = d / heads), for each row v and head h over
// the messages e of row v in order:
//
//   top       = max_e scores[e, h]                       (0 for a row without messages)
//   w_e       = exp(scores[e, h] - top)
//   out[v, h * (1 + dh)]         = top
//   out[v, h * (1 + dh) + 1 + j] = (sum_e w_e * V[src[e], h * dh + j]) / (sum_e w_e)
//
// each sum in message order: the arithmetic of a framework's scatter-max, exp, index_add
// and division, up to the exp's last-place rounding. The backward pass takes
// g = dLoss/dout (its top columns are ignored: the maximum only shifts the softmax) and
// gives, with a_e = w_e / sum w:
//   dscores[e, h] = a_e * (sum_j g[v, j] * V[src[e], j] - sum_j g[v, j] * out[v, j])   (head h's j)
//   dV[s, j]     = sum over messages e with src[e] = s of a_e * g[pos[e], j]
// Rows run in parallel; dV accumulates per thread (contiguous row ranges) and the ranges are
// added in order: deterministic for a given thread count.
//
// Preconditions (checked by the bindings): indices in range, pos non-decreasing, heads
// divides d, C-contiguous arrays of the shapes above.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "engine/message_passing.h"
#include "engine/thread_partials.h"

namespace engine {

template <typename T>
struct AttentionArgs {
  const T* scores = nullptr;  // messages x heads
  const T* V = nullptr;       // sources x d
  const int64_t* src = nullptr;
  const int64_t* pos = nullptr;
  const int64_t* row_start = nullptr;  // n_out + 1 offsets into the messages, from pos
  int64_t messages = 0, sources = 0, n_out = 0, d = 0, heads = 1;
};

namespace detail {

// Row v, head h: top and the softmax weights' sum, w_e written to w (row's messages).
template <typename T>
ENGINE_INLINE T attention_weights(const AttentionArgs<T>& A, int64_t v, int64_t h, T top, T* w) {
  const int64_t lo = A.row_start[v], hi = A.row_start[v + 1];
  T den = 0;
  for (int64_t e = lo; e < hi; ++e) {
    w[e - lo] = std::exp(A.scores[e * A.heads + h] - top);
    den = den + w[e - lo];
  }
  return den;
}

template <typename T>
ENGINE_INLINE T row_top(const AttentionArgs<T>& A, int64_t v, int64_t h) {
  const int64_t lo = A.row_start[v], hi = A.row_start[v + 1];
  if (lo == hi) return T(0);
  T top = A.scores[lo * A.heads + h];
  for (int64_t e = lo + 1; e < hi; ++e) {
    const T s = A.scores[e * A.heads + h];
    if (s > top || s != s) top = s;  // a NaN score makes the row's maximum NaN, as a scatter-max
  }
  return top;
}

template <typename T>
ENGINE_INLINE void attention_rows_impl(const AttentionArgs<T>& A, int64_t r0, int64_t r1, T* out,
                                       std::vector<T>& w) {
  const int64_t H = A.heads, dh = A.d / H, width = H + A.d;
  for (int64_t v = r0; v < r1; ++v) {
    const int64_t lo = A.row_start[v], hi = A.row_start[v + 1];
    if (static_cast<int64_t>(w.size()) < hi - lo) w.resize(static_cast<size_t>(hi - lo));
    for (int64_t h = 0; h < H; ++h) {
      T* o = out + v * width + h * (1 + dh);
      const T top = row_top(A, v, h);
      o[0] = top;
      T* __restrict acc = o + 1;
      for (int64_t j = 0; j < dh; ++j) acc[j] = T(0);
      if (lo == hi) continue;
      const T den = attention_weights(A, v, h, top, w.data());
      for (int64_t e = lo; e < hi; ++e) {
        const T we = w[e - lo];
        const T* __restrict val = A.V + A.src[e] * A.d + h * dh;
        for (int64_t j = 0; j < dh; ++j) acc[j] = acc[j] + we * val[j];
      }
      for (int64_t j = 0; j < dh; ++j) acc[j] = acc[j] / den;
    }
  }
}

template <typename T>
ENGINE_INLINE void attention_grad_rows_impl(const AttentionArgs<T>& A, const T* out, const T* g, int64_t r0,
                                            int64_t r1, T* dscores, T* dV, std::vector<T>& w) {
  const int64_t H = A.heads, dh = A.d / H, width = H + A.d;
  for (int64_t v = r0; v < r1; ++v) {
    const int64_t lo = A.row_start[v], hi = A.row_start[v + 1];
    if (lo == hi) continue;
    if (static_cast<int64_t>(w.size()) < hi - lo) w.resize(static_cast<size_t>(hi - lo));
    for (int64_t h = 0; h < H; ++h) {
      const T* o = out + v * width + h * (1 + dh);
      const T* __restrict gv = g + v * width + h * (1 + dh) + 1;
      const T den = attention_weights(A, v, h, o[0], w.data());
      T g_out = 0;
      for (int64_t j = 0; j < dh; ++j) g_out = g_out + gv[j] * o[1 + j];
      for (int64_t e = lo; e < hi; ++e) {
        const T a = w[e - lo] / den;
        const int64_t s = A.src[e];
        const T* __restrict val = A.V + s * A.d + h * dh;
        T* __restrict dval = dV + s * A.d + h * dh;
        T dot = 0;
        for (int64_t j = 0; j < dh; ++j) {
          dot = dot + gv[j] * val[j];
          dval[j] = dval[j] + a * gv[j];
        }
        dscores[e * H + h] = a * (dot - g_out);
      }
    }
  }
}

#define ENGINE_DEFINE_ATTENTION_LOOPS(T)                                                                      \
  ENGINE_ISA_CLONES static void attention_rows(const AttentionArgs<T>& A, int64_t r0, int64_t r1, T* out,   \
                                               std::vector<T>& w) {                                        \
    attention_rows_impl<T>(A, r0, r1, out, w);                                                              \
  }                                                                                                         \
  ENGINE_ISA_CLONES static void attention_grad_rows(const AttentionArgs<T>& A, const T* out, const T* g,    \
                                                    int64_t r0, int64_t r1, T* dscores, T* dV,              \
                                                    std::vector<T>& w) {                                    \
    attention_grad_rows_impl<T>(A, out, g, r0, r1, dscores, dV, w);                                         \
  }
ENGINE_DEFINE_ATTENTION_LOOPS(float)
ENGINE_DEFINE_ATTENTION_LOOPS(double)
#undef ENGINE_DEFINE_ATTENTION_LOOPS

inline int attention_threads(int threads, int64_t messages) {
  const int64_t most = std::max<int64_t>(1, messages / 512);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, most)));
}

}  // namespace detail

// out: n_out x (heads + d), as in the contract.
template <typename T>
void attention_forward(const AttentionArgs<T>& A, T* out, int threads) {
  const int nt = detail::attention_threads(threads, A.messages);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int tid = 0;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
#endif
    std::vector<T> w;
    detail::attention_rows(A, A.n_out * tid / nt, A.n_out * (tid + 1) / nt, out, w);
  }
}

// dscores (messages x heads) and dV (sources x d), both overwritten.
template <typename T>
void attention_backward(const AttentionArgs<T>& A, const T* out, const T* g, T* dscores, T* dV, int threads) {
  const int nt = detail::attention_threads(threads, A.messages);
  ThreadPartials<T> acc({{dV, static_cast<size_t>(A.sources * A.d)}}, nt);
  std::fill(dscores, dscores + A.messages * A.heads, T(0));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int tid = 0;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
#endif
    std::vector<T> w;
    detail::attention_grad_rows(A, out, g, A.n_out * tid / nt, A.n_out * (tid + 1) / nt, dscores, acc.part(tid, 0),
                                w);
  }
  acc.add_ranges();
}

}  // namespace engine
