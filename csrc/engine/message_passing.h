// engine/message_passing.h - the fused sparse message-passing kernels.
//
// Pure C++17, no Python headers. For every destination node v of a CSR-by-destination
// graph, the kernels compute the message MLP on each in-edge (u -> v) (and on a virtual
// self-edge when asked) and reduce the messages per channel group; `layer_pass` then runs
// the node's update MLP and gate on the spot. The m x k message tensor is never built: each
// destination row is processed by one thread from start to end, in a fixed order (self
// first, then in-edges in CSR order), so results do not depend on the thread count and
// there are no atomics.
//
// Floating point: plain IEEE arithmetic in the element type T (float or double), no
// fast-math, no FMA contraction (the build passes -ffp-contract=off). The evaluation order
// of every sum is documented below and shared with the Python backends.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/csr.h"
#include "engine/reduce.h"
#include "engine/registry.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace engine {

// Threads used by the kernels (1 without OpenMP).
inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// A dense layer: y[o] = act( (sum_i x[i] * W[i * out + o], i ascending) + b[o] ).
// Rows of W that are entirely zero are skipped (they add exact zeros).
template <typename T>
struct DenseLayer {
  const T* weight = nullptr;  // in x out, row-major
  const T* bias = nullptr;    // out
  int64_t in = 0;
  int64_t out = 0;
  Activation act = Activation::Identity;
};

template <typename T>
struct EdgePassArgs {
  int64_t num_nodes = 0;
  int64_t num_edges = 0;
  const int64_t* indptr = nullptr;   // n + 1, non-decreasing, indptr[0] = 0, indptr[n] = m
  const int32_t* indices = nullptr;  // m sources, each in [0, n)
  // First message layer, linear by parts: pre[c] = (S[u, c] + Q[v, c]) + sum_j E[e, j] * We[j, c]
  // (j ascending). S is n x k0; Q is n x k0, or 1 x k0 shared by every node (q_shared).
  // E is m x fe (null when fe == 0); the virtual self-edge has all-zero edge features, so
  // its edge term is skipped.
  const T* S = nullptr;
  const T* Q = nullptr;
  bool q_shared = false;
  bool S_zero = false;  // promise: S is all zero (the first layer reads no source column)
  int64_t k0 = 0;
  const T* E = nullptr;
  const T* We = nullptr;  // fe x k0, row-major
  int64_t fe = 0;
  Activation first_act = Activation::Identity;
  std::vector<DenseLayer<T>> layers;  // applied in order after the first layer
  std::vector<Group> groups;          // tile [0, k_out) in order, each reduced by its kind (reduce.h)
  bool include_self = false;
  // Rows to compute (null: all n, in order). Outputs are indexed by position in `rows`.
  const int64_t* rows = nullptr;
  int64_t num_rows = 0;
  // Outputs. out: rows x k_out (may be null for layer_pass). winners: rows x (number of
  // arg groups), the winning source per arg group in group order, or -1 for a row with no
  // message. A row with no message at all (no in-edge, no self) gets 0 in every channel.
  T* out = nullptr;
  int32_t* winners = nullptr;
};

// The update of a node after aggregation (layer_pass): an MLP whose first layer is linear
// by parts, y0 = act0( ((z_v @ Wz) + (agg_v @ Wa)) + b0 ) (each product summed with inputs
// ascending), followed by `tail` dense layers, and optionally a layer norm of the result y
// (w channels): mu = (sum_o y[o]) / w, var = (sum_o (y[o] - mu)^2) / w (sums ascending),
// y[o] = ((y[o] - mu) / sqrt(var + kLayerNormEps)) * gamma[o] + beta[o].
inline constexpr double kLayerNormEps = 1e-5;  // = LAYER_NORM_EPS in engine/model/registry.py

template <typename T>
struct NodeMLP {
  const T* Wz = nullptr;  // fz x w0
  const T* Wa = nullptr;  // k_out x w0
  const T* b0 = nullptr;  // w0
  int64_t w0 = 0;
  Activation act0 = Activation::Identity;
  std::vector<DenseLayer<T>> tail;
  const T* ln_gamma = nullptr;  // null: no layer norm
  const T* ln_beta = nullptr;
};

template <typename T>
struct LayerArgs {
  EdgePassArgs<T> edges;
  // z: n x fz, the node inputs of the layer, [h, x]; its first d columns are the state h.
  const T* z = nullptr;
  int64_t fz = 0;
  int64_t d = 0;
  NodeMLP<T> update;  // ends with width d: `new`
  bool gated = false;
  NodeMLP<T> gate;  // ends with width d: g = sigmoid(pre)
  // h'_v = g * new + (1 - g) * h_v when gated, else new; written to out + v * fz (the first
  // d columns of a buffer shaped like z), for every computed row v.
  T* out = nullptr;
  // Change tracking: watch[c] != 0 marks the state channels whose change is counted in the
  // return value; changed[v] (if non-null) is set to 1 when any state channel of row v
  // changed (bitwise inequality, NaN counts as a change), else 0. A change is measured
  // against the row's input state h_v, or, with compare_out, against the value that `out`
  // held before this call (the layer's previous output, for multi-layer active steps).
  bool compare_out = false;
  // Optional: msg_watch[c] (d) marks the state channels the next layer's messages read;
  // msg_changed[v] is set to 1 when one of them changed at row v (else 0).
  const uint8_t* msg_watch = nullptr;
  uint8_t* msg_changed = nullptr;
  // Optional: next_reads[c] (d) marks the state channels the next layer's output depends on
  // in value; a change elsewhere reaches it only through a gate that is exactly 1 there,
  // as 0 * h, which depends on h's sign and finiteness alone. next_changed[v] is set to 1
  // when row v changed in a next_reads channel, or changed sign or finiteness in another
  // (else 0): rows without it leave the next layer's output as it was.
  const uint8_t* next_reads = nullptr;
  uint8_t* next_changed = nullptr;
  const uint8_t* watch = nullptr;
  uint8_t* changed = nullptr;
  // Optional: the aggregates (n x k_out), and the winners of the arg groups (n x their
  // number). Every row that reduces its messages writes its aggregate (and winners) there; a
  // row v with agg_from_store[v] != 0 reads it from there instead of visiting its in-edges
  // (the caller keeps it equal to what the reduction would give).
  T* agg_store = nullptr;
  int32_t* winner_store = nullptr;
  const uint8_t* agg_from_store = nullptr;
};

template <typename T>
int64_t message_width(const EdgePassArgs<T>& a) {
  return a.layers.empty() ? a.k0 : a.layers.back().out;
}

// Checks shapes and ranges that the kernels rely on; throws std::invalid_argument naming
// the problem, before any output is written. `check_edges` adds the O(n + m) scan of indptr
// and indices (validate_csr; graphs built by engine.Graph are validated at construction and
// own frozen copies of their arrays).
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
    if (g.start != next || g.stop - g.start < reduce_info(g.kind).min_size)
      throw std::invalid_argument("groups must tile the message channels in order, each as wide as its kind needs");
    next = g.stop;
  }
  if (next != width) throw std::invalid_argument("groups must cover every message channel");
  if (a.indptr[0] != 0 || a.indptr[a.num_nodes] != a.num_edges) throw std::invalid_argument("indptr must run from 0 to num_edges");
  if (a.fe > 0 && (a.E == nullptr || a.We == nullptr)) throw std::invalid_argument("edge features missing");
  if (a.rows)
    for (int64_t i = 0; i < a.num_rows; ++i)
      if (a.rows[i] < 0 || a.rows[i] >= a.num_nodes) throw std::invalid_argument("row index out of range");
  if (check_edges) validate_csr(a.num_nodes, a.num_edges, a.indptr, a.indices);
}

namespace detail {

// Whether 0 * a and 0 * b are the same bits: both finite with the same sign.
template <typename T>
inline bool same_zero_product(T a, T b) {
  return std::isfinite(a) && std::isfinite(b) && std::signbit(a) == std::signbit(b);
}

// 1 / (1 + exp(-x)), returning the saturated values without calling exp where they are
// already exact (float: x > 20 gives 1, x < -89 gives 0; double: 40 and -710), which
// avoids libm's slow overflow/underflow paths. The result is the same bits either way.
template <typename T>
inline T sigmoid(T x) {
  constexpr bool is_float = sizeof(T) == 4;
  const T hi = is_float ? T(20) : T(40);
  const T lo = is_float ? T(-89) : T(-710);
  if (x > hi) return T(1);
  if (x < lo) return T(0);
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
inline T activate(T x, Activation act) {
  // relu keeps NaN (as NumPy and torch do) and maps -0 to +0: (0 > x ? 0 : x) keeps NaN
  // and -0, and adding +0 turns -0 into +0 and changes no other value. Written so because it
  // compiles to a max and an add: the select "x if x > 0 or x is NaN, else 0" compiled to
  // branches, mispredicted on every other message of an edge score.
  return (act == Activation::Relu) ? ((T(0) > x ? T(0) : x) + T(0)) : x;
}

// The inner product loop of a dense layer, y[o] += x[i] * W[i, o] over inputs i ascending
// (rows flagged in zero_row skipped). Compiled for several instruction sets and chosen at
// load time (GCC target_clones): the loop vectorises across outputs o, so every y[o] is the
// same sequence of IEEE multiplications and additions on every clone (no FMA: the build
// passes -ffp-contract=off), and results do not depend on the machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define ENGINE_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ENGINE_ISA_CLONES
#endif

// Y[r] += X[r] @ W for R messages (rows of X and Y): blocks of R messages x kCols outputs stay
// in registers while the inputs stream by, so each weight row is read once per block and no
// partial sum goes to memory; every Y[r][o] gets one multiplication and one addition per input
// i, ascending, as in dense_accumulate (the same bits). Inlined into each ISA clone below.
template <typename T, int64_t R>
ENGINE_INLINE void dense_block(const T* __restrict W, const char* zero_row, int64_t in, int64_t out,
                               const T* __restrict X, T* __restrict Y) {
  constexpr int64_t kCols = 64 / sizeof(T) * 2;  // two 512-bit vectors (measured: 8 x 32 floats best)
  int64_t o0 = 0;
  for (; o0 + kCols <= out; o0 += kCols) {
    T acc[R][kCols];
    for (int64_t r = 0; r < R; ++r)
      for (int64_t o = 0; o < kCols; ++o) acc[r][o] = Y[r * out + o0 + o];
    for (int64_t i = 0; i < in; ++i) {
      if (zero_row[i]) continue;
      const T* __restrict w = W + i * out + o0;
      for (int64_t r = 0; r < R; ++r) {
        const T xri = X[r * in + i];
        for (int64_t o = 0; o < kCols; ++o) acc[r][o] += xri * w[o];
      }
    }
    for (int64_t r = 0; r < R; ++r)
      for (int64_t o = 0; o < kCols; ++o) Y[r * out + o0 + o] = acc[r][o];
  }
  if (o0 == out) return;
  if (out - o0 == 1) {  // one column left (a score): its R sums in registers, not in Y
    T acc[R];
    for (int64_t r = 0; r < R; ++r) acc[r] = Y[r * out + o0];
    for (int64_t i = 0; i < in; ++i) {
      if (zero_row[i]) continue;
      const T wi = W[i * out + o0];
      for (int64_t r = 0; r < R; ++r) acc[r] += X[r * in + i] * wi;
    }
    for (int64_t r = 0; r < R; ++r) Y[r * out + o0] = acc[r];
    return;
  }
  for (int64_t i = 0; i < in; ++i) {
    if (zero_row[i]) continue;
    const T* __restrict w = W + i * out;
    for (int64_t r = 0; r < R; ++r) {
      const T xri = X[r * in + i];
      T* __restrict yr = Y + r * out;
      for (int64_t o = o0; o < out; ++o) yr[o] += xri * w[o];
    }
  }
}

// One definition per element type (target_clones does not apply to templates).
#define ENGINE_DEFINE_DENSE_LOOPS(T)                                                                         \
  ENGINE_ISA_CLONES static void dense_accumulate(const T* __restrict W, const char* zero_row, int64_t in,   \
                                                 int64_t out, const T* __restrict x, T* __restrict y) {    \
    /* outputs in blocks whose accumulators stay in registers while the inputs stream by */               \
    constexpr int64_t kBlock = 64 / sizeof(T) * 4;                                                          \
    int64_t o0 = 0;                                                                                         \
    for (; o0 + kBlock <= out; o0 += kBlock) {                                                              \
      T acc[kBlock];                                                                                        \
      for (int64_t o = 0; o < kBlock; ++o) acc[o] = y[o0 + o];                                              \
      for (int64_t i = 0; i < in; ++i) {                                                                    \
        if (zero_row[i]) continue;                                                                          \
        const T xi = x[i];                                                                                  \
        const T* __restrict w = W + i * out + o0;                                                           \
        for (int64_t o = 0; o < kBlock; ++o) acc[o] += xi * w[o];                                           \
      }                                                                                                     \
      for (int64_t o = 0; o < kBlock; ++o) y[o0 + o] = acc[o];                                              \
    }                                                                                                       \
    for (int64_t i = 0; i < in; ++i) {                                                                      \
      if (zero_row[i]) continue;                                                                            \
      const T xi = x[i];                                                                                    \
      const T* __restrict w = W + i * out;                                                                  \
      for (int64_t o = o0; o < out; ++o) y[o] += xi * w[o];                                                 \
    }                                                                                                       \
  }                                                                                                         \
  /* Y[j] += X[j] @ W for `rows` messages at once (row-major), in blocks of 8, 4 and 1 messages      \
     (dense_block); for every (j, o) the sum runs over i ascending, as above. */                        \
  ENGINE_ISA_CLONES static void dense_accumulate_tile(const T* __restrict W, const char* zero_row,           \
                                                      int64_t in, int64_t out, int64_t rows,                \
                                                      const T* __restrict X, T* __restrict Y) {             \
    int64_t j = 0;                                                                                          \
    for (; j + 8 <= rows; j += 8) dense_block<T, 8>(W, zero_row, in, out, X + j * in, Y + j * out);          \
    for (; j + 4 <= rows; j += 4) dense_block<T, 4>(W, zero_row, in, out, X + j * in, Y + j * out);          \
    for (; j < rows; ++j) dense_block<T, 1>(W, zero_row, in, out, X + j * in, Y + j * out);                  \
  }                                                                                                         \
  /* Y[j][o] = sum over the nonzero weights k of column o (inputs ascending) of Xt[idx[k]][j] * val[k],  \
     for the kLanes messages of a transposed tile (Xt: inputs x kLanes); each sum starts from +0. */      \
  ENGINE_ISA_CLONES static void sparse_columns_tile(const int64_t* __restrict ptr, const int32_t* __restrict idx, \
                                                    const T* __restrict val, int64_t out, int64_t rows,     \
                                                    const T* __restrict Xt, T* __restrict Y) {              \
    constexpr int64_t kLanes = 16;                                                                          \
    for (int64_t o = 0; o < out; ++o) {                                                                     \
      T acc[kLanes];                                                                                        \
      for (int64_t j = 0; j < kLanes; ++j) acc[j] = T(0);                                                   \
      for (int64_t k = ptr[o]; k < ptr[o + 1]; ++k) {                                                       \
        const T w = val[k];                                                                                 \
        const T* __restrict x = Xt + static_cast<int64_t>(idx[k]) * kLanes;                                 \
        for (int64_t j = 0; j < kLanes; ++j) acc[j] += x[j] * w;                                            \
      }                                                                                                     \
      for (int64_t j = 0; j < rows; ++j) Y[j * out + o] = acc[j];                                           \
    }                                                                                                       \
  }                                                                                                         \
  /* A wide first message layer, x = act(s + q + t) with t = e @ We (fe values of e; no edge term     \
     when fe == 0): first_layer's arithmetic, vectorised across channels (t: k0 values of scratch). */   \
  ENGINE_ISA_CLONES static void first_layer_wide(const T* __restrict s, const T* __restrict q,              \
                                                 const T* __restrict e, const T* __restrict We, int64_t fe,  \
                                                 int64_t k0, bool relu, T* __restrict t, T* __restrict x) { \
    for (int64_t c = 0; c < k0; ++c) x[c] = s[c] + q[c];                                                    \
    if (fe > 0) {                                                                                           \
      for (int64_t c = 0; c < k0; ++c) t[c] = T(0);                                                         \
      for (int64_t j = 0; j < fe; ++j) {                                                                    \
        const T ej = e[j];                                                                                  \
        const T* __restrict w = We + j * k0;                                                                \
        for (int64_t c = 0; c < k0; ++c) t[c] += ej * w[c];                                                 \
      }                                                                                                     \
      for (int64_t c = 0; c < k0; ++c) x[c] = x[c] + t[c];                                                  \
    }                                                                                                       \
    if (relu)                                                                                               \
      for (int64_t c = 0; c < k0; ++c) x[c] = (T(0) > x[c] ? T(0) : x[c]) + T(0);                           \
  }                                                                                                         \
  /* Y[j] = act(Y[j] + b) for `rows` rows of `out` values: activate()'s arithmetic, vectorised. */         \
  ENGINE_ISA_CLONES static void bias_activate_rows(T* __restrict Y, const T* __restrict b, int64_t rows,    \
                                                   int64_t out, bool relu) {                                \
    for (int64_t j = 0; j < rows; ++j) {                                                                    \
      T* __restrict y = Y + j * out;                                                                        \
      if (relu) {                                                                                           \
        for (int64_t o = 0; o < out; ++o) {                                                                 \
          const T v = y[o] + b[o];                                                                          \
          y[o] = (T(0) > v ? T(0) : v) + T(0);                                                              \
        }                                                                                                   \
      } else {                                                                                              \
        for (int64_t o = 0; o < out; ++o) y[o] = y[o] + b[o];                                               \
      }                                                                                                     \
    }                                                                                                       \
  }

ENGINE_DEFINE_DENSE_LOOPS(float)
ENGINE_DEFINE_DENSE_LOOPS(double)
#undef ENGINE_DEFINE_DENSE_LOOPS

// Layers at least this wide use the ISA-dispatched loops; narrower ones stay inline.
constexpr int64_t kWideLayer = 16;

// y = act(x @ W + b), skipping all-zero rows of W.
template <typename T>
inline void dense(const DenseLayer<T>& l, const std::vector<char>& zero_row, const T* x, T* y) {
  for (int64_t o = 0; o < l.out; ++o) y[o] = T(0);
  if (l.out >= kWideLayer) {
    dense_accumulate(l.weight, zero_row.data(), l.in, l.out, x, y);
  } else {
    for (int64_t i = 0; i < l.in; ++i) {
      if (zero_row[i]) continue;
      const T xi = x[i];
      const T* w = l.weight + i * l.out;
      for (int64_t o = 0; o < l.out; ++o) y[o] += xi * w[o];
    }
  }
  for (int64_t o = 0; o < l.out; ++o) y[o] = activate(y[o] + l.bias[o], l.act);
}

template <typename T>
std::vector<char> zero_rows(const T* W, int64_t in, int64_t out) {
  std::vector<char> z(static_cast<size_t>(in), 1);
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o)
      if (W[i * out + o] != T(0)) { z[i] = 0; break; }
  return z;
}

// A dense message layer whose weights are mostly zero (GATv2's score and value selection,
// compiled weights in a learned architecture), by output column: column o's nonzero weights
// are val[ptr[o]:ptr[o + 1]], at inputs idx[...] ascending. A product with a zero weight adds
// +0 or -0 to a sum that starts at +0, so it changes no bit, unless its input is infinite or
// NaN (0 * inf = NaN): where every input of a tile of messages is finite, the sums over the
// nonzero weights alone are dense_accumulate_tile's bits (reduce_row_tiled checks, and runs the
// dense loop otherwise).
template <typename T>
struct SparseColumns {
  bool use = false;
  std::vector<int64_t> ptr;
  std::vector<int32_t> idx;
  std::vector<T> val;
  // Used for layers of at least 4096 weights of which at most one in eight is nonzero.
  static SparseColumns build(const DenseLayer<T>& l) {
    SparseColumns c;
    if (l.in * l.out < 4096 || l.in > std::numeric_limits<int32_t>::max()) return c;
    int64_t nnz = 0;
    for (int64_t j = 0; j < l.in * l.out; ++j) nnz += l.weight[j] != T(0) ? 1 : 0;
    if (nnz * 8 > l.in * l.out) return c;
    c.use = true;
    c.ptr.assign(static_cast<size_t>(l.out + 1), 0);
    for (int64_t o = 0; o < l.out; ++o) {
      for (int64_t i = 0; i < l.in; ++i) {
        const T w = l.weight[i * l.out + o];
        if (w == T(0)) continue;
        c.idx.push_back(static_cast<int32_t>(i));
        c.val.push_back(w);
      }
      c.ptr[static_cast<size_t>(o + 1)] = static_cast<int64_t>(c.idx.size());
    }
    return c;
  }
};

// Shared, read-only per-call tables.
template <typename T>
struct Plan {
  std::vector<std::vector<char>> layer_zero;
  std::vector<SparseColumns<T>> layer_sparse;  // per message layer (use = false: dense)
  int64_t k_out = 0, width = 0, num_arg = 0;
  // The message does not depend on the source or the edge (S all zero, no edge term): every
  // message of a row equals the self message, so the row reduces without visiting edges.
  bool source_free = false;
  // Where the message is its first layer alone and every group is a max or a min, with at
  // most one argmax or argmin group: per channel, +1 (max, argmax) or -1 (min, argmin), so
  // that a row reduces as maxima over sign-flipped messages (reduce_row_extremum); empty
  // otherwise. The arg group's channels, if any: [arg_lo, arg_hi).
  std::vector<T> extremum_sign;
  int64_t arg_lo = 0, arg_hi = 0;

  explicit Plan(const EdgePassArgs<T>& a) {
    k_out = message_width(a);
    width = a.k0;
    for (const auto& l : a.layers) {
      width = std::max(width, l.out);
      layer_zero.push_back(zero_rows(l.weight, l.in, l.out));
      layer_sparse.push_back(SparseColumns<T>::build(l));
    }
    source_free = a.S_zero;
    if (source_free && a.fe > 0)
      for (int64_t j = 0; j < a.fe * a.k0; ++j) source_free = source_free && a.We[j] == T(0);
    for (const auto& g : a.groups) num_arg += is_arg(g.kind) ? 1 : 0;
    bool extremum = a.layers.empty() && !a.groups.empty() && num_arg <= 1;
    for (const auto& g : a.groups) extremum = extremum && g.kind != Reduce::Sum && g.kind != Reduce::Mean &&
                                              g.kind != Reduce::Softmax;
    if (extremum) {
      extremum_sign.assign(static_cast<size_t>(k_out), T(1));
      for (const auto& g : a.groups) {
        const bool lower = g.kind == Reduce::Min || g.kind == Reduce::ArgMin;
        for (int64_t c = g.start; c < g.stop; ++c) extremum_sign[static_cast<size_t>(c)] = lower ? T(-1) : T(1);
        if (is_arg(g.kind)) {
          arg_lo = g.start;
          arg_hi = g.stop;
        }
      }
    }
  }
};

// Per-thread scratch.
// Sizes are padded to whole cache lines so that two threads' buffers never share one.
template <typename T>
struct Scratch {
  static constexpr int64_t kPad = 64;
  static constexpr int64_t kTile = 16;  // messages whose dense layers are computed together
  static constexpr int64_t kRowsTile = 64;  // the same across rows (reduce_rows_tiled)
  std::vector<T> xa, xb, acc, agg, tt, den, ra, rb;
  std::vector<int64_t> best, rsrc, rrow;
  Scratch(int64_t width, int64_t k_out)
      : xa(width + kPad), xb(width + kPad), acc(k_out + kPad), agg(k_out + kPad), tt(kTile * width + kPad),
        den(k_out + kPad), best(k_out + kPad) {}
  // reduce_rows_tiled's buffers, allocated on its first use
  void reserve_rows_tile(int64_t width) {
    if (!rsrc.empty()) return;
    ra.assign(static_cast<size_t>(kRowsTile * width + kPad), T(0));
    rb.assign(static_cast<size_t>(kRowsTile * width + kPad), T(0));
    rsrc.assign(kRowsTile, 0);
    rrow.assign(kRowsTile, 0);
  }
};

// The message whose first-layer terms S[u] + Q[v] are in s.xa (k0 values), after the edge
// term (edge e; e < 0: none, the self-edge), the activation and the dense layers, into s.xa
// or s.xb; returns the buffer holding it. Loops run over channels so they vectorise.
template <typename T>
inline const T* message_rest(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t e) {
  const int64_t k = a.k0;
  T* x = s.xa.data();
  if (e >= 0 && a.fe > 0) {
    // t[c] = sum_j e_j * We[j, c] (j ascending), then x[c] + t[c]
    T* __restrict t = s.xb.data();
    const T* __restrict ef = a.E + e * a.fe;
    for (int64_t c = 0; c < k; ++c) t[c] = T(0);
    for (int64_t j = 0; j < a.fe; ++j) {
      const T ej = ef[j];
      const T* __restrict w = a.We + j * k;
      for (int64_t c = 0; c < k; ++c) t[c] += ej * w[c];
    }
    for (int64_t c = 0; c < k; ++c) x[c] = x[c] + t[c];
  }
  if (a.first_act == Activation::Relu)
    for (int64_t c = 0; c < k; ++c) x[c] = activate(x[c], Activation::Relu);
  T* y = s.xb.data();
  for (size_t li = 0; li < a.layers.size(); ++li) {
    dense(a.layers[li], p.layer_zero[li], x, y);
    std::swap(x, y);
  }
  return x;
}

// The message from source part su (k0 values, a row of S) into destination part q (a row of
// Q) along edge e (e < 0: the self-edge, no edge term).
template <typename T>
inline const T* message_from_parts(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, const T* su,
                                   const T* q, int64_t e) {
  T* x = s.xa.data();
  for (int64_t c = 0; c < a.k0; ++c) x[c] = su[c] + q[c];
  return message_rest(a, p, s, e);
}

// The message of source u into v along edge e (self: the virtual self-edge).
template <typename T>
inline const T* message(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t u, int64_t v,
                        int64_t e, bool self) {
  return message_from_parts(a, p, s, a.S + u * a.k0, a.Q + (a.q_shared ? 0 : v * a.k0), self ? -1 : e);
}

// Take message m from source u into the row accumulators r: the row's first message (first)
// initialises them, a later one is folded in, group by group with its kind's policy.
template <typename T>
ENGINE_INLINE void absorb(const std::vector<Group>& groups, RowAccumulator<T> r, const T* m, int64_t u, bool first) {
  for (const auto& g : groups)
    dispatch_reduce(g.kind, [&](auto kind) {
      using P = Reducer<T, decltype(kind)::value>;
      if (first) P::first(r, m, g.start, g.stop, u);
      else P::fold(r, m, g.start, g.stop, u);
    });
}

// Take a tile of cnt consecutive messages of the row (X: cnt x width, their sources U) into
// the row accumulators: group by group, each group's policy folding the tile's messages in row
// order (the groups are independent, so this equals absorb message by message); `first`: the
// tile starts the row.
template <typename T>
ENGINE_INLINE void absorb_tile(const std::vector<Group>& groups, RowAccumulator<T> r, const T* X, int64_t width,
                               const int64_t* U, int64_t cnt, bool first) {
  for (const auto& g : groups)
    dispatch_reduce(g.kind, [&](auto kind) {
      using P = Reducer<T, decltype(kind)::value>;
      int64_t j = 0;
      if (first) P::first(r, X, g.start, g.stop, U[j++]);
      for (; j < cnt; ++j) P::fold(r, X + j * width, g.start, g.stop, U[j]);
    });
}

// Write the aggregate of a row's count messages to agg (0 for an empty row or group) and its
// arg winners (-1: none); returns count.
template <typename T>
ENGINE_INLINE int64_t finish_row(const std::vector<Group>& groups, RowAccumulator<T> r, int64_t count, T* agg,
                          int32_t* winners) {
  int64_t slot = 0;
  for (const auto& g : groups) {
    int32_t winner = -1;
    if (count == 0) {
      for (int64_t c = g.start; c < g.stop; ++c) agg[c] = T(0);
    } else {
      winner = dispatch_reduce(g.kind, [&](auto kind) {
        return Reducer<T, decltype(kind)::value>::finish(r, g.start, g.stop, count, agg);
      });
    }
    if (is_arg(g.kind)) {
      if (winners) winners[slot] = winner;
      ++slot;
    }
  }
  return count;
}

template <typename T>
inline RowAccumulator<T> accumulator(Scratch<T>& s) {
  return {s.acc.data(), s.best.data(), s.den.data()};
}

// Xt[i][j] = X[j][i] for the cnt messages of a tile (X: cnt x in; Xt: in x Scratch::kTile,
// lanes from cnt on zero); returns whether every value is finite (else Xt is unusable).
template <typename T>
inline bool transpose_if_finite(const T* __restrict X, int64_t cnt, int64_t in, T* __restrict Xt) {
  constexpr int64_t kLanes = Scratch<T>::kTile;
  static_assert(kLanes == 16, "sparse_columns_tile computes 16 messages at a time");
  bool finite = true;
  for (int64_t j = 0; j < cnt; ++j) {
    const T* x = X + j * in;
    T bad = T(0);
    for (int64_t i = 0; i < in; ++i) bad += x[i] - x[i];  // NaN as soon as one value is inf or NaN
    finite = finite && bad == T(0);
  }
  if (!finite) return false;
  for (int64_t i = 0; i < in; ++i) {
    T* t = Xt + i * kLanes;
    for (int64_t j = 0; j < cnt; ++j) t[j] = X[j * in + i];
    for (int64_t j = cnt; j < kLanes; ++j) t[j] = T(0);
  }
  return true;
}

// The first message layer of source u into a row whose destination part is q, along edge e
// (e < 0: the self-edge, no edge term): x = act(S[u] + q + E[e] @ We), k0 values.
template <typename T>
ENGINE_INLINE void first_layer(const EdgePassArgs<T>& a, Scratch<T>& s, int64_t u, const T* q, int64_t e, T* x) {
  const int64_t k0 = a.k0;
  const T* su = a.S + u * k0;
  if (k0 >= kWideLayer) {  // learned widths: the ISA-dispatched loop, the same arithmetic
    const bool edge = e >= 0 && a.fe > 0;
    first_layer_wide(su, q, edge ? a.E + e * a.fe : nullptr, a.We, edge ? a.fe : 0, k0,
                     a.first_act == Activation::Relu, s.xb.data(), x);
    return;
  }
  for (int64_t c = 0; c < k0; ++c) x[c] = su[c] + q[c];
  if (e >= 0 && a.fe > 0) {
    T* t = s.xb.data();
    const T* ef = a.E + e * a.fe;
    for (int64_t c = 0; c < k0; ++c) t[c] = T(0);
    for (int64_t jj = 0; jj < a.fe; ++jj) {
      const T ej = ef[jj];
      const T* w = a.We + jj * k0;
      for (int64_t c = 0; c < k0; ++c) t[c] += ej * w[c];
    }
    for (int64_t c = 0; c < k0; ++c) x[c] = x[c] + t[c];
  }
  if (a.first_act == Activation::Relu)
    for (int64_t c = 0; c < k0; ++c) x[c] = activate(x[c], Activation::Relu);
}

// The dense message layers over cnt messages (X: cnt x k0, Y: scratch as large), each layer
// computed over the messages together, in tiles of Scratch::kTile where the layer is sparse
// (a tile with a non-finite input takes the dense loop); returns the buffer holding the
// messages and their width in *width.
template <typename T>
inline T* dense_layers_tile(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, T* X, T* Y, int64_t cnt,
                            int64_t* width) {
  constexpr int64_t kLanes = Scratch<T>::kTile;
  *width = a.k0;
  for (size_t li = 0; li < a.layers.size(); ++li) {
    const auto& l = a.layers[li];
    const SparseColumns<T>& sc = p.layer_sparse[li];
    for (int64_t j0 = 0; j0 < cnt; j0 += sc.use ? kLanes : cnt) {
      const int64_t c = sc.use ? std::min(kLanes, cnt - j0) : cnt;
      const T* Xj = X + j0 * l.in;
      T* Yj = Y + j0 * l.out;
      if (sc.use && transpose_if_finite(Xj, c, l.in, s.tt.data())) {
        sparse_columns_tile(sc.ptr.data(), sc.idx.data(), sc.val.data(), l.out, c, s.tt.data(), Yj);
      } else {
        for (int64_t j = 0; j < c * l.out; ++j) Yj[j] = T(0);
        dense_accumulate_tile(l.weight, p.layer_zero[li].data(), l.in, l.out, c, Xj, Yj);
      }
    }
    if (l.out >= kWideLayer) {
      bias_activate_rows(Y, l.bias, cnt, l.out, l.act == Activation::Relu);
    } else {
      for (int64_t j = 0; j < cnt; ++j)
        for (int64_t o = 0; o < l.out; ++o) Y[j * l.out + o] = activate(Y[j * l.out + o] + l.bias[o], l.act);
    }
    std::swap(X, Y);
    *width = l.out;
  }
  return X;
}

// The messages of several rows in row order, each row's in reduce_row's order (the self-edge
// first, then the in-edges in CSR order): the cursor stands on one message, or past the last
// row.
template <typename T>
struct MessageCursor {
  const EdgePassArgs<T>& a;
  const int64_t* vs;
  int64_t rows, j = -1, e = 0, end = 0, row_begin = 0;
  MessageCursor(const EdgePassArgs<T>& args, const int64_t* rows_v, int64_t num_rows)
      : a(args), vs(rows_v), rows(num_rows) {
    next_row();
  }
  bool valid() const { return j < rows; }
  bool self() const { return e < row_begin; }
  int64_t source() const { return self() ? vs[j] : a.indices[e]; }
  void next() {
    if (++e >= end) next_row();
  }

 private:
  void next_row() {
    while (++j < rows) {
      row_begin = a.indptr[vs[j]];
      e = a.include_self ? row_begin - 1 : row_begin;
      end = a.indptr[vs[j] + 1];
      if (e < end) return;
    }
  }
};

// Whether reduce_any reduces a row with reduce_row_tiled (the message has dense layers past
// the first, and no specialised reducer applies).
template <typename T>
inline bool reduces_tiled(const EdgePassArgs<T>& a, const Plan<T>& p) {
  if (p.source_free || a.layers.empty()) return false;
  const bool score = a.layers.size() == 1 && a.layers[0].out == 1;
  return !(score && (a.k0 == 1 || a.k0 == 2 || a.k0 == 4 || a.k0 == 8));
}

// Reduce the messages of `rows` rows vs[0..rows) whose messages have dense layers past the
// first: their messages, in row order, fill tiles of up to Scratch::kRowsTile messages that
// span rows, so that the dense layers run over whole blocks of messages (a row of 11
// messages alone would leave 3 to single-message blocks) and the sources' state rows are
// prefetched ahead across rows. Row j's aggregate goes to agg[j] and its winners to
// winners[j] (null: not kept). Each output of each message is its own sum over the inputs
// ascending and each row folds its messages in its own order (reduce_row's), so a row gets
// the same bits whatever rows share its tiles.
template <typename T>
inline void reduce_rows_tiled(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, const int64_t* vs,
                              int64_t rows, T* const* agg, int32_t* const* winners) {
  constexpr int64_t kTile = Scratch<T>::kRowsTile;
  constexpr int64_t kAheadMessages = 24;  // a state row from memory takes some dozen messages' time
  const int64_t k0 = a.k0;
  s.reserve_rows_tile(p.width);
  const RowAccumulator<T> r = accumulator(s);
  MessageCursor<T> fill(a, vs, rows), ahead(a, vs, rows);
  auto prefetch_next = [&]() {
    if (!ahead.valid()) return;
    const T* row = a.S + ahead.source() * k0;
    for (int64_t off = 0; off < k0; off += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(row + off);
    ahead.next();
  };
  for (int64_t t = 0; t < kAheadMessages; ++t) prefetch_next();
  int64_t open = 0, count = 0;  // the first unfinished row and the messages folded into it
  while (fill.valid()) {
    T* X = s.ra.data();
    int64_t cnt = 0;
    for (; cnt < kTile && fill.valid(); ++cnt, fill.next()) {
      prefetch_next();
      const int64_t v = vs[fill.j], u = fill.source();
      s.rsrc[static_cast<size_t>(cnt)] = u;
      s.rrow[static_cast<size_t>(cnt)] = fill.j;
      first_layer(a, s, u, a.Q + (a.q_shared ? 0 : v * k0), fill.self() ? -1 : fill.e, X + cnt * k0);
    }
    int64_t width = 0;
    X = dense_layers_tile(a, p, s, X, s.rb.data(), cnt, &width);
    for (int64_t pos = 0; pos < cnt;) {
      const int64_t j = s.rrow[static_cast<size_t>(pos)];
      int64_t stop = pos + 1;
      while (stop < cnt && s.rrow[static_cast<size_t>(stop)] == j) ++stop;
      for (; open < j; ++open, count = 0) finish_row(a.groups, r, count, agg[open], winners[open]);
      absorb_tile(a.groups, r, X + pos * width, width, s.rsrc.data() + pos, stop - pos, count == 0);
      count += stop - pos;
      pos = stop;
    }
  }
  for (; open < rows; ++open, count = 0) finish_row(a.groups, r, count, agg[open], winners[open]);
}

// One row's reduce_rows_tiled: the aggregate into s.agg and the winners.
template <typename T>
inline int64_t reduce_row_tiled(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t v,
                                int32_t* winners) {
  T* agg = s.agg.data();
  reduce_rows_tiled(a, p, s, &v, 1, &agg, &winners);
  return a.indptr[v + 1] - a.indptr[v] + (a.include_self ? 1 : 0);
}

// Reduce every message into row v; writes the aggregate to s.agg and the winners.
// Returns the number of messages.
template <typename T>
inline int64_t reduce_row(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t v,
                          int32_t* winners) {
  if (!a.layers.empty()) return reduce_row_tiled(a, p, s, v, winners);
  const RowAccumulator<T> r = accumulator(s);
  int64_t count = 0;
  const int64_t row_begin = a.indptr[v];
  const int64_t begin = a.include_self ? row_begin - 1 : row_begin;
  const int64_t end = a.indptr[v + 1];
  constexpr int64_t kPrefetch = 8;  // edges ahead: hides the latency of random S[u] rows
  for (int64_t e = begin; e < end; ++e) {
    if (e + kPrefetch < a.num_edges) {
      const T* row = a.S + static_cast<int64_t>(a.indices[e + kPrefetch]) * a.k0;
      for (int64_t off = 0; off < a.k0; off += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(row + off);
    }
    const bool self = e < row_begin;
    const int64_t u = self ? v : a.indices[e];
    const T* m = message(a, p, s, u, v, e, self);
    absorb(a.groups, r, m, u, count++ == 0);
  }
  return finish_row(a.groups, r, count, s.agg.data(), winners);
}

// The first message layer of K0 channels from source part su into destination part qv along
// edge e (e < 0: the self-edge, no edge term): x = act((su + qv) + E[e] @ We), the edge term a
// sum from +0 over the edge features ascending. Shared by reduce_row_small and the fused
// loops below.
template <typename T, int K0>
ENGINE_INLINE void first_layer_fixed(const EdgePassArgs<T>& a, const T* su, const T* qv, int64_t e, bool relu,
                                     T* x) {
  for (int c = 0; c < K0; ++c) x[c] = su[c] + qv[c];
  if (e >= 0 && a.fe > 0) {
    const T* ef = a.E + e * a.fe;
    for (int c = 0; c < K0; ++c) {
      T t = T(0);
      for (int64_t j = 0; j < a.fe; ++j) t += ef[j] * a.We[j * K0 + c];
      x[c] = x[c] + t;
    }
  }
  if (relu)
    for (int c = 0; c < K0; ++c) x[c] = activate(x[c], Activation::Relu);
}

// reduce_row for small messages with compile-time sizes: a first layer of K0 channels and
// either no further layer (K1 == 0) or one dense layer to K1 channels (the shape of an edge
// score, K1 == 1). Same arithmetic, order and results as the generic path, with the message
// and the accumulators in fixed-size arrays. K is the message width.
template <typename T, int K0, int K1>
inline int64_t reduce_row_small(const EdgePassArgs<T>& a, const Plan<T>&, Scratch<T>& s, int64_t v,
                                int32_t* winners) {
  constexpr int K = K1 > 0 ? K1 : K0;
  T acc[K], den[K];
  int64_t best[K];
  const RowAccumulator<T> r{acc, best, den};
  T W1[K1 > 0 ? K0 * K1 : 1];
  T b1[K1 > 0 ? K1 : 1];
  Activation act1 = Activation::Identity;
  if constexpr (K1 > 0) {
    const auto& l = a.layers[0];
    for (int i = 0; i < K0 * K1; ++i) W1[i] = l.weight[i];
    for (int o = 0; o < K1; ++o) b1[o] = l.bias[o];
    act1 = l.act;
  }
  const bool relu = a.first_act == Activation::Relu;
  const T* q = a.Q + (a.q_shared ? 0 : v * K0);
  T qv[K0];
  for (int c = 0; c < K0; ++c) qv[c] = q[c];
  int64_t count = 0;
  const int64_t row_begin = a.indptr[v];
  const int64_t begin = a.include_self ? row_begin - 1 : row_begin;
  const int64_t end = a.indptr[v + 1];
  constexpr int64_t kPrefetch = 16;
  constexpr int64_t kTile = 16;  // messages computed before the groups fold them
  T tile[kTile * K];
  int64_t src[kTile];
  for (int64_t e0 = begin; e0 < end; e0 += kTile) {
    const int64_t cnt = std::min<int64_t>(kTile, end - e0);
    for (int64_t j = 0; j < cnt; ++j) {
      const int64_t e = e0 + j;
      if (e + kPrefetch < a.num_edges)
        __builtin_prefetch(a.S + static_cast<int64_t>(a.indices[e + kPrefetch]) * K0);
      const bool self = e < row_begin;
      const int64_t u = self ? v : a.indices[e];
      src[j] = u;
      T m0[K0];
      first_layer_fixed<T, K0>(a, a.S + u * K0, qv, self ? -1 : e, relu, m0);
      T* m = tile + j * K;
      if constexpr (K1 > 0) {
        for (int o = 0; o < K1; ++o) m[o] = T(0);
        for (int i = 0; i < K0; ++i)
          for (int o = 0; o < K1; ++o) m[o] += m0[i] * W1[i * K1 + o];
        for (int o = 0; o < K1; ++o) m[o] = activate(m[o] + b1[o], act1);
      } else {
        for (int c = 0; c < K; ++c) m[c] = m0[c];
      }
    }
    absorb_tile(a.groups, r, tile, K, src, cnt, count == 0);
    count += cnt;
  }
  return finish_row(a.groups, r, count, s.agg.data(), winners);
}

// reduce_row_small for a first-layer message (K0 channels) whose groups are max or min, with
// at most one argmax or argmin group (Plan::extremum_sign): each message is folded into the
// accumulators as soon as it is computed. Min and argmin channels fold as maxima over negated
// values (negation is exact, and it maps the first smallest message to the first largest,
// zeros of both signs included, and an arg group's payload back to its bits); the folds are
// Extremum's (NaN-ignoring, the first extremal message kept) and ArgExtremum's (the best key,
// ties to the lowest source, NaN keys never winning). The same messages, order and bits as the
// generic path, in a loop short enough that many rows' random state reads are in flight at
// once (the reduction is bound by their latency), with data-dependent choices made by selects
// rather than branches.
template <typename T, int K0>
inline int64_t reduce_row_extremum(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t v,
                                   int32_t* winners) {
  T sign[K0], qv[K0], acc[K0];
  bool plain[K0];
  const T* q = a.Q + (a.q_shared ? 0 : v * K0);
  const int64_t ka = p.arg_lo, kb = p.arg_hi;
  const bool has_arg = kb > ka;
  for (int c = 0; c < K0; ++c) {
    sign[c] = p.extremum_sign[static_cast<size_t>(c)];
    qv[c] = q[c];
    plain[c] = !(c >= ka && c < kb);
  }
  const bool relu = a.first_act == Activation::Relu;
  const int64_t row_begin = a.indptr[v];
  const int64_t end = a.indptr[v + 1];
  const int64_t count = (end - row_begin) + (a.include_self ? 1 : 0);
  T* agg = s.agg.data();
  if (count == 0) {
    for (int c = 0; c < K0; ++c) agg[c] = T(0);
    if (has_arg && winners) winners[0] = -1;
    return 0;
  }
  const T* __restrict S = a.S;
  const int32_t* __restrict indices = a.indices;
  auto message = [&](int64_t u, int64_t e, T* x) __attribute__((always_inline)) {
    first_layer_fixed<T, K0>(a, S + u * K0, qv, e, relu, x);
    for (int c = 0; c < K0; ++c) x[c] = x[c] * sign[c];
  };
  int64_t best = -1;  // the arg group's winner
  auto fold = [&](const T* x, int64_t u) __attribute__((always_inline)) {
    for (int c = 0; c < K0; ++c)
      if (plain[c]) acc[c] = (acc[c] == acc[c]) ? (x[c] > acc[c] ? x[c] : acc[c]) : x[c];
    if (!has_arg) return;
    const T key = x[ka], cur = acc[ka];
    const bool take = (key == key) & ((best < 0) | (key > cur) | ((key == cur) & (u < best)));
    const int64_t mask = -static_cast<int64_t>(take);
    best = (u & mask) | (best & ~mask);
    for (int c = 0; c < K0; ++c)
      if (!plain[c]) acc[c] = take ? x[c] : acc[c];
  };
  int64_t e = row_begin;
  const int64_t u0 = a.include_self ? v : static_cast<int64_t>(indices[e]);
  message(u0, a.include_self ? -1 : e, acc);
  if (has_arg && acc[ka] == acc[ka]) best = u0;
  if (!a.include_self) ++e;
  constexpr int64_t kPrefetch = 16;  // edges ahead: hides the latency of random S[u] rows
  for (; e < end; ++e) {
    if (e + kPrefetch < a.num_edges) __builtin_prefetch(S + static_cast<int64_t>(indices[e + kPrefetch]) * K0);
    T x[K0];
    const int64_t u = indices[e];
    message(u, e, x);
    fold(x, u);
  }
  for (int c = 0; c < K0; ++c) agg[c] = (!plain[c] && best < 0) ? T(0) : acc[c] * sign[c];
  if (has_arg && winners) winners[0] = static_cast<int32_t>(best);
  return count;
}

// reduce_row_small for an edge score (a first layer of K0 channels, then one dense layer to a
// single channel) reduced by one argmax or argmin group (Plan::score_arg): each score is
// folded into the running winner as soon as it is computed, with ArgExtremum's rule (the
// largest or smallest key, ties to the lowest source, NaN never winning). The same scores,
// order and winners as the generic path, in a loop short enough that many rows' random state
// reads are in flight at once.
template <typename T, int K0, bool IsMax>
inline int64_t reduce_row_score_arg(const EdgePassArgs<T>& a, Scratch<T>& s, int64_t v, int32_t* winners) {
  const auto& l = a.layers[0];
  T qv[K0], W1[K0];
  const T* q = a.Q + (a.q_shared ? 0 : v * K0);
  for (int c = 0; c < K0; ++c) {
    qv[c] = q[c];
    W1[c] = l.weight[c];
  }
  const T b1 = l.bias[0];
  const Activation act1 = l.act;
  const bool relu = a.first_act == Activation::Relu;
  const int64_t row_begin = a.indptr[v];
  const int64_t end = a.indptr[v + 1];
  const int64_t count = (end - row_begin) + (a.include_self ? 1 : 0);
  const T* __restrict S = a.S;
  const int32_t* __restrict indices = a.indices;
  auto score = [&](int64_t u, int64_t e) __attribute__((always_inline)) {
    T x[K0];
    first_layer_fixed<T, K0>(a, S + u * K0, qv, e, relu, x);
    T y = T(0);
    for (int c = 0; c < K0; ++c) y += x[c] * W1[c];
    return activate(y + b1, act1);
  };
  T key = T(0);
  int64_t best = -1;
  auto fold = [&](T k, int64_t u) __attribute__((always_inline)) {
    // NaN never wins (every comparison with it is false); selects by mask, not by branch:
    // which message wins is data dependent and unpredictable
    const bool take = (k == k) & ((best < 0) | (IsMax ? k > key : k < key) | ((k == key) & (u < best)));
    const int64_t mask = -static_cast<int64_t>(take);
    best = (u & mask) | (best & ~mask);
    key = take ? k : key;
  };
  if (a.include_self) fold(score(v, -1), v);
  constexpr int64_t kPrefetch = 16;  // edges ahead: hides the latency of random S[u] rows
  for (int64_t e = row_begin; e < end; ++e) {
    if (e + kPrefetch < a.num_edges) __builtin_prefetch(S + static_cast<int64_t>(indices[e + kPrefetch]) * K0);
    const int64_t u = indices[e];
    fold(score(u, e), u);
  }
  s.agg[0] = best < 0 ? T(0) : key;
  if (winners) winners[0] = static_cast<int32_t>(best);
  return count;
}

// reduce_row when every message of row v is the same (Plan::source_free): the message is
// computed once and each group takes the aggregate of count copies of it (Reducer::repeat:
// the same folds in the same order; the arg winner is the row's lowest source), so the
// result is the same without reading the edges.
template <typename T>
inline int64_t reduce_row_uniform(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t v,
                                  int32_t* winners) {
  const int64_t begin = a.indptr[v], end = a.indptr[v + 1];
  const int64_t count = (end - begin) + (a.include_self ? 1 : 0);
  const RowAccumulator<T> r = accumulator(s);
  if (count > 0) {
    const T* m = message(a, p, s, v, v, -1, true);
    int64_t lowest = a.include_self ? v : a.indices[begin];
    if (end > begin && a.indices[begin] < lowest) lowest = a.indices[begin];
    for (const auto& g : a.groups)
      dispatch_reduce(g.kind, [&](auto kind) {
        Reducer<T, decltype(kind)::value>::repeat(r, m, g.start, g.stop, count, lowest);
      });
  }
  return finish_row(a.groups, r, count, s.agg.data(), winners);
}

// Picks the specialised reducer when one applies.
template <typename T>
inline int64_t reduce_any(const EdgePassArgs<T>& a, const Plan<T>& p, Scratch<T>& s, int64_t v, int32_t* winners) {
  if (p.source_free) return reduce_row_uniform(a, p, s, v, winners);
  if (reduces_tiled(a, p)) return reduce_row_tiled(a, p, s, v, winners);
  if (a.layers.empty() && !p.extremum_sign.empty()) {
    switch (a.k0) {
      case 1: return reduce_row_extremum<T, 1>(a, p, s, v, winners);
      case 2: return reduce_row_extremum<T, 2>(a, p, s, v, winners);
      case 3: return reduce_row_extremum<T, 3>(a, p, s, v, winners);
      case 4: return reduce_row_extremum<T, 4>(a, p, s, v, winners);
      case 8: return reduce_row_extremum<T, 8>(a, p, s, v, winners);
      default: break;
    }
  }
  if (a.layers.empty()) {
    switch (a.k0) {
      case 1: return reduce_row_small<T, 1, 0>(a, p, s, v, winners);
      case 2: return reduce_row_small<T, 2, 0>(a, p, s, v, winners);
      case 3: return reduce_row_small<T, 3, 0>(a, p, s, v, winners);
      case 4: return reduce_row_small<T, 4, 0>(a, p, s, v, winners);
      case 8: return reduce_row_small<T, 8, 0>(a, p, s, v, winners);
      default: break;
    }
  } else if (a.layers.size() == 1 && a.layers[0].out == 1) {  // edge scores
    const bool one_arg = a.groups.size() == 1 && a.groups[0].stop - a.groups[0].start == 1 &&
                         (a.groups[0].kind == Reduce::ArgMax || a.groups[0].kind == Reduce::ArgMin);
    if (one_arg) {
      const bool is_max = a.groups[0].kind == Reduce::ArgMax;
      switch (a.k0) {
        case 1: return is_max ? reduce_row_score_arg<T, 1, true>(a, s, v, winners)
                              : reduce_row_score_arg<T, 1, false>(a, s, v, winners);
        case 2: return is_max ? reduce_row_score_arg<T, 2, true>(a, s, v, winners)
                              : reduce_row_score_arg<T, 2, false>(a, s, v, winners);
        case 4: return is_max ? reduce_row_score_arg<T, 4, true>(a, s, v, winners)
                              : reduce_row_score_arg<T, 4, false>(a, s, v, winners);
        case 8: return is_max ? reduce_row_score_arg<T, 8, true>(a, s, v, winners)
                              : reduce_row_score_arg<T, 8, false>(a, s, v, winners);
        default: break;
      }
    }
    switch (a.k0) {
      case 1: return reduce_row_small<T, 1, 1>(a, p, s, v, winners);
      case 2: return reduce_row_small<T, 2, 1>(a, p, s, v, winners);
      case 4: return reduce_row_small<T, 4, 1>(a, p, s, v, winners);
      case 8: return reduce_row_small<T, 8, 1>(a, p, s, v, winners);
      default: break;
    }
  }
  return reduce_row(a, p, s, v, winners);
}

// A dense layer narrow enough to live in registers (at most `lanes` outputs): its nonzero
// input rows listed once, each padded to `lanes` columns, so that the product is one
// multiply-add over a fixed-size accumulator per nonzero input, with no test per row. The
// arithmetic and order are `dense`'s (inputs ascending, all-zero rows skipped); the padding
// columns are zero and compute values nobody reads.
template <typename T>
struct PackedLayer {
  std::vector<int64_t> rows;  // nonzero input rows, ascending
  std::vector<T> weight;      // rows.size() x lanes
  std::vector<T> bias;        // lanes, zero-padded (all zero when the layer has none)
  Activation act = Activation::Identity;

  PackedLayer() = default;
  PackedLayer(const T* W, const T* b, int64_t in, int64_t out, Activation a, int64_t lanes) : act(a) {
    const std::vector<char> zero = zero_rows(W, in, out);
    for (int64_t i = 0; i < in; ++i) {
      if (zero[static_cast<size_t>(i)]) continue;
      rows.push_back(i);
      for (int64_t o = 0; o < lanes; ++o) weight.push_back(o < out ? W[i * out + o] : T(0));
    }
    bias.assign(static_cast<size_t>(lanes), T(0));
    if (b)
      for (int64_t o = 0; o < out; ++o) bias[static_cast<size_t>(o)] = b[o];
  }
};

// acc[o] += x[i] * W[i, o] over the layer's nonzero rows i, ascending.
template <typename T, int Lanes>
__attribute__((always_inline)) inline void packed_accumulate(const PackedLayer<T>& l, const T* __restrict x,
                                                             T* __restrict acc) {
  // blocks of 16 outputs, their accumulators in registers; with 32 lanes both blocks in one
  // pass, so that their chains of additions overlap
  static_assert(Lanes == 16 || Lanes == 32, "16 or 32 lanes");
  const int64_t nr = static_cast<int64_t>(l.rows.size());
  const int64_t* __restrict rows = l.rows.data();
  const T* __restrict w = l.weight.data();
  T lo[16], hi[16];
  for (int o = 0; o < 16; ++o) lo[o] = acc[o];
  if (Lanes == 16) {
    for (int64_t j = 0; j < nr; ++j) {
      const T xi = x[rows[j]];
      const T* __restrict wj = w + j * Lanes;
      for (int o = 0; o < 16; ++o) lo[o] += xi * wj[o];
    }
  } else {
    for (int o = 0; o < 16; ++o) hi[o] = acc[16 + o];
    for (int64_t j = 0; j < nr; ++j) {
      const T xi = x[rows[j]];
      const T* __restrict wj = w + j * Lanes;
      for (int o = 0; o < 16; ++o) lo[o] += xi * wj[o];
      for (int o = 0; o < 16; ++o) hi[o] += xi * wj[16 + o];
    }
    for (int o = 0; o < 16; ++o) acc[16 + o] = hi[o];
  }
  for (int o = 0; o < 16; ++o) acc[o] = lo[o];
}

template <typename T>
struct NodePlan {
  std::vector<char> zero_z, zero_a;
  std::vector<std::vector<char>> tail_zero;
  int64_t width = 0;
  // The packed form, used when every layer has at most 32 outputs and there is no layer
  // norm (compiled models, graph updates): lanes = 16 or 32, else 0 (the general loops).
  int64_t lanes = 0;
  PackedLayer<T> first_z, first_a;  // first_z carries b0 and act0
  std::vector<PackedLayer<T>> tail;
  NodePlan(const NodeMLP<T>& m, int64_t fz, int64_t k) {
    zero_z = zero_rows(m.Wz, fz, m.w0);
    zero_a = zero_rows(m.Wa, k, m.w0);
    width = m.w0;
    for (const auto& l : m.tail) {
      tail_zero.push_back(zero_rows(l.weight, l.in, l.out));
      width = std::max(width, l.out);
    }
    if (m.ln_gamma != nullptr || width > 32) return;
    lanes = width <= 16 ? 16 : 32;
    first_z = PackedLayer<T>(m.Wz, m.b0, fz, m.w0, m.act0, lanes);
    first_a = PackedLayer<T>(m.Wa, nullptr, k, m.w0, Activation::Identity, lanes);
    for (const auto& l : m.tail) tail.emplace_back(l.weight, l.bias, l.in, l.out, l.act, lanes);
    width = lanes;
  }
};

// One packed layer's bias and activation on its accumulator: h = act(t + b).
template <typename T, int Lanes>
__attribute__((always_inline)) inline void packed_finish(const PackedLayer<T>& l, const T* t, T* h) {
  const T* b = l.bias.data();
  for (int o = 0; o < Lanes; ++o) h[o] = activate(t[o] + b[o], l.act);
}

// node_mlp on the packed form: the same sums in the same order, in fixed-size registers.
template <typename T, int Lanes>
__attribute__((always_inline)) inline void node_mlp_packed(const NodePlan<T>& p, const T* z, const T* agg,
                                                           int64_t k, T* x) {
  T hz[Lanes], ha[Lanes];
  for (int o = 0; o < Lanes; ++o) { hz[o] = T(0); ha[o] = T(0); }
  packed_accumulate<T, Lanes>(p.first_z, z, hz);
  if (k > 0) packed_accumulate<T, Lanes>(p.first_a, agg, ha);
  const T* b0 = p.first_z.bias.data();
  const Activation act0 = p.first_z.act;
  for (int o = 0; o < Lanes; ++o) hz[o] = activate((hz[o] + ha[o]) + b0[o], act0);
  for (const auto& l : p.tail) {
    T t[Lanes];
    for (int o = 0; o < Lanes; ++o) t[o] = T(0);
    packed_accumulate<T, Lanes>(l, hz, t);
    packed_finish<T, Lanes>(l, t, hz);
  }
  for (int o = 0; o < Lanes; ++o) x[o] = hz[o];
}

// Two packed layers' products interleaved: acc1 += x1 @ l1 and acc2 += x2 @ l2, each with
// packed_accumulate's order (its nonzero rows ascending). The two dependency chains overlap,
// so a row's update and gate MLPs cost about one chain instead of two.
template <typename T, int Lanes>
__attribute__((always_inline)) inline void packed_accumulate_pair(const PackedLayer<T>& l1, const T* __restrict x1,
                                                                  T* __restrict acc1, const PackedLayer<T>& l2,
                                                                  const T* __restrict x2, T* __restrict acc2) {
  static_assert(Lanes % 16 == 0, "lanes come in blocks of 16");
  const int64_t n1 = static_cast<int64_t>(l1.rows.size()), n2 = static_cast<int64_t>(l2.rows.size());
  const int64_t both = std::min(n1, n2);
  const int64_t* __restrict r1 = l1.rows.data();
  const int64_t* __restrict r2 = l2.rows.data();
  for (int b = 0; b < Lanes; b += 16) {
    const T* __restrict w1 = l1.weight.data() + b;
    const T* __restrict w2 = l2.weight.data() + b;
    T a1[16], a2[16];
    for (int o = 0; o < 16; ++o) { a1[o] = acc1[b + o]; a2[o] = acc2[b + o]; }
    int64_t j = 0;
    for (; j < both; ++j) {
      const T y1 = x1[r1[j]], y2 = x2[r2[j]];
      const T* __restrict v1 = w1 + j * Lanes;
      const T* __restrict v2 = w2 + j * Lanes;
      for (int o = 0; o < 16; ++o) {
        a1[o] += y1 * v1[o];
        a2[o] += y2 * v2[o];
      }
    }
    for (int64_t i = j; i < n1; ++i) {
      const T y1 = x1[r1[i]];
      const T* __restrict v1 = w1 + i * Lanes;
      for (int o = 0; o < 16; ++o) a1[o] += y1 * v1[o];
    }
    for (int64_t i = j; i < n2; ++i) {
      const T y2 = x2[r2[i]];
      const T* __restrict v2 = w2 + i * Lanes;
      for (int o = 0; o < 16; ++o) a2[o] += y2 * v2[o];
    }
    for (int o = 0; o < 16; ++o) { acc1[b + o] = a1[o]; acc2[b + o] = a2[o]; }
  }
}

// node_mlp_packed for two MLPs of the same lanes on the same inputs (a layer's update and
// gate), layer by layer interleaved: each result equals node_mlp_packed's bit for bit.
template <typename T, int Lanes>
__attribute__((always_inline)) inline void node_mlp_packed_pair(const NodePlan<T>& p, const NodePlan<T>& q,
                                                                const T* z, const T* agg, int64_t k, T* x,
                                                                T* y) {
  T hz[Lanes], ha[Lanes], gz[Lanes], ga[Lanes];
  for (int o = 0; o < Lanes; ++o) { hz[o] = T(0); ha[o] = T(0); gz[o] = T(0); ga[o] = T(0); }
  packed_accumulate_pair<T, Lanes>(p.first_z, z, hz, q.first_z, z, gz);
  if (k > 0) packed_accumulate_pair<T, Lanes>(p.first_a, agg, ha, q.first_a, agg, ga);
  {
    const T* b0 = p.first_z.bias.data();
    const T* c0 = q.first_z.bias.data();
    for (int o = 0; o < Lanes; ++o) {
      hz[o] = activate((hz[o] + ha[o]) + b0[o], p.first_z.act);
      gz[o] = activate((gz[o] + ga[o]) + c0[o], q.first_z.act);
    }
  }
  const size_t np = p.tail.size(), nq = q.tail.size(), nb = std::min(np, nq);
  for (size_t li = 0; li < nb; ++li) {
    T t[Lanes], u[Lanes];
    for (int o = 0; o < Lanes; ++o) { t[o] = T(0); u[o] = T(0); }
    packed_accumulate_pair<T, Lanes>(p.tail[li], hz, t, q.tail[li], gz, u);
    packed_finish<T, Lanes>(p.tail[li], t, hz);
    packed_finish<T, Lanes>(q.tail[li], u, gz);
  }
  for (size_t li = nb; li < np; ++li) {
    T t[Lanes];
    for (int o = 0; o < Lanes; ++o) t[o] = T(0);
    packed_accumulate<T, Lanes>(p.tail[li], hz, t);
    packed_finish<T, Lanes>(p.tail[li], t, hz);
  }
  for (size_t li = nb; li < nq; ++li) {
    T u[Lanes];
    for (int o = 0; o < Lanes; ++o) u[o] = T(0);
    packed_accumulate<T, Lanes>(q.tail[li], gz, u);
    packed_finish<T, Lanes>(q.tail[li], u, gz);
  }
  for (int o = 0; o < Lanes; ++o) { x[o] = hz[o]; y[o] = gz[o]; }
}

// The packed node MLP compiled for several instruction sets, like dense_accumulate (the
// same IEEE operations per lane on every clone).
#define ENGINE_DEFINE_PACKED_MLP(T)                                                                          \
  ENGINE_ISA_CLONES static void node_mlp_packed16(const NodePlan<T>& p, const T* z, const T* agg, int64_t k, \
                                                  T* x) {                                                   \
    node_mlp_packed<T, 16>(p, z, agg, k, x);                                                                \
  }                                                                                                         \
  ENGINE_ISA_CLONES static void node_mlp_packed32(const NodePlan<T>& p, const T* z, const T* agg, int64_t k, \
                                                  T* x) {                                                   \
    node_mlp_packed<T, 32>(p, z, agg, k, x);                                                                \
  }                                                                                                         \
  ENGINE_ISA_CLONES static void node_mlp_packed16_pair(const NodePlan<T>& p, const NodePlan<T>& q, const T* z, \
                                                       const T* agg, int64_t k, T* x, T* y) {               \
    node_mlp_packed_pair<T, 16>(p, q, z, agg, k, x, y);                                                     \
  }                                                                                                         \
  ENGINE_ISA_CLONES static void node_mlp_packed32_pair(const NodePlan<T>& p, const NodePlan<T>& q, const T* z, \
                                                       const T* agg, int64_t k, T* x, T* y) {               \
    node_mlp_packed_pair<T, 32>(p, q, z, agg, k, x, y);                                                     \
  }

ENGINE_DEFINE_PACKED_MLP(float)
ENGINE_DEFINE_PACKED_MLP(double)
#undef ENGINE_DEFINE_PACKED_MLP

// CLRS's layer norm of the w values of x, in place: ((x - mean) / sd) * gamma + beta.
template <typename T>
inline void layer_norm(const NodeMLP<T>& m, T* x, int64_t w) {
  T mu = T(0), var = T(0);
  for (int64_t o = 0; o < w; ++o) mu += x[o];
  mu = mu / T(w);
  for (int64_t o = 0; o < w; ++o) var += (x[o] - mu) * (x[o] - mu);
  var = var / T(w);
  const T sd = std::sqrt(var + T(kLayerNormEps));
  for (int64_t o = 0; o < w; ++o) x[o] = ((x[o] - mu) / sd) * m.ln_gamma[o] + m.ln_beta[o];
}

// Evaluates a NodeMLP for one node; result in x (or y, each at least plan.width long);
// returns the buffer holding it.
template <typename T>
inline const T* node_mlp(const NodeMLP<T>& m, const NodePlan<T>& p, const T* z, int64_t fz, const T* agg,
                         int64_t k, T* x, T* y) {
  if (p.lanes == 16) {
    node_mlp_packed16(p, z, agg, k, x);
    return x;
  }
  if (p.lanes == 32) {
    node_mlp_packed32(p, z, agg, k, x);
    return x;
  }
  // ((z @ Wz) + (agg @ Wa)) + b0, each product summed over ascending inputs
  for (int64_t o = 0; o < m.w0; ++o) { x[o] = T(0); y[o] = T(0); }
  if (m.w0 >= kWideLayer) {  // wide (learned) layers: the ISA-dispatched loop
    dense_accumulate(m.Wz, p.zero_z.data(), fz, m.w0, z, x);
    if (k > 0) dense_accumulate(m.Wa, p.zero_a.data(), k, m.w0, agg, y);
  } else {  // narrow (compiled) layers: inline, no dispatch per call
    for (int64_t i = 0; i < fz; ++i) {
      if (p.zero_z[i]) continue;
      const T zi = z[i];
      const T* w = m.Wz + i * m.w0;
      for (int64_t o = 0; o < m.w0; ++o) x[o] += zi * w[o];
    }
    for (int64_t i = 0; i < k; ++i) {
      if (p.zero_a[i]) continue;
      const T ai = agg[i];
      const T* w = m.Wa + i * m.w0;
      for (int64_t o = 0; o < m.w0; ++o) y[o] += ai * w[o];
    }
  }
  for (int64_t o = 0; o < m.w0; ++o) x[o] = activate((x[o] + y[o]) + m.b0[o], m.act0);
  for (size_t li = 0; li < m.tail.size(); ++li) {
    dense(m.tail[li], p.tail_zero[li], x, y);
    std::swap(x, y);
  }
  if (m.ln_gamma) layer_norm(m, x, m.tail.empty() ? m.w0 : m.tail.back().out);
  return x;
}

// node_mlp on `rows` nodes at once: Z (rows x fz) and A (rows x k), row-major; X and Y hold
// rows x p.width values each. Every product runs through dense_accumulate_tile, so each output
// is the same sum in the same order as node_mlp's (the same bits); the weights are read once
// per block of rows instead of once per row. Returns the buffer holding the rows x out result.
template <typename T>
inline const T* node_mlp_rows(const NodeMLP<T>& m, const NodePlan<T>& p, const T* Z, int64_t fz, const T* A,
                              int64_t k, int64_t rows, T* X, T* Y) {
  std::fill(X, X + rows * m.w0, T(0));
  std::fill(Y, Y + rows * m.w0, T(0));
  dense_accumulate_tile(m.Wz, p.zero_z.data(), fz, m.w0, rows, Z, X);
  if (k > 0) dense_accumulate_tile(m.Wa, p.zero_a.data(), k, m.w0, rows, A, Y);
  for (int64_t r = 0; r < rows; ++r) {
    T* x = X + r * m.w0;
    const T* y = Y + r * m.w0;
    for (int64_t o = 0; o < m.w0; ++o) x[o] = activate((x[o] + y[o]) + m.b0[o], m.act0);
  }
  for (size_t li = 0; li < m.tail.size(); ++li) {
    const auto& l = m.tail[li];
    std::fill(Y, Y + rows * l.out, T(0));
    dense_accumulate_tile(l.weight, p.tail_zero[li].data(), l.in, l.out, rows, X, Y);
    for (int64_t j = 0; j < rows * l.out; ++j) Y[j] = activate(Y[j] + l.bias[j % l.out], l.act);
    std::swap(X, Y);
  }
  if (m.ln_gamma) {
    const int64_t w = m.tail.empty() ? m.w0 : m.tail.back().out;
    for (int64_t r = 0; r < rows; ++r) layer_norm(m, X + r * w, w);
  }
  return X;
}

}  // namespace detail

// Rows reduced together where messages have dense layers (reduce_rows_tiled), and whose node
// MLPs layer_row_block evaluates together (dense_accumulate_tile's widest block).
constexpr int64_t kBlockRows = 8;

// Fused message + aggregation over the selected rows (all rows when a.rows is null).
// Thread-safe for distinct outputs; uses the current OpenMP thread count. Throws
// std::invalid_argument on invalid arguments (before writing any output).
template <typename T>
void edge_pass(const EdgePassArgs<T>& a, bool check_edges = false) {
  validate(a, check_edges);
  const detail::Plan<T> plan(a);
  const int64_t rows = a.rows ? a.num_rows : a.num_nodes;
  // rows in blocks whose messages share tiles where the messages have dense layers
  const int64_t block = detail::reduces_tiled(a, plan) ? kBlockRows : 1;
  const int64_t blocks = (rows + block - 1) / block;
  const int64_t chunk = 1024 / block;  // 1024 rows per scheduling unit, as before blocks
#pragma omp parallel if (rows > 1024)
  {
    detail::Scratch<T> s(plan.width, plan.k_out);
#pragma omp for schedule(dynamic, chunk)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t i0 = b * block, cnt = std::min(block, rows - i0);
      if (block == 1) {
        const int64_t v = a.rows ? a.rows[i0] : i0;
        detail::reduce_any(a, plan, s, v, a.winners ? a.winners + i0 * plan.num_arg : nullptr);
        std::copy(s.agg.data(), s.agg.data() + plan.k_out, a.out + i0 * plan.k_out);
        continue;
      }
      int64_t vs[kBlockRows];
      T* agg[kBlockRows];
      int32_t* winners[kBlockRows];
      for (int64_t j = 0; j < cnt; ++j) {
        vs[j] = a.rows ? a.rows[i0 + j] : i0 + j;
        agg[j] = a.out + (i0 + j) * plan.k_out;
        winners[j] = a.winners ? a.winners + (i0 + j) * plan.num_arg : nullptr;
      }
      detail::reduce_rows_tiled(a, plan, s, vs, cnt, agg, winners);
    }
  }
}

// Everything layer_pass derives from the weights, built once per layer (run_steps reuses it
// across steps).
template <typename T>
struct LayerPlan {
  detail::Plan<T> edges;
  detail::NodePlan<T> update, gate;
  // Update and gate evaluated together (node_mlp_packed_pair): both packed alike and at least
  // one deeper than a single layer, where the two dependency chains are long enough for the
  // overlap to pay (a pair of single-layer MLPs runs 4-5% faster apart).
  int64_t pair_lanes = 0;
  // The node MLPs of blocks of rows evaluated together (layer_row_block): where they take the
  // general loops (wide learned layers, or layer norm), whose weights are then read once per
  // block instead of once per row.
  bool block_rows = false;
  // The aggregates of such a block reduced together (reduce_rows_tiled), where the messages
  // have dense layers past the first (detail::reduces_tiled).
  bool block_messages = false;
  int64_t fz = 0;  // the layer's input width
  // Multiply-adds of one row, roughly: its messages (the mean in-degree plus one, each through
  // the message MLP) and its node MLPs. Decides which steps are worth a parallel region.
  int64_t row_work = 1;
  explicit LayerPlan(const LayerArgs<T>& L)
      : edges(L.edges),
        update(L.update, L.fz, edges.k_out),
        gate(L.gated ? detail::NodePlan<T>(L.gate, L.fz, edges.k_out) : update),
        fz(L.fz) {
    if (L.gated && update.lanes != 0 && update.lanes == gate.lanes && (!update.tail.empty() || !gate.tail.empty()))
      pair_lanes = update.lanes;
    block_rows = update.lanes == 0 && (!L.gated || gate.lanes == 0);
    block_messages = block_rows && detail::reduces_tiled(L.edges, edges);
    row_work = estimate_row_work(L);
  }

 private:
  static int64_t mlp_work(const NodeMLP<T>& m, int64_t fz, int64_t k) {
    int64_t w = (fz + k) * m.w0;
    for (const auto& l : m.tail) w += l.in * l.out;
    return w;
  }
  static int64_t estimate_row_work(const LayerArgs<T>& L) {
    const auto& e = L.edges;
    int64_t message = e.k0 * (1 + e.fe);
    for (const auto& l : e.layers) message += l.in * l.out;
    const int64_t k = message_width(e);
    const int64_t per_row_messages = (e.num_nodes > 0 ? e.num_edges / e.num_nodes : 0) + 1;
    int64_t w = per_row_messages * message + mlp_work(L.update, L.fz, k);
    if (L.gated) w += mlp_work(L.gate, L.fz, k);
    return std::max<int64_t>(w, 1);
  }
};

// Checks the node-side shapes of a layer; throws std::invalid_argument.
template <typename T>
void validate_layer(const LayerArgs<T>& L) {
  if (L.d <= 0 || L.d > L.fz) throw std::invalid_argument("state width must be in [1, fz]");
  if (L.update.tail.empty() ? L.update.w0 != L.d : L.update.tail.back().out != L.d)
    throw std::invalid_argument("update MLP must end with the state width");
  if (L.gated && (L.gate.tail.empty() ? L.gate.w0 != L.d : L.gate.tail.back().out != L.d))
    throw std::invalid_argument("gate MLP must end with the state width");
}

namespace detail {

// y = x @ W for one row: y[o] = sum_i x[i] * W[i, o], inputs ascending from +0, skipping the
// all-zero rows of W (`nz` lists the others, `zero` flags them).
template <typename T>
inline void row_product(const T* W, const std::vector<int64_t>& nz, const std::vector<char>& zero, int64_t in,
                        int64_t out, const T* x, T* y) {
  for (int64_t o = 0; o < out; ++o) y[o] = T(0);
  if (nz.empty()) return;
  if (out >= kWideLayer) {
    dense_accumulate(W, zero.data(), in, out, x, y);
    return;
  }
  for (int64_t i : nz) {
    const T xi = x[i];
    const T* w = W + i * out;
    for (int64_t o = 0; o < out; ++o) y[o] += xi * w[o];
  }
}

// The nonzero rows of W (in x out), ascending.
template <typename T>
std::vector<int64_t> nonzero_rows(const T* W, int64_t in, int64_t out) {
  const std::vector<char> zero = zero_rows(W, in, out);
  std::vector<int64_t> nz;
  for (int64_t i = 0; i < in; ++i)
    if (!zero[static_cast<size_t>(i)]) nz.push_back(i);
  return nz;
}

}  // namespace detail

// Y = A @ W for A (rows x in) and W (in x out), row-major, by detail::row_product (the same
// sums as the per-node parts of run_steps and as the executor's small products in NumPy).
// Rows in parallel; wide outputs (learned widths) in blocks of kBlockRows rows through
// dense_accumulate_tile, whose sums are row_product's.
template <typename T>
void project(const T* A, int64_t rows, int64_t in, const T* W, int64_t out, T* Y) {
  const std::vector<char> zero = detail::zero_rows(W, in, out);
  const std::vector<int64_t> nz = detail::nonzero_rows(W, in, out);
  if (out >= detail::kWideLayer) {
    const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
#pragma omp parallel for schedule(static) if (rows > 2048)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kBlockRows, cnt = std::min(kBlockRows, rows - r0);
      std::fill(Y + r0 * out, Y + (r0 + cnt) * out, T(0));
      detail::dense_accumulate_tile(W, zero.data(), in, out, cnt, A + r0 * in, Y + r0 * out);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (rows > 16384)
  for (int64_t r = 0; r < rows; ++r) detail::row_product(W, nz, zero, in, out, A + r * in, Y + r * out);
}

// One thread's buffers for layer_rows: the reduction scratch and the node MLPs' outputs.
template <typename T>
struct RowWorkspace {
  detail::Scratch<T> s;
  std::vector<T> node_buf;
  T *ua = nullptr, *ub = nullptr, *ga = nullptr, *gb = nullptr;
  std::vector<T> block_buf;  // layer_row_block's inputs and MLP outputs (block_rows only)
  T *block_z = nullptr, *block_a = nullptr, *bu = nullptr, *bu2 = nullptr, *bg = nullptr, *bg2 = nullptr;
  explicit RowWorkspace(const LayerPlan<T>& P) : s(P.edges.width, P.edges.k_out) {
    if (P.block_rows) {
      const int64_t fz = P.fz;
      const int64_t nw = std::max(P.update.width, P.gate.width);
      const int64_t spans[6] = {fz, P.edges.k_out, nw, nw, nw, nw};
      int64_t total = 0;
      for (int64_t sp : spans) total += kBlockRows * sp + 16;
      block_buf.assign(static_cast<size_t>(total), T(0));
      T* p = block_buf.data();
      T** dst[6] = {&block_z, &block_a, &bu, &bu2, &bg, &bg2};
      for (int j = 0; j < 6; ++j) {
        *dst[j] = p;
        p += kBlockRows * spans[j] + 16;
      }
    }
    // one cache-line-aligned block per thread, padded so threads never share a line
    constexpr size_t kLine = 64 / sizeof(T);
    const size_t nw = static_cast<size_t>(std::max(P.update.width, P.gate.width));
    const size_t span = ((nw + kLine - 1) / kLine) * kLine;
    node_buf.assign(4 * span + 2 * kLine, T(0));
    T* base = node_buf.data() + kLine;
    ua = base;
    ub = base + span;
    ga = base + 2 * span;
    gb = base + 3 * span;
  }
};

namespace detail {

// Whether row v of an active application takes its aggregate from the store, and whether it
// visits its in-edges (reads_edges: the layer's messages depend on the source).
template <typename T>
inline bool row_from_store(const LayerArgs<T>& L, int64_t v) {
  return L.agg_from_store && L.agg_from_store[v];
}
template <typename T>
inline bool row_reads_edges(const LayerArgs<T>& L, bool reads_edges, int64_t v) {
  return reads_edges && !row_from_store(L, v);
}

// Where row i of layer_rows (row v) writes its arg winners: the edge pass's output, else the
// kept store, else nowhere.
template <typename T>
inline int32_t* row_winners(const LayerArgs<T>& L, const Plan<T>& plan, int64_t i, int64_t v) {
  return L.edges.winners ? L.edges.winners + i * plan.num_arg
         : L.winner_store ? L.winner_store + v * plan.num_arg
                          : nullptr;
}

// The aggregate of row i of layer_rows (row v): from the store, or reduced from the row's
// messages (and then stored); also written to the edge pass's output and winners.
template <typename T>
inline const T* row_aggregate(const LayerArgs<T>& L, const LayerPlan<T>& P, RowWorkspace<T>& w, int64_t i,
                              int64_t v) {
  const EdgePassArgs<T>& a = L.edges;
  const Plan<T>& plan = P.edges;
  const T* agg;
  if (row_from_store(L, v)) {
    agg = L.agg_store + v * plan.k_out;
  } else {
    reduce_any(a, plan, w.s, v, row_winners(L, plan, i, v));
    agg = w.s.agg.data();
    if (L.agg_store) std::copy(agg, agg + plan.k_out, L.agg_store + v * plan.k_out);
  }
  if (a.out) std::copy(agg, agg + plan.k_out, a.out + i * plan.k_out);
  return agg;
}

// Row v's new state from its update nv and gate gv (null: ungated) over its input z: written
// to the output, changes recorded; returns whether a watched channel changed.
template <typename T>
inline bool row_write(const LayerArgs<T>& L, int64_t v, const T* z, const T* nv, const T* gv) {
  T* out = L.out + v * L.fz;
  bool watched = false, any = false, msg = false, next = false;
  for (int64_t c = 0; c < L.d; ++c) {
    T val = nv[c];
    if (L.gated) {
      const T g = sigmoid(gv[c]);
      val = g * nv[c] + (T(1) - g) * z[c];
    }
    const T before = L.compare_out ? out[c] : z[c];
    const bool differs = !(val == before);
    any = any || differs;
    watched = watched || (differs && L.watch && L.watch[c]);
    msg = msg || (differs && L.msg_watch && L.msg_watch[c]);
    if (differs && L.next_reads)
      next = next || L.next_reads[c] || !same_zero_product(before, val);
    out[c] = val;
  }
  if (L.changed) L.changed[v] = any ? 1 : 0;
  if (L.msg_changed) L.msg_changed[v] = msg ? 1 : 0;
  if (L.next_changed) L.next_changed[v] = next ? 1 : 0;
  return watched;
}

// Row i of layer_rows: reduce, update, gate, write, record changes; returns whether a
// watched channel changed.
template <typename T>
inline bool layer_row(const LayerArgs<T>& L, const LayerPlan<T>& P, RowWorkspace<T>& w, int64_t i) {
  const int64_t v = L.edges.rows ? L.edges.rows[i] : i;
  const int64_t k = P.edges.k_out;
  const T* agg = row_aggregate(L, P, w, i, v);
  const T* z = L.z + v * L.fz;
  const T* nv;
  const T* gv = nullptr;
  if (P.pair_lanes == 16) {  // both chains at once
    node_mlp_packed16_pair(P.update, P.gate, z, agg, k, w.ua, w.ga);
    nv = w.ua;
    gv = w.ga;
  } else if (P.pair_lanes == 32) {
    node_mlp_packed32_pair(P.update, P.gate, z, agg, k, w.ua, w.ga);
    nv = w.ua;
    gv = w.ga;
  } else {
    nv = node_mlp(L.update, P.update, z, L.fz, agg, k, w.ua, w.ub);
    if (L.gated) gv = node_mlp(L.gate, P.gate, z, L.fz, agg, k, w.ga, w.gb);
  }
  return row_write(L, v, z, nv, gv);
}

// row_aggregate for rows [i0, i0 + cnt) of layer_rows (rows vs), into w.block_a: the rows
// that reduce their messages do so together (reduce_rows_tiled), the others read the store.
template <typename T>
inline void block_aggregates(const LayerArgs<T>& L, const LayerPlan<T>& P, RowWorkspace<T>& w, int64_t i0,
                             const int64_t* vs, int64_t cnt) {
  const EdgePassArgs<T>& a = L.edges;
  const int64_t k = P.edges.k_out;
  int64_t reduced[kBlockRows];
  T* agg[kBlockRows];
  int32_t* winners[kBlockRows];
  int64_t nr = 0;
  for (int64_t j = 0; j < cnt; ++j) {
    const int64_t v = vs[j];
    if (row_from_store(L, v)) {
      std::copy(L.agg_store + v * k, L.agg_store + (v + 1) * k, w.block_a + j * k);
      continue;
    }
    reduced[nr] = v;
    agg[nr] = w.block_a + j * k;
    winners[nr] = row_winners(L, P.edges, i0 + j, v);
    ++nr;
  }
  reduce_rows_tiled(a, P.edges, w.s, reduced, nr, agg, winners);
  for (int64_t j = 0; j < cnt; ++j) {
    const T* row = w.block_a + j * k;
    if (L.agg_store && !row_from_store(L, vs[j])) std::copy(row, row + k, L.agg_store + vs[j] * k);
    if (a.out) std::copy(row, row + k, a.out + (i0 + j) * k);
  }
}

// Rows [i0, i0 + cnt) of layer_rows (cnt <= kBlockRows) with their node MLPs evaluated together
// (node_mlp_rows): the aggregates and inputs of the block first, then the MLPs, then the writes.
// A row's aggregate reads the per-node parts, never another row's state, so computing all of
// them before writing any gives every row the values layer_row would. Returns how many rows
// changed a watched channel.
template <typename T>
inline int64_t layer_row_block(const LayerArgs<T>& L, const LayerPlan<T>& P, RowWorkspace<T>& w, int64_t i0,
                               int64_t cnt) {
  const int64_t k = P.edges.k_out;
  int64_t vs[kBlockRows];
  for (int64_t j = 0; j < cnt; ++j) vs[j] = L.edges.rows ? L.edges.rows[i0 + j] : i0 + j;
  if (P.block_messages) {
    block_aggregates(L, P, w, i0, vs, cnt);
  } else {
    for (int64_t j = 0; j < cnt; ++j) {
      const T* agg = row_aggregate(L, P, w, i0 + j, vs[j]);
      std::copy(agg, agg + k, w.block_a + j * k);
    }
  }
  for (int64_t j = 0; j < cnt; ++j) std::copy(L.z + vs[j] * L.fz, L.z + (vs[j] + 1) * L.fz, w.block_z + j * L.fz);
  const T* nv = node_mlp_rows(L.update, P.update, w.block_z, L.fz, w.block_a, k, cnt, w.bu, w.bu2);
  const T* gv = L.gated ? node_mlp_rows(L.gate, P.gate, w.block_z, L.fz, w.block_a, k, cnt, w.bg, w.bg2) : nullptr;
  int64_t changed = 0;
  for (int64_t j = 0; j < cnt; ++j)
    changed += row_write(L, vs[j], w.block_z + j * L.fz, nv + j * L.d, gv ? gv + j * L.d : nullptr) ? 1 : 0;
  return changed;
}

// Prefetch for the selected rows ahead of position i (< end): scattered rows (active steps)
// miss the cache, so each dependent level is fetched kAhead rows earlier than the next (the
// in-edge range 4 kAhead rows ahead, the edge list 3 kAhead, the edges' sources and both
// state rows 2 kAhead). A row costs a few tens of nanoseconds, a miss to memory about a
// hundred, so the distance spans several rows (on a 1000 x 1000 grid, ~1500 rows a step,
// kAhead 8 is 3-4% faster than 1).
constexpr int64_t kAhead = 8;
template <typename T>
inline void prefetch_ahead(const LayerArgs<T>& L, bool reads_edges, int64_t i, int64_t end) {
  const EdgePassArgs<T>& a = L.edges;
  if (i + 4 * kAhead < end && !row_from_store(L, a.rows[i + 4 * kAhead]))
    __builtin_prefetch(a.indptr + a.rows[i + 4 * kAhead]);
  if (i + 3 * kAhead < end && row_reads_edges(L, reads_edges, a.rows[i + 3 * kAhead]))
    __builtin_prefetch(a.indices + a.indptr[a.rows[i + 3 * kAhead]]);
  if (i + 2 * kAhead >= end) return;
  const int64_t v = a.rows[i + 2 * kAhead];
  const T* z = L.z + v * L.fz;
  const T* o = L.out + v * L.fz;
  __builtin_prefetch(z);
  __builtin_prefetch(z + L.fz - 1);
  if (o != z) {  // a layer updated in place reads and writes the same row
    __builtin_prefetch(o, 1);
    __builtin_prefetch(o + L.d - 1, 1);
  }
  if (L.agg_store) __builtin_prefetch(L.agg_store + v * message_width(a));
  if (!row_reads_edges(L, reads_edges, v)) return;
  const int64_t e0 = a.indptr[v], e1 = std::min(a.indptr[v + 1], e0 + 16);
  for (int64_t e = e0; e < e1; ++e) __builtin_prefetch(a.S + static_cast<int64_t>(a.indices[e]) * a.k0);
}

// Loads one byte of every cache line of a span and folds them into one word, consumed when
// the object dies, so that the lines are in cache when the code that needs them runs. A load
// always completes, where a software prefetch may be dropped (on the development machine, a
// virtualised EPYC, prefetching the rows of a sequential algorithm's step gained nothing and
// loading them gained 1.19x); the loads of a set do not depend on each other, so their misses
// overlap.
class LineTouch {
 public:
  LineTouch() = default;
  LineTouch(const LineTouch&) = delete;
  LineTouch& operator=(const LineTouch&) = delete;
  ~LineTouch() { asm volatile("" : : "r"(acc_)); }
  template <typename T>
  void span(const T* p, int64_t count) {
    if (count <= 0) return;
    const unsigned char* c = reinterpret_cast<const unsigned char*>(p);
    const unsigned char* end = reinterpret_cast<const unsigned char*>(p + count);
    acc_ ^= *c;
    for (c += 64 - (reinterpret_cast<uintptr_t>(c) & 63); c < end; c += 64) acc_ ^= *c;
  }

 private:
  unsigned acc_ = 0;
};

// Prefetches every cache line of count values from p.
template <typename T>
inline void prefetch_span(const T* p, int64_t count) {
  if (count <= 0) return;
  const char* c = reinterpret_cast<const char*>(p);
  const char* end = reinterpret_cast<const char*>(p + count);
  __builtin_prefetch(c);
  for (c += 64 - (reinterpret_cast<uintptr_t>(c) & 63); c < end; c += 64) __builtin_prefetch(c);
}

// Brings a small set of selected rows into cache before they are computed, level by level
// over the whole set, so that the cache misses of one level overlap instead of following
// each other (active steps of a sequential algorithm touch a few dozen scattered rows).
template <typename T>
inline void touch_rows(const LayerArgs<T>& L, bool reads_edges, int64_t end) {
  const EdgePassArgs<T>& a = L.edges;
  LineTouch touch;
  bool any_edges = false;
  const int64_t kw = message_width(a);
  for (int64_t i = 0; i < end; ++i) {
    const int64_t v = a.rows[i];
    const bool edges = row_reads_edges(L, reads_edges, v);
    any_edges = any_edges || edges;
    if (edges) touch.span(a.indptr + v, 2);
    else if (L.agg_store) touch.span(L.agg_store + v * kw, kw);
    touch.span(L.z + v * L.fz, L.fz);
    if (L.out != L.z) touch.span(L.out + v * L.fz, L.d);  // in place: the row just touched
  }
  if (!any_edges) return;
  for (int64_t i = 0; i < end; ++i) {
    const int64_t v = a.rows[i];
    if (!row_reads_edges(L, reads_edges, v)) continue;
    const int64_t e0 = a.indptr[v], e1 = std::min(a.indptr[v + 1], e0 + 16);
    touch.span(a.indices + e0, e1 - e0);
  }
  for (int64_t i = 0; i < end; ++i) {
    const int64_t v = a.rows[i];
    if (!row_reads_edges(L, reads_edges, v)) continue;
    const int64_t e0 = a.indptr[v], e1 = std::min(a.indptr[v + 1], e0 + 16);
    for (int64_t e = e0; e < e1; ++e) touch.span(a.S + static_cast<int64_t>(a.indices[e]) * a.k0, a.k0);
  }
}

// Sets of at most this many rows are loaded whole (touch_rows) before they are computed.
constexpr int64_t kTouchWhole = 64;

// Rows [begin, end) of layer_rows; returns how many changed a watched channel.
template <typename T>
inline int64_t layer_row_range(const LayerArgs<T>& L, const LayerPlan<T>& P, RowWorkspace<T>& w, int64_t begin,
                               int64_t end) {
  int64_t num_changed = 0;
  const bool reads_edges = !P.edges.source_free;
  const bool whole = L.edges.rows && begin == 0 && end <= kTouchWhole;
  if (whole) touch_rows(L, reads_edges, end);
  if (P.block_rows) {
    for (int64_t i = begin; i < end; i += kBlockRows) {
      if (L.edges.rows && !whole) prefetch_ahead(L, reads_edges, i, end);
      num_changed += layer_row_block(L, P, w, i, std::min(kBlockRows, end - i));
    }
    return num_changed;
  }
  for (int64_t i = begin; i < end; ++i) {
    if (L.edges.rows && !whole) prefetch_ahead(L, reads_edges, i, end);
    num_changed += layer_row(L, P, w, i) ? 1 : 0;
  }
  return num_changed;
}

}  // namespace detail

// Rows up to this many run on the calling thread: a parallel region costs more than them.
constexpr int64_t kSerialRows = 512;
// Nor is a parallel region opened for less than about this many multiply-adds (some 100 us
// on one core): uncontended it saves little there, and on a machine whose other cores are
// busy every region waits for a descheduled thread (a scheduler time slice, milliseconds),
// which made small active steps 1.5-20x slower with two threads than with one.
constexpr int64_t kSerialWork = int64_t{1} << 18;

// Whether `rows` rows of `work` multiply-adds each run on the calling thread.
inline bool run_serially(int64_t rows, int64_t work) {
  return rows <= kSerialRows || rows <= kSerialWork / std::max<int64_t>(work, 1);
}

// The row loop of layer_pass, with its plan already built and the arguments validated.
// `serial` (optional) holds the calling thread's buffers, reused for steps small enough to
// run without a parallel region (run_steps keeps one per layer across steps).
template <typename T>
int64_t layer_rows(const LayerArgs<T>& L, const LayerPlan<T>& P, RowWorkspace<T>* serial = nullptr) {
  const int64_t rows = L.edges.rows ? L.edges.num_rows : L.edges.num_nodes;
  if (run_serially(rows, P.row_work)) {
    if (serial) return detail::layer_row_range(L, P, *serial, 0, rows);
    RowWorkspace<T> w(P);
    return detail::layer_row_range(L, P, w, 0, rows);
  }
  // chunks small enough to balance the threads on a few thousand rows, large enough to
  // amortise the scheduling on a million
  const int64_t threads = max_threads();
  const int64_t chunk = std::clamp<int64_t>(rows / (8 * std::max<int64_t>(threads, 1)), 64, 1024);
  const int64_t chunks = (rows + chunk - 1) / chunk;
  int64_t num_changed = 0;
#pragma omp parallel reduction(+ : num_changed)
  {
    RowWorkspace<T> w(P);
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c)
      num_changed += detail::layer_row_range(L, P, w, c * chunk, std::min(rows, (c + 1) * chunk));
  }
  return num_changed;
}

// One whole processor layer: edge_pass, then for each row the update MLP and gate:
// new = update(z_v, agg_v); g = sigmoid(gate(z_v, agg_v)); h'_v = g * new + (1 - g) * h_v.
// Returns the number of computed rows whose watched channels changed (bitwise inequality,
// so a NaN counts as a change).
template <typename T>
int64_t layer_pass(const LayerArgs<T>& L, bool check_edges = false) {
  validate(L.edges, check_edges);
  validate_layer(L);
  const LayerPlan<T> plan(L);
  return layer_rows(L, plan);
}


inline void set_threads(int n) {
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace engine
