// Fused edge scores for training: the per-message part of a score MLP (a pointer decoder's
// edge score, or an attention head's), forward and backward, without the (messages x d)
// intermediate a framework materialises (several passes over it forward and backward).
//
// Contract. Message e has source src[e], destination row pos[e] and edge-input row eid[e]
// (-1: none, the edge inputs are zero). With d channels split into `heads` equal heads
// (head h owns channels [h * d / heads, (h + 1) * d / heads)):
//
//   pre[e, c] = (S[src[e], c] + Q[pos[e], c]) + (sum_k E[eid[e], k] * We[k, c], k ascending)
//   act(p)    = p if p > 0 or p is NaN; else slope * p (slope 0: 0, the ReLU; slope 1: identity)
//   out[e, h] = (sum over c in head h of w[c] * act(pre[e, c])) + bias[h]
//
// The sum over a head's channels runs in 16 interleaved partial sums (channel c into lane
// c mod 16, ascending), which are then added pairwise in a fixed tree (lane j with j + 8,
// then j + 4, j + 2, j + 1); dEx's sums over channels likewise: a fixed order,
// so results depend on neither the thread count nor the machine, but they are not the
// single ascending sum of a matrix product (they differ from one by rounding only).
//
// The backward pass takes g[e, h] = dLoss/dout[e, h] and recomputes pre; with
// t[e, c] = (g[e, h(c)] * w[c]) * act'(pre[e, c]) (act' = 1 where pre > 0, else slope;
// 0 for NaN under slope 0, as a framework's ReLU gradient):
//   dS[s, c]  = sum over e with src[e] = s of t[e, c]      dQ[v, c] likewise over pos[e] = v
//   dWe[k, c] = sum_e E[eid[e], k] * t[e, c]               dEx[e, k] = sum_c t[e, c] * We[k, c]
//   dw[c]     = sum_e g[e, h(c)] * act(pre[e, c])          dbias[h] = sum_e g[e, h]
// dEx is per message (the caller scatters it to edge rows). Messages are split into
// `threads` contiguous ranges, each accumulating into its own buffers, which are then
// added in range order: for a given thread count the result is deterministic.
//
// Preconditions (checked by the bindings): every index is in range, d is a multiple of
// heads, arrays are C-contiguous with the shapes above.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/message_passing.h"
#include "engine/thread_partials.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace engine {

template <typename T>
struct EdgeScoreArgs {
  const T* S = nullptr;       // n x d
  const T* Q = nullptr;       // n x d
  const T* E = nullptr;       // rows x fe (may be null when fe == 0)
  const T* We = nullptr;      // fe x d
  const T* w = nullptr;       // d
  const T* bias = nullptr;    // heads
  const int64_t* src = nullptr;
  const int64_t* pos = nullptr;
  const int64_t* eid = nullptr;
  int64_t n = 0, d = 0, fe = 0, messages = 0, heads = 1;
  T slope = 0;
};

namespace detail {

constexpr int kScoreLanes = 16;

// pre[c] for message e; ex (d scratch values) receives E[eid[e]] @ We.
template <typename T>
ENGINE_INLINE void edge_pre(const EdgeScoreArgs<T>& A, int64_t e, T* __restrict pre, T* __restrict ex) {
  const int64_t d = A.d;
  const T* __restrict s = A.S + A.src[e] * d;
  const T* __restrict q = A.Q + A.pos[e] * d;
  for (int64_t c = 0; c < d; ++c) pre[c] = s[c] + q[c];
  const int64_t row = A.eid[e];
  if (row < 0 || A.fe == 0) return;
  const T* __restrict erow = A.E + row * A.fe;
  const T e0 = erow[0];
  for (int64_t c = 0; c < d; ++c) ex[c] = e0 * A.We[c];
  for (int64_t k = 1; k < A.fe; ++k) {
    const T ek = erow[k];
    const T* __restrict wk = A.We + k * d;
    for (int64_t c = 0; c < d; ++c) ex[c] = ex[c] + ek * wk[c];
  }
  for (int64_t c = 0; c < d; ++c) pre[c] = pre[c] + ex[c];
}

// prod[c] = w[c] * act(pre[c]) (relu keeps NaN, as the frameworks do).
template <typename T>
ENGINE_INLINE void weighted_act(const T* __restrict pre, const T* __restrict w, T slope, int64_t d,
                                T* __restrict prod) {
  if (slope == 0) {
    for (int64_t c = 0; c < d; ++c) {
      const T p = pre[c];
      prod[c] = w[c] * ((T(0) > p ? T(0) : p) + T(0));  // activate()'s relu
    }
  } else {
    for (int64_t c = 0; c < d; ++c) {
      const T p = pre[c];
      prod[c] = w[c] * (p > 0 ? p : slope * p);
    }
  }
}

// The 16 lanes added pairwise in a fixed tree: lane j with lane j + 8, then j + 4, j + 2,
// j + 1 (a few independent additions instead of a chain of 15).
template <typename T>
ENGINE_INLINE T fold_lanes(T* lane) {
  for (int half = kScoreLanes / 2; half >= 1; half /= 2)
    for (int j = 0; j < half; ++j) lane[j] = lane[j] + lane[j + half];
  return lane[0];
}

// The fixed-order sum of x[0..count): 16 interleaved lanes (c into lane c mod 16, ascending),
// then fold_lanes.
template <typename T>
ENGINE_INLINE T lane_sum(const T* __restrict x, int64_t count) {
  T lane[kScoreLanes] = {};
  int64_t c = 0;
  for (; c + kScoreLanes <= count; c += kScoreLanes)
    for (int j = 0; j < kScoreLanes; ++j) lane[j] = lane[j] + x[c + j];
  for (int j = 0; c < count; ++c, ++j) lane[j] = lane[j] + x[c];
  return fold_lanes(lane);
}

constexpr int64_t kDotBlock = 8;

// out[k] = sum_c x[c] * W[k * d + c] for k < K, each in the fixed order of lane_sum (16
// interleaved lanes, then fold_lanes), the K sums side by side.
template <typename T, int64_t K>
ENGINE_INLINE void lane_dots_fixed(const T* __restrict x, const T* __restrict W, int64_t d, T* __restrict out) {
  T lane[K][kScoreLanes] = {};
  int64_t c = 0;
  for (; c + kScoreLanes <= d; c += kScoreLanes)
    for (int64_t k = 0; k < K; ++k)
      for (int j = 0; j < kScoreLanes; ++j) lane[k][j] = lane[k][j] + x[c + j] * W[k * d + c + j];
  for (int j = 0; c < d; ++c, ++j)
    for (int64_t k = 0; k < K; ++k) lane[k][j] = lane[k][j] + x[c] * W[k * d + c];
  for (int64_t k = 0; k < K; ++k) out[k] = fold_lanes(lane[k]);
}

// lane_dots_fixed for count (1 .. kDotBlock) sums.
template <typename T>
ENGINE_INLINE void lane_dots(const T* __restrict x, const T* __restrict W, int64_t d, int64_t count,
                             T* __restrict out) {
  switch (count) {
    case 1: lane_dots_fixed<T, 1>(x, W, d, out); break;
    case 2: lane_dots_fixed<T, 2>(x, W, d, out); break;
    case 3: lane_dots_fixed<T, 3>(x, W, d, out); break;
    case 4: lane_dots_fixed<T, 4>(x, W, d, out); break;
    case 5: lane_dots_fixed<T, 5>(x, W, d, out); break;
    case 6: lane_dots_fixed<T, 6>(x, W, d, out); break;
    case 7: lane_dots_fixed<T, 7>(x, W, d, out); break;
    default: lane_dots_fixed<T, 8>(x, W, d, out); break;
  }
}

// Messages [lo, hi) forward; buf holds 3 d scratch values.
template <typename T>
ENGINE_INLINE void edge_score_rows_impl(const EdgeScoreArgs<T>& A, int64_t lo, int64_t hi, T* out, T* buf) {
  const int64_t d = A.d, H = A.heads, per_head = d / H;
  T* pre = buf;
  T* ex = buf + d;
  T* prod = buf + 2 * d;
  for (int64_t e = lo; e < hi; ++e) {
    edge_pre(A, e, pre, ex);
    weighted_act(pre, A.w, A.slope, d, prod);
    for (int64_t h = 0; h < H; ++h) out[e * H + h] = lane_sum(prod + h * per_head, per_head) + A.bias[h];
  }
}

template <typename T>
struct GradSlots {  // one message range's accumulators
  T* dS;
  T* dQ;
  T* dWe;
  T* dw;
  T* dbias;
};

// Messages [lo, hi) backward into acc (and G.dEx rows); buf holds 3 d scratch values.
template <typename T>
ENGINE_INLINE void edge_score_grad_rows_impl(const EdgeScoreArgs<T>& A, const T* g, int64_t lo, int64_t hi,
                                             const GradSlots<T>& acc, T* dEx, T* buf) {
  const int64_t d = A.d, fe = A.fe, H = A.heads, per_head = d / H;
  const T slope = A.slope;
  T* __restrict pre = buf;
  T* __restrict t = buf + d;
  T* __restrict scratch = buf + 2 * d;
  for (int64_t e = lo; e < hi; ++e) {
    edge_pre(A, e, pre, scratch);
    for (int64_t h = 0; h < H; ++h) {
      const T gh = g[e * H + h];
      acc.dbias[h] = acc.dbias[h] + gh;
      const int64_t c0 = h * per_head;
      T* __restrict dw = acc.dw + c0;
      const T* __restrict w = A.w + c0;
      const T* __restrict p = pre + c0;
      T* __restrict th = t + c0;
      if (slope == 0) {
        for (int64_t c = 0; c < per_head; ++c) {
          const T pc = p[c];
          dw[c] = dw[c] + gh * ((pc > 0 || pc != pc) ? pc : T(0));
          th[c] = pc > 0 ? gh * w[c] : T(0);
        }
      } else {
        for (int64_t c = 0; c < per_head; ++c) {
          const T pc = p[c];
          dw[c] = dw[c] + gh * (pc > 0 ? pc : slope * pc);
          const T gw = gh * w[c];
          th[c] = pc > 0 ? gw : gw * slope;
        }
      }
    }
    T* __restrict ds = acc.dS + A.src[e] * d;
    for (int64_t c = 0; c < d; ++c) ds[c] = ds[c] + t[c];
    T* __restrict dq = acc.dQ + A.pos[e] * d;
    for (int64_t c = 0; c < d; ++c) dq[c] = dq[c] + t[c];
    if (fe == 0) continue;
    T* dex = dEx + e * fe;
    const int64_t row = A.eid[e];
    if (row < 0) {
      for (int64_t k = 0; k < fe; ++k) dex[k] = T(0);
      continue;
    }
    const T* erow = A.E + row * fe;
    for (int64_t k = 0; k < fe; ++k) {
      const T ek = erow[k];
      T* __restrict dwk = acc.dWe + k * d;
      for (int64_t c = 0; c < d; ++c) dwk[c] = dwk[c] + ek * t[c];
    }
    for (int64_t k0 = 0; k0 < fe; k0 += kDotBlock)
      lane_dots(t, A.We + k0 * d, d, std::min<int64_t>(kDotBlock, fe - k0), dex + k0);
  }
}

// One definition per element type, compiled for several instruction sets (target_clones does
// not apply to templates); the arithmetic is the same sequence of IEEE operations on each.
#define ENGINE_DEFINE_EDGE_SCORE_LOOPS(T)                                                                     \
  ENGINE_ISA_CLONES static void edge_score_rows(const EdgeScoreArgs<T>& A, int64_t lo, int64_t hi, T* out,  \
                                                T* buf) {                                                  \
    edge_score_rows_impl<T>(A, lo, hi, out, buf);                                                           \
  }                                                                                                         \
  ENGINE_ISA_CLONES static void edge_score_grad_rows(const EdgeScoreArgs<T>& A, const T* g, int64_t lo,     \
                                                     int64_t hi, const GradSlots<T>& acc, T* dEx, T* buf) { \
    edge_score_grad_rows_impl<T>(A, g, lo, hi, acc, dEx, buf);                                              \
  }
ENGINE_DEFINE_EDGE_SCORE_LOOPS(float)
ENGINE_DEFINE_EDGE_SCORE_LOOPS(double)
#undef ENGINE_DEFINE_EDGE_SCORE_LOOPS

inline int score_threads(int threads, int64_t messages) {
  // below a few hundred messages per thread a thread costs more than it saves
  const int64_t most = std::max<int64_t>(1, messages / 256);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, most)));
}

}  // namespace detail

// out (messages x heads) as in the contract.
template <typename T>
void edge_score_forward(const EdgeScoreArgs<T>& A, T* out, int threads) {
  const int nt = detail::score_threads(threads, A.messages);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int tid = 0;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
#endif
    std::vector<T> buf(static_cast<size_t>(3 * A.d));
    detail::edge_score_rows(A, A.messages * tid / nt, A.messages * (tid + 1) / nt, out, buf.data());
  }
}

template <typename T>
struct EdgeScoreGrads {
  T* dS = nullptr;     // n x d, overwritten
  T* dQ = nullptr;     // n x d, overwritten
  T* dWe = nullptr;    // fe x d, overwritten
  T* dEx = nullptr;    // messages x fe, overwritten (0 where eid < 0)
  T* dw = nullptr;     // d, overwritten
  T* dbias = nullptr;  // heads, overwritten
};

template <typename T>
void edge_score_backward(const EdgeScoreArgs<T>& A, const T* g, const EdgeScoreGrads<T>& G, int threads) {
  const int64_t d = A.d, fe = A.fe, H = A.heads;
  const int nt = detail::score_threads(threads, A.messages);
  const size_t node_size = static_cast<size_t>(A.n * d);
  ThreadPartials<T> acc({{G.dS, node_size}, {G.dQ, node_size}, {G.dWe, static_cast<size_t>(fe * d)},
                         {G.dw, static_cast<size_t>(d)}, {G.dbias, static_cast<size_t>(H)}},
                        nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int tid = 0;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
#endif
    std::vector<T> buf(static_cast<size_t>(3 * d));
    const detail::GradSlots<T> slots{acc.part(tid, 0), acc.part(tid, 1), acc.part(tid, 2), acc.part(tid, 3),
                                     acc.part(tid, 4)};
    detail::edge_score_grad_rows(A, g, A.messages * tid / nt, A.messages * (tid + 1) / nt, slots, G.dEx,
                                 buf.data());
  }
  acc.add_ranges();
}

}  // namespace engine
