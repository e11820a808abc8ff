// engine/message_passing.h - the fused sparse message-passing kernel.
//
// Pure C++17, no Python headers. One call performs, for every destination node v of a
// CSR-by-destination graph, the message MLP on each in-edge (u -> v) (and on a virtual
// self-edge when asked), and reduces the messages per channel group. The m x k message
// tensor is never built: each destination row is processed by one thread from start to
// end, in a fixed order (self first, then in-edges in CSR order), so results do not
// depend on the thread count and there are no atomics.
//
// Floating point: plain IEEE arithmetic in the element type T (float or double), no
// fast-math, no FMA contraction (the build passes -ffp-contract=off). The evaluation order
// of every sum is documented below and shared with the Python backends.
#pragma once

#include <cstdint>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/registry.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace engine {

// One dense layer applied to every message after the first (by-parts) layer:
// y[o] = act( (sum_i x[i] * W[i * out + o], i ascending) + b[o] ).
template <typename T>
struct DenseLayer {
  const T* weight = nullptr;  // in x out, row-major
  const T* bias = nullptr;    // out
  int64_t in = 0;
  int64_t out = 0;
  Activation act = Activation::Identity;
};

// A contiguous range [start, stop) of message channels reduced with one kind.
// ArgMax/ArgMin: channel `start` is the key; the winner's channels [start, stop) are
// copied (key and payload); the winner is the message with the largest (smallest) key,
// ties going to the lowest source index (the self message counts as source v). A NaN key
// never wins.
struct Group {
  Reduce kind = Reduce::Sum;
  int64_t start = 0;
  int64_t stop = 0;
};

template <typename T>
struct EdgePassArgs {
  int64_t num_nodes = 0;
  int64_t num_edges = 0;
  const int64_t* indptr = nullptr;   // n + 1, non-decreasing, indptr[0] = 0, indptr[n] = m
  const int32_t* indices = nullptr;  // m sources, each in [0, n)
  // First message layer, linear by parts: pre[c] = (S[u, c] + Q[v, c]) + sum_j E[e, j] * We[j, c]
  // (j ascending). S and Q are n x k0 (Q already holds the bias). E is m x fe (may be null
  // when fe == 0); the virtual self-edge has all-zero edge features.
  const T* S = nullptr;
  const T* Q = nullptr;
  int64_t k0 = 0;
  const T* E = nullptr;
  const T* We = nullptr;  // fe x k0, row-major
  int64_t fe = 0;
  Activation first_act = Activation::Identity;
  std::vector<DenseLayer<T>> layers;  // applied in order after the first layer
  std::vector<Group> groups;          // cover [0, k_out) without overlap
  bool include_self = false;
  // Outputs. out: n x k_out. winners: n x (number of arg groups), the winning source per
  // arg group in group order, or -1 for a node with no message.
  // Nodes with no message at all (no in-edge, no self) get 0 in every channel.
  T* out = nullptr;
  int32_t* winners = nullptr;
};

// Width of the message after all layers.
template <typename T>
int64_t message_width(const EdgePassArgs<T>& a) {
  return a.layers.empty() ? a.k0 : a.layers.back().out;
}

// Checks shapes and ranges that the kernel relies on; throws std::invalid_argument naming
// the problem. Called by edge_pass before any work; `check_edges` adds the O(n + m) scan
// of indptr and indices (graphs built by engine.Graph are validated at construction).
template <typename T>
void validate(const EdgePassArgs<T>& a, bool check_edges) {
  if (a.num_nodes < 0 || a.num_edges < 0) throw std::invalid_argument("negative graph size");
  if (a.k0 <= 0) throw std::invalid_argument("first message layer must have at least one channel");
  int64_t width = a.k0;
  for (const auto& l : a.layers) {
    if (l.in != width) throw std::invalid_argument("message layer input width does not match the previous layer");
    if (l.out <= 0) throw std::invalid_argument("message layer output width must be positive");
    width = l.out;
  }
  int64_t next = 0;
  for (const auto& g : a.groups) {
    if (g.start != next || g.stop <= g.start) throw std::invalid_argument("groups must tile the message channels in order");
    next = g.stop;
  }
  if (next != width) throw std::invalid_argument("groups must cover every message channel");
  if (a.indptr[0] != 0 || a.indptr[a.num_nodes] != a.num_edges) throw std::invalid_argument("indptr must run from 0 to num_edges");
  if (a.fe > 0 && (a.E == nullptr || a.We == nullptr)) throw std::invalid_argument("edge features missing");
  if (!check_edges) return;
  for (int64_t v = 0; v < a.num_nodes; ++v)
    if (a.indptr[v + 1] < a.indptr[v]) throw std::invalid_argument("indptr must be non-decreasing");
  for (int64_t e = 0; e < a.num_edges; ++e)
    if (a.indices[e] < 0 || a.indices[e] >= a.num_nodes) throw std::invalid_argument("edge source out of range");
}

namespace detail {

template <typename T>
inline T activate(T x, Activation act) {
  // relu keeps NaN (as NumPy and torch do)
  return (act == Activation::Relu) ? ((x > T(0) || x != x) ? x : T(0)) : x;
}

// Per-thread scratch for one destination row.
template <typename T>
struct RowState {
  std::vector<T> buf_a, buf_b, acc;
  std::vector<int64_t> best_src;  // per channel: winner for arg groups (indexed by group start)
  int64_t count = 0;
};

// Compute the message of source u into v, edge e (e < 0: the virtual self-edge).
// Returns a pointer to the k_out message values (inside the scratch buffers).
template <typename T>
inline const T* message(const EdgePassArgs<T>& a, RowState<T>& st, int64_t u, int64_t v, int64_t e) {
  T* x = st.buf_a.data();
  const T* s = a.S + u * a.k0;
  const T* q = a.Q + v * a.k0;
  for (int64_t c = 0; c < a.k0; ++c) x[c] = s[c] + q[c];
  if (e >= 0 && a.fe > 0) {
    const T* ef = a.E + e * a.fe;
    for (int64_t c = 0; c < a.k0; ++c) {
      T t = T(0);
      for (int64_t j = 0; j < a.fe; ++j) t += ef[j] * a.We[j * a.k0 + c];
      x[c] = x[c] + t;
    }
  }
  if (a.first_act != Activation::Identity)
    for (int64_t c = 0; c < a.k0; ++c) x[c] = activate(x[c], a.first_act);
  T* y = st.buf_b.data();
  for (const auto& l : a.layers) {
    for (int64_t o = 0; o < l.out; ++o) y[o] = T(0);
    for (int64_t i = 0; i < l.in; ++i) {
      const T xi = x[i];
      const T* w = l.weight + i * l.out;
      for (int64_t o = 0; o < l.out; ++o) y[o] += xi * w[o];
    }
    for (int64_t o = 0; o < l.out; ++o) y[o] = activate(y[o] + l.bias[o], l.act);
    std::swap(x, y);
  }
  return x;
}

template <typename T>
inline void reduce_into(const EdgePassArgs<T>& a, RowState<T>& st, const T* m, int64_t src, bool first) {
  T* acc = st.acc.data();
  for (const auto& g : a.groups) {
    switch (g.kind) {
      case Reduce::Sum:
      case Reduce::Mean:
        for (int64_t c = g.start; c < g.stop; ++c) acc[c] = first ? m[c] : acc[c] + m[c];
        break;
      case Reduce::Max:
        // NaN-ignoring like numpy.fmax: a NaN accumulator is replaced, a NaN message is not.
        for (int64_t c = g.start; c < g.stop; ++c)
          if (first || m[c] > acc[c] || acc[c] != acc[c]) acc[c] = m[c];
        break;
      case Reduce::Min:
        for (int64_t c = g.start; c < g.stop; ++c)
          if (first || m[c] < acc[c] || acc[c] != acc[c]) acc[c] = m[c];
        break;
      case Reduce::ArgMax:
      case Reduce::ArgMin: {
        const T key = m[g.start];
        if (key != key) break;  // NaN never wins
        int64_t& best = st.best_src[g.start];
        const T cur = acc[g.start];
        const bool better = (best < 0) ||
                            (g.kind == Reduce::ArgMax ? key > cur : key < cur) ||
                            (key == cur && src < best);
        if (better) {
          best = src;
          for (int64_t c = g.start; c < g.stop; ++c) acc[c] = m[c];
        }
        break;
      }
    }
  }
}

}  // namespace detail

// Runs the fused message + aggregation pass described above. Thread-safe for distinct
// outputs; uses the current OpenMP thread count. Throws std::invalid_argument on invalid
// arguments (before writing any output).
template <typename T>
void edge_pass(const EdgePassArgs<T>& a, bool check_edges = false) {
  validate(a, check_edges);
  const int64_t n = a.num_nodes;
  const int64_t k_out = message_width(a);
  int64_t max_width = a.k0;
  for (const auto& l : a.layers) max_width = std::max(max_width, l.out);
  int64_t num_arg = 0;
  for (const auto& g : a.groups)
    if (g.kind == Reduce::ArgMax || g.kind == Reduce::ArgMin) ++num_arg;

#pragma omp parallel
  {
    detail::RowState<T> st;
    st.buf_a.resize(max_width);
    st.buf_b.resize(max_width);
    st.acc.resize(k_out);
    st.best_src.resize(k_out);
#pragma omp for schedule(dynamic, 512)
    for (int64_t v = 0; v < n; ++v) {
      for (const auto& g : a.groups) st.best_src[g.start] = -1;
      int64_t count = 0;
      if (a.include_self) {
        const T* m = detail::message(a, st, v, v, -1);
        detail::reduce_into(a, st, m, v, count == 0);
        ++count;
      }
      for (int64_t e = a.indptr[v]; e < a.indptr[v + 1]; ++e) {
        const int64_t u = a.indices[e];
        const T* m = detail::message(a, st, u, v, e);
        detail::reduce_into(a, st, m, u, count == 0);
        ++count;
      }
      T* out = a.out + v * k_out;
      int64_t arg_slot = 0;
      for (const auto& g : a.groups) {
        const bool is_arg = (g.kind == Reduce::ArgMax || g.kind == Reduce::ArgMin);
        const bool empty = count == 0 || (is_arg && st.best_src[g.start] < 0);
        for (int64_t c = g.start; c < g.stop; ++c) {
          T val = empty ? T(0) : st.acc[c];
          if (!empty && g.kind == Reduce::Mean) val = val / T(count);
          out[c] = val;
        }
        if (is_arg) {
          if (a.winners) a.winners[v * num_arg + arg_slot] = empty ? -1 : static_cast<int32_t>(st.best_src[g.start]);
          ++arg_slot;
        }
      }
    }
  }
}

// Threads used by the kernel (1 without OpenMP).
inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_threads(int n) {
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace engine
