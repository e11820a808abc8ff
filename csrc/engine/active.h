// engine/active.h - the step loop of any model in the family, in C++.
//
// A node's next state is a deterministic function of its own state and inputs, of its
// in-neighbours' states and edge inputs, and of the graph state where a pointer addresses
// the node. So when an application of layer i sees the set D of rows whose inputs changed
// since its previous application (their state, or address and broadcast features that the
// layer reads), only D and the out-neighbours of the rows of D whose change its messages read
// can change; every other row keeps the output it had then. A state channel counts for D
// only if the layer's output depends on it in value: a channel it never reads and gates with
// a constant 1 reaches its output as 0 * h alone, so there only a change of sign or
// finiteness counts. run_steps recomputes exactly those rows (an active application), or
// every row when that is cheaper (a dense application), keeps the per-node parts of each
// first message layer and each layer's readout values up to date at changed rows only, and
// maintains the readout reductions with 16-ary trees, so that a step costs about what it
// changes. A layer whose groups are all max/min/argmax/argmin can also keep every row's
// aggregate (agg_store; edge features found through out_edge_ids): the sources whose
// messages changed push the old and new message to their out-neighbours
// (detail::push_message), a row whose aggregate is unchanged by that is skipped, and the
// others take it from the store instead of visiting their in-edges. Results do not depend on
// which kind of application ran, nor on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/message_passing.h"

namespace engine {

// One processor layer of the loop.
template <typename T>
struct LoopLayer {
  LayerArgs<T> layer;        // edges.S / edges.Q / edges.rows / z / out are managed by run_steps
  const T* W_src = nullptr;  // fz x k0: S[v] = z_v @ W_src (sums over z's columns ascending)
  const T* W_dst = nullptr;  // fz x k0 or null: Q[v] = z_v @ W_dst + bias; null: Q is the bias row
  const T* bias = nullptr;   // k0
  T* S = nullptr;            // n x k0, kept up to date with this layer's input
  T* Q = nullptr;            // n x k0 (or 1 x k0 when W_dst is null)
  // Optional readout and graph update (readout.Wa is unused: readouts read [h', x]).
  bool has_readout = false;
  NodeMLP<T> readout;        // on the first `hx` columns of the output rows
  // per readout channel, a ReadoutReduce code: min/max (NaN-ignoring), or an argmin/argmax
  // key followed by its payload channels (taken from the node with the best key, lowest index
  // on ties, NaN keys never winning, node 0 if all keys are NaN)
  std::vector<uint8_t> readout_kinds;
  T* readout_cache = nullptr;  // n x r: readout values of every node
  T* readout_tree = nullptr;   // readout_tree_rows(n) x r: the levels of a 16-ary reduction tree
  bool has_graph_update = false;
  NodeMLP<T> graph_update;   // by parts: g (Wz, dg rows) and the reductions (Wa, r rows)
  bool has_graph_gate = false;
  NodeMLP<T> graph_gate;
  T* last_g = nullptr;       // dg: the graph state this layer saw at its previous application
  // Optional (n x k_out): every row's aggregate, for incremental aggregation (see
  // detail::push_message); only for max/min and argmax/argmin groups (and, over messages with
  // edge features, with LoopArgs::out_edge_ids). With arg groups, winner_store (n x their
  // number) holds each row's winners.
  T* agg_store = nullptr;
  int32_t* winner_store = nullptr;
  // Which input columns this layer's messages read (nonzero rows of W_src): a change there
  // reaches the out-neighbours; a change elsewhere only the row itself. Set by run_steps.
  std::vector<uint8_t> src_reads;
  // Which input columns the layer reads at all (messages, update, gate): a change elsewhere
  // leaves its output as it was. Set by run_steps.
  std::vector<uint8_t> node_reads;
  std::vector<int64_t> src_rows, dst_rows;  // nonzero rows of W_src / W_dst
  std::vector<char> src_zero, dst_zero;     // the complement, as masks
};

template <typename T>
struct LoopArgs {
  std::vector<LoopLayer<T>> layers;
  int64_t n = 0, m = 0, fz = 0, d = 0, hx = 0, dg = 0;
  const int64_t* in_indptr = nullptr;  // CSR by destination (in-degrees)
  const int64_t* out_indptr = nullptr;
  const int32_t* out_targets = nullptr;
  // optional (m): each out-edge's position in the CSR by destination, where its edge features
  // are (needed by incremental aggregation over messages with edge features)
  const int64_t* out_edge_ids = nullptr;
  // ring buffers, one per layer, each n x fz with x filled: application k reads buffer
  // (k - 1) mod L and writes buffer k mod L, so each layer's buffer holds its previous output,
  // which its next application compares with. A single layer updates its one buffer in place:
  // a row reads only its own input (its messages read the per-node parts S and Q, computed
  // before any row is written). buf_g[j] (dg): the graph state whose addresses buffer j's
  // address/broadcast columns hold (NaN: none).
  std::vector<T*> ring;
  std::vector<T*> buf_g;
  std::vector<int64_t> pointers, broadcast;  // graph channels
  int64_t addr_col = 0, bcast_col = 0;
  T* g = nullptr;  // dg: the graph state, updated in place
  const uint8_t* watch = nullptr;        // d
  std::vector<int64_t> graph_watch;      // graph channels watched for the fixed point
  Mode mode = Mode::Auto;
  double dense_nodes = 0.1, dense_edges = 0.3;
  int64_t max_steps = 0;
  bool until_fixed = true;
};

struct LoopResult {
  int64_t steps = 0;
  bool converged = false;
  int64_t node_updates = 0;
  int64_t applications = 0;  // layer applications done in total (k), for the ring position
  int64_t aggregates_reused = 0;  // active row updates whose aggregate came from agg_store
};

namespace detail {

template <typename T>
inline int64_t addressed(const LoopArgs<T>& a, const T* g, int64_t k) {
  const T val = g[a.pointers[static_cast<size_t>(k)]];
  if (!(val == val) || val < T(0) || val >= static_cast<T>(a.n) || val != std::floor(val)) return -1;
  return static_cast<int64_t>(val);
}

// Write buffer `buf`'s address and broadcast columns for graph state g (clearing those set
// for the buffer's previous state), and remember g for the buffer.
template <typename T>
void set_address(const LoopArgs<T>& a, T* buf, T* buf_g, const T* g) {
  const int64_t np = static_cast<int64_t>(a.pointers.size());
  for (int64_t k = 0; k < np; ++k) {
    const int64_t v = addressed(a, buf_g, k);
    if (v >= 0)
      for (int64_t c = a.addr_col; c < a.fz; ++c) buf[v * a.fz + c] = T(0);
  }
  for (int64_t k = 0; k < np; ++k) {
    const int64_t v = addressed(a, g, k);
    if (v < 0) continue;
    buf[v * a.fz + a.addr_col + k] = T(1);
    for (size_t b = 0; b < a.broadcast.size(); ++b) buf[v * a.fz + a.bcast_col + b] = g[a.broadcast[b]];
  }
  std::copy(g, g + a.dg, buf_g);
}

// Per state channel c < d: whether layer `ly`'s output depends on h_c in value: it reads the
// column (messages, update or gate), or passes h_c through a gate that is not exactly 1 (a
// gate column whose last weights are all zero is the constant sigmoid(act(bias))).
template <typename T>
std::vector<uint8_t> state_reads(const LoopLayer<T>& ly, int64_t d, int64_t k_out) {
  std::vector<uint8_t> reads(ly.node_reads.begin(), ly.node_reads.begin() + d);
  if (!ly.layer.gated) return reads;
  const NodeMLP<T>& g = ly.layer.gate;
  const int64_t fz = static_cast<int64_t>(ly.node_reads.size());
  for (int64_t c = 0; c < d; ++c) {
    bool constant = g.ln_gamma == nullptr;
    T pre;
    if (g.tail.empty()) {
      for (int64_t j = 0; j < fz && constant; ++j) constant = g.Wz[j * g.w0 + c] == T(0);
      for (int64_t j = 0; j < k_out && constant; ++j) constant = g.Wa[j * g.w0 + c] == T(0);
      pre = activate(g.b0 ? g.b0[c] : T(0), g.act0);
    } else {
      const DenseLayer<T>& last = g.tail.back();
      for (int64_t j = 0; j < last.in && constant; ++j) constant = last.weight[j * last.out + c] == T(0);
      pre = activate(last.bias ? last.bias[c] : T(0), last.act);
    }
    if (!(constant && sigmoid(pre) == T(1))) reads[static_cast<size_t>(c)] = 1;
  }
  return reads;
}

// Rows whose address/broadcast features differ between graph states g_old and g_new and
// whose changed features the layer reads at all (`node_reads`: its update, gate or either
// message part) go to `out`; those whose changed features its messages read (`msg_reads`, a
// subset of node_reads) also to `out_msg`. A pointer that moves changes its address column at
// both ends and may add or remove the broadcast columns there; a changed broadcast value
// changes that column at every addressed node. A row whose changed features the layer never
// reads keeps its previous output.
template <typename T>
void address_delta(const LoopArgs<T>& a, const T* g_old, const T* g_new, const std::vector<uint8_t>& msg_reads,
                   const std::vector<uint8_t>& node_reads, std::vector<int64_t>& out, std::vector<int64_t>& out_msg) {
  const int64_t np = static_cast<int64_t>(a.pointers.size());
  bool bcast_same = true;
  bool any_node = false, any_msg = false;          // the layer reads some broadcast column
  bool changed_node = false, changed_msg = false;  // ... some broadcast column whose value changed
  for (size_t b = 0; b < a.broadcast.size(); ++b) {
    const size_t col = static_cast<size_t>(a.bcast_col) + b;
    const bool same = g_old[a.broadcast[b]] == g_new[a.broadcast[b]];
    bcast_same = bcast_same && same;
    any_node = any_node || node_reads[col];
    any_msg = any_msg || msg_reads[col];
    changed_node = changed_node || (!same && node_reads[col]);
    changed_msg = changed_msg || (!same && msg_reads[col]);
  }
  for (int64_t k = 0; k < np; ++k) {
    const int64_t x = addressed(a, g_old, k), y = addressed(a, g_new, k);
    if (x == y) continue;  // same column; a broadcast change is handled below
    const size_t col = static_cast<size_t>(a.addr_col + k);
    const bool node = node_reads[col] || any_node, msg = msg_reads[col] || any_msg;
    for (int64_t v : {x, y}) {
      if (v < 0) continue;
      if (node) out.push_back(v);
      if (msg) out_msg.push_back(v);
    }
  }
  if (bcast_same || !changed_node) return;
  for (int64_t k = 0; k < np; ++k)  // a node addressed by several pointers sees the broadcast through any
    for (int64_t v : {addressed(a, g_old, k), addressed(a, g_new, k)})
      if (v >= 0) {
        out.push_back(v);
        if (changed_msg) out_msg.push_back(v);
      }
}

// The readout reductions are kept in a 16-ary tree over the nodes: level 0 is the cache
// (n x r), level k >= 1 has ceil(n_{k-1} / 16) rows, row j reducing rows [16 j, 16 j + 16) of
// level k - 1, up to a level of one row (the root). A changed leaf updates one row per
// level, reading one contiguous block each, and stops where a level is unchanged. Every
// entry is the leftmost extremal value of its block (NaN only if all are NaN), and an
// argmin/argmax group the channels of its block's leftmost row with the best key, so the
// root is the leftmost extremal leaf whatever the tree's shape.
constexpr int64_t kTreeFanout = 16;

inline int64_t readout_tree_rows(int64_t n) {
  int64_t rows = 0, m = std::max<int64_t>(n, 1);
  do {
    m = (m + kTreeFanout - 1) / kTreeFanout;
    rows += m;
  } while (m > 1);
  return rows;
}

template <typename T>
inline T tree_pick(T x, T y, bool is_max) {
  // NaN-ignoring max/min (numpy.fmax/fmin)
  if (x != x) return y;
  if (y != y) return x;
  return is_max ? (y > x ? y : x) : (y < x ? y : x);
}

// Whether w values have the same bits (a fixed-size memcmp per value, which compiles inline).
template <typename T>
inline bool same_bits(const T* x, const T* y, int64_t w) {
  for (int64_t j = 0; j < w; ++j)
    if (std::memcmp(x + j, y + j, sizeof(T)) != 0) return false;
  return true;
}

// The row in [lo, hi) of `rows` (r columns; hi - lo <= kTreeFanout) whose column c is the
// best key: the largest (IsMax) or smallest, NaN never winning, the leftmost on ties and if
// all are NaN. Two passes free of data-dependent branches: the best key among the non-NaN
// ones (starting from an infinity that every number ties or beats, which a NaN never
// replaces; two interleaved chains), then the first row whose key equals it.
template <bool IsMax, typename T>
inline int64_t tree_arg_block(const T* rows, int64_t r, int64_t c, int64_t lo, int64_t hi) {
  static_assert(kTreeFanout <= 32, "the rows holding the best key are a 32-bit mask");
  const T* key = rows + lo * r + c;
  const int64_t len = hi - lo;
  const T worst = IsMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  T even = worst, odd = worst;
  int64_t x = 0;
  for (; x + 1 < len; x += 2) {
    const T k0 = key[x * r], k1 = key[(x + 1) * r];
    even = (IsMax ? k0 > even : k0 < even) ? k0 : even;
    odd = (IsMax ? k1 > odd : k1 < odd) ? k1 : odd;
  }
  if (x < len) even = (IsMax ? key[x * r] > even : key[x * r] < even) ? key[x * r] : even;
  const T best = (IsMax ? odd > even : odd < even) ? odd : even;
  uint32_t hits = 0;
  for (x = 0; x < len; ++x) hits |= static_cast<uint32_t>(key[x * r] == best) << x;
  return lo + (hits != 0 ? __builtin_ctz(hits) : 0);
}

template <typename T>
inline int64_t tree_arg(const T* rows, int64_t r, int64_t c, int64_t lo, int64_t hi, bool is_max) {
  return is_max ? tree_arg_block<true>(rows, r, c, lo, hi) : tree_arg_block<false>(rows, r, c, lo, hi);
}

// A readout group: one min/max channel, or an argmin/argmax key and its payload.
struct ReadoutGroup {
  int64_t start = 0, stop = 0;
  ReadoutReduce kind = ReadoutReduce::Min;
  bool is_max() const { return kind == ReadoutReduce::Max || kind == ReadoutReduce::ArgMax; }
  bool is_arg() const { return kind == ReadoutReduce::ArgMin || kind == ReadoutReduce::ArgMax; }
};

// The groups of a readout's per-channel codes. Throws std::invalid_argument on a malformed
// code list.
inline std::vector<ReadoutGroup> readout_groups(const std::vector<uint8_t>& kinds) {
  const int64_t r = static_cast<int64_t>(kinds.size());
  std::vector<ReadoutGroup> groups;
  for (int64_t c = 0; c < r;) {
    const int code = kinds[static_cast<size_t>(c)];
    if (code > static_cast<int>(ReadoutReduce::Payload))
      throw std::invalid_argument("unknown readout reduce code");
    if (code == static_cast<int>(ReadoutReduce::Payload))
      throw std::invalid_argument("a readout payload channel must follow an argmin/argmax key");
    ReadoutGroup g;
    g.start = c;
    g.kind = static_cast<ReadoutReduce>(code);
    g.stop = c + 1;
    if (g.is_arg())
      while (g.stop < r && kinds[static_cast<size_t>(g.stop)] == static_cast<uint8_t>(ReadoutReduce::Payload)) ++g.stop;
    groups.push_back(g);
    c = g.stop;
  }
  return groups;
}

// Entry j of a tree level reduced from rows [16 j, 16 j + 16) of the level below (r columns),
// for one group; returns whether the entry changed (bitwise).
template <typename T>
bool reduce_group(const T* below, int64_t rows_below, int64_t j, T* above, int64_t r, const ReadoutGroup& g) {
  const int64_t lo = j * kTreeFanout, hi = std::min(rows_below, lo + kTreeFanout);
  const int64_t c = g.start, w = g.stop - g.start;
  T* dst = above + j * r + c;
  if (!g.is_arg()) {
    T acc = below[lo * r + c];
    for (int64_t x = lo + 1; x < hi; ++x) acc = tree_pick(acc, below[x * r + c], g.is_max());
    const bool changed = !same_bits(&acc, dst, 1);
    *dst = acc;
    return changed;
  }
  const T* src = below + tree_arg(below, r, c, lo, hi, g.is_max()) * r + c;
  const bool changed = !same_bits(src, dst, w);
  for (int64_t j = 0; j < w; ++j) dst[j] = src[j];
  return changed;
}

// Every level of the tree from the leaves (`cache`, n x r).
template <typename T>
void tree_rebuild(const T* cache, int64_t n, T* tree, int64_t r, const std::vector<ReadoutGroup>& groups) {
  const T* below = cache;
  int64_t rows_below = n;
  T* level = tree;
  do {
    const int64_t rows_here = (rows_below + kTreeFanout - 1) / kTreeFanout;
    for (int64_t j = 0; j < rows_here; ++j)
      for (const auto& g : groups) reduce_group(below, rows_below, j, level, r, g);
    below = level;
    level += rows_here * r;
    rows_below = rows_here;
  } while (rows_below > 1);
}

// Brings the tree up to date after leaf v changed from `old_leaf` (r values; used as
// scratch) to cache[v]. Per group and level, the parent entry becomes the changed child when
// the child's new key beats the entry outright; it stays when neither the child's old nor its
// new key could be the block's best (both strictly worse, or, for a min/max channel, the
// new value is the entry's bits); otherwise the block is reduced again. A group stops at
// the first level where its entry is unchanged, and a group whose leaf values kept their bits
// changes nothing; these shortcuts give the entries a full reduction gives, without reading
// the blocks on the way. `saved` holds r values.
template <typename T>
void tree_update_leaf(const T* cache, int64_t n, T* tree, int64_t r, const std::vector<ReadoutGroup>& groups,
                      int64_t v, T* old_leaf, T* saved, std::vector<uint8_t>& live) {
  live.resize(groups.size());
  size_t num_live = 0;
  for (size_t k = 0; k < groups.size(); ++k) {
    const ReadoutGroup& g = groups[k];
    live[k] = same_bits(cache + v * r + g.start, old_leaf + g.start, g.stop - g.start) ? 0 : 1;
    num_live += live[k];
  }
  if (num_live == 0) return;
  const T* below = cache;
  const T* child = cache + v * r;
  T* child_old = old_leaf;
  int64_t rows_below = n, j = v;
  T* level = tree;
  do {
    j /= kTreeFanout;
    const int64_t rows_here = (rows_below + kTreeFanout - 1) / kTreeFanout;
    T* entry = level + j * r;
    std::copy(entry, entry + r, saved);
    for (size_t k = 0; k < groups.size(); ++k) {
      if (!live[k]) continue;
      const ReadoutGroup& g = groups[k];
      const int64_t c = g.start;
      const T x = child[c], o = child_old[c], e = entry[c];
      const bool numbers = x == x && o == o && e == e;
      const bool mx = g.is_max();
      bool changed;
      if (numbers && (mx ? x > e : x < e)) {
        std::copy(child + c, child + g.stop, entry + c);
        changed = true;
      } else if (numbers && (mx ? (e > x && e > o) : (e < x && e < o))) {
        changed = false;
      } else if (numbers && !g.is_arg() && same_bits(&x, &e, 1)) {
        changed = false;
      } else {
        changed = reduce_group(below, rows_below, j, level, r, g);
      }
      if (!changed) {
        live[k] = 0;
        --num_live;
      }
    }
    if (num_live == 0) break;  // the levels above are unchanged
    std::copy(saved, saved + r, child_old);
    child = entry;
    below = level;
    level += rows_here * r;
    rows_below = rows_here;
  } while (rows_below > 1);
}

// Incremental aggregation: when one message of a row, from source u, changes from o to x,
// each group of the row's aggregate `agg` is updated by its kind's Reducer::push (reduce.h),
// exactly, or left to a reduction. Applied per changed message, each intermediate aggregate
// is that of a real set of messages, so several changes compose. `winners` holds the arg
// group winners in group order. Returns 1 if the aggregate's bits changed, 0 if not, and -1
// where no rule applies (the row must reduce its in-edges again; `agg` and `winners` may
// then be partly updated).
template <typename T>
inline int push_message(T* agg, int32_t* winners, const T* o, const T* x, int64_t u, const std::vector<Group>& groups) {
  int changed = 0;
  int64_t slot = 0;
  for (const auto& g : groups) {
    int32_t* winner = is_arg(g.kind) ? winners + slot++ : nullptr;
    const int r = dispatch_reduce(g.kind, [&](auto kind) {
      return Reducer<T, decltype(kind)::value>::push(agg, winner, o, x, u, g.start, g.stop);
    });
    if (r < 0) return -1;
    changed |= r;
  }
  return changed;
}

// Whether a layer's aggregates can be kept incrementally: every group of an incremental kind
// (reduce.h), and messages that read no edge features unless the out-edges' ids into the edge
// features are known.
template <typename T>
inline bool incremental_aggregation_applies(const EdgePassArgs<T>& E, bool edge_ids) {
  if (E.fe > 0 && !edge_ids) return false;
  for (const auto& g : E.groups)
    if (!reduce_info(g.kind).incremental) return false;
  return true;
}

// Whether every out-neighbour of a source gets the same message from it: no edge features,
// and one destination part for all rows (shared, or W_dst all zero).
template <typename T>
inline bool one_message_per_source(const LoopLayer<T>& ly) {
  const EdgePassArgs<T>& E = ly.layer.edges;
  return E.fe == 0 && (E.q_shared || ly.dst_rows.empty());
}

// The pushes of a wide frontier land on scattered rows: a cursor over the same (source,
// out-edge) sequence as the pushes, kPushAhead edges ahead of them, prefetches each target's
// push state and stored aggregate; the cursor's own reads (the out-edge ranges of sources
// kSourcesAhead further on, and their first targets) and the sources' message parts (`parts`,
// `k0` values per node) are prefetched before it gets there.
// Prefetches only: what the pushes compute does not depend on it. `on` false: does nothing.
template <typename T>
struct PushPrefetch {
  static constexpr int64_t kPushAhead = 24;
  static constexpr size_t kSourcesAhead = 8;
  const int64_t* indptr;
  const int32_t* targets;
  const std::vector<int64_t>& sources;
  const uint8_t* state;
  const T* agg;
  int64_t kw;
  const T* parts;
  int64_t k0;
  bool on;
  size_t j = 0;  // the cursor: source j, out-edge e (of range [e, end))
  int64_t e = 0, end = 0;

  void start() {
    if (!on) return;
    for (size_t s = 0; s < std::min(sources.size(), kSourcesAhead); ++s) __builtin_prefetch(indptr + sources[s]);
    j = 0;
    e = end = 0;
    if (!sources.empty()) enter(0);
    for (int64_t i = 0; i < kPushAhead; ++i) next();
  }
  // one push happened: the cursor moves one out-edge on
  ENGINE_INLINE void next() {
    if (!on) return;
    while (e >= end) {
      if (++j >= sources.size()) return;
      enter(j);
    }
    const int64_t w = targets[e++];
    __builtin_prefetch(state + w, 1);
    __builtin_prefetch(agg + w * kw, 1);
  }

 private:
  void enter(size_t s) {
    e = indptr[sources[s]];
    end = indptr[sources[s] + 1];
    if (s + kSourcesAhead < sources.size()) __builtin_prefetch(indptr + sources[s + kSourcesAhead]);
    if (s + kSourcesAhead / 2 < sources.size()) {
      const int64_t u = sources[s + kSourcesAhead / 2];
      __builtin_prefetch(targets + indptr[u]);
      __builtin_prefetch(parts + u * k0);
    }
  }
};

// One run's incremental aggregation (see push_message) for the layers that keep their
// aggregates: which nodes an application's pushes reached, and the previous message parts.
template <typename T>
struct IncrementalAggregation {
  enum PushState : uint8_t { kUntouched = 0, kSame = 1, kChanged = 2, kReduce = 3 };
  std::vector<uint8_t> state;       // per node, a PushState
  std::vector<uint8_t> from_store;  // per node: the selected row reads its aggregate from the store
  std::vector<int64_t> touched;
  std::vector<T> old_S, old_Q, msg_old;

  IncrementalAggregation(const std::vector<LoopLayer<T>>& layers, int64_t n) {
    if (std::any_of(layers.begin(), layers.end(), [](const LoopLayer<T>& ly) { return ly.agg_store != nullptr; })) {
      state.assign(static_cast<size_t>(n), kUntouched);
      from_store.assign(static_cast<size_t>(n), 0);
    }
  }

  // Before the per-node parts of D are recomputed: the source parts of the sources, and (if
  // they can change) the destination parts of D.
  void save_parts(const LoopLayer<T>& ly, const std::vector<int64_t>& sources, const std::vector<int64_t>& delta) {
    const int64_t k0 = ly.layer.edges.k0;
    old_S.resize(sources.size() * static_cast<size_t>(k0));
    for (size_t j = 0; j < sources.size(); ++j)
      std::copy(ly.S + sources[j] * k0, ly.S + sources[j] * k0 + k0, old_S.begin() + static_cast<int64_t>(j) * k0);
    if (!ly.W_dst || ly.dst_rows.empty()) return;
    old_Q.resize(delta.size() * static_cast<size_t>(k0));
    for (size_t j = 0; j < delta.size(); ++j)
      std::copy(ly.Q + delta[j] * k0, ly.Q + delta[j] * k0 + k0, old_Q.begin() + static_cast<int64_t>(j) * k0);
  }

  // After: push each source's old and new messages into its out-neighbours' (and, with the
  // self-edge, its own) stored aggregates. `rows` becomes D and the other rows whose aggregate
  // changed; from_store marks those that read it from the store (all but the rows whose
  // destination part changed or where a push did not apply). Returns how many do. `mark`
  // (per node, all 0) is left as it was.
  int64_t push(const LoopArgs<T>& a, const LoopLayer<T>& ly, const Plan<T>& ep, Scratch<T>& sc,
               const std::vector<int64_t>& sources, const std::vector<int64_t>& delta, std::vector<uint8_t>& mark,
               std::vector<int64_t>& rows) {
    const EdgePassArgs<T>& E = ly.layer.edges;
    const int64_t k0 = E.k0, kw = ep.k_out;
    // every row's destination part is the bias when W_dst is all zero (it cannot change)
    const bool edge_terms = E.fe > 0;
    const bool q_uniform = E.q_shared || ly.dst_rows.empty();
    const bool per_source = one_message_per_source(ly);
    if (!q_uniform)
      for (size_t j = 0; j < delta.size(); ++j)
        if (std::memcmp(old_Q.data() + static_cast<int64_t>(j) * k0, ly.Q + delta[j] * k0,
                        static_cast<size_t>(k0) * sizeof(T)) != 0)
          state[static_cast<size_t>(delta[j])] = kReduce;
    touched.clear();
    msg_old.resize(static_cast<size_t>(kw));
    // the old message into msg_old, the new one in the scratch buffers (msg_new: valid until
    // the next call)
    const T* msg_new = nullptr;
    auto messages = [&](const T* so, const T* sn, const T* q, int64_t e) {  // e: edge id, or -1
      const T* mo = message_from_parts(E, ep, sc, so, q, e);
      std::copy(mo, mo + kw, msg_old.begin());
      msg_new = message_from_parts(E, ep, sc, sn, q, e);
    };
    if (static_cast<int64_t>(sources.size()) <= kTouchWhole) {
      // a few sources (a sequential algorithm's step): their targets' states and stored
      // aggregates, fetched together (scattered on large graphs)
      LineTouch touch;
      for (int64_t u : sources) touch.span(a.out_indptr + u, 2);
      for (int64_t u : sources) touch.span(a.out_targets + a.out_indptr[u], a.out_indptr[u + 1] - a.out_indptr[u]);
      for (int64_t u : sources)
        for (int64_t e = a.out_indptr[u]; e < a.out_indptr[u + 1]; ++e) {
          const int64_t w = a.out_targets[e];
          touch.span(state.data() + w, 1);
          touch.span(ly.agg_store + w * kw, kw);
        }
    }
    // many sources (a wide frontier): a cursor kPushAhead out-edges ahead of the pushes
    // prefetches each target's push state and stored aggregate, and the cursor's own reads
    // (the next sources' out-edge ranges) are prefetched further ahead still
    PushPrefetch<T> ahead{a.out_indptr, a.out_targets, sources, state.data(), ly.agg_store, kw, ly.S, k0,
                       static_cast<int64_t>(sources.size()) > kTouchWhole};
    ahead.start();
    for (size_t j = 0; j < sources.size(); ++j) {
      const int64_t u = sources[j];
      const T* so = old_S.data() + static_cast<int64_t>(j) * k0;
      const T* sn = ly.S + u * k0;
      if (per_source) messages(so, sn, E.Q + (E.q_shared ? 0 : u * k0), -1);  // the same to every target
      auto push_to = [&](int64_t w, int64_t e) {
        uint8_t& st = state[static_cast<size_t>(w)];
        if (st == kReduce) return;
        if (st == kUntouched) touched.push_back(w);
        if (!per_source) messages(so, sn, E.Q + (E.q_shared ? 0 : w * k0), e);
        const int r = push_message(ly.agg_store + w * kw, ly.winner_store + w * ep.num_arg, msg_old.data(),
                                   msg_new, u, E.groups);
        st = r < 0 ? kReduce : (r > 0 || st == kChanged) ? kChanged : kSame;
      };
      if (E.include_self) push_to(u, -1);
      for (int64_t e = a.out_indptr[u]; e < a.out_indptr[u + 1]; ++e) {
        ahead.next();
        push_to(a.out_targets[e], edge_terms ? a.out_edge_ids[e] : -1);
      }
    }
    rows.clear();
    for (int64_t v : delta) { mark[v] = 1; rows.push_back(v); }
    for (int64_t w : touched)
      if (!mark[w] && state[static_cast<size_t>(w)] >= kChanged) { mark[w] = 1; rows.push_back(w); }
    int64_t reused = 0;
    for (int64_t v : rows) {
      mark[v] = 0;
      const bool reduce = state[static_cast<size_t>(v)] == kReduce;
      from_store[static_cast<size_t>(v)] = reduce ? 0 : 1;
      reused += reduce ? 0 : 1;
    }
    for (int64_t v : touched) state[static_cast<size_t>(v)] = kUntouched;
    for (int64_t v : delta) state[static_cast<size_t>(v)] = kUntouched;
    return reused;
  }
};

template <typename T>
void node_readout(const LoopLayer<T>& L, const NodePlan<T>& plan, const T* row, int64_t hx, T* out, T* xa,
                  T* xb) {
  const T* r = node_mlp<T>(L.readout, plan, row, hx, static_cast<const T*>(nullptr), 0, xa, xb);
  const int64_t w = static_cast<int64_t>(L.readout_kinds.size());
  std::copy(r, r + w, out);
}

}  // namespace detail

namespace detail {

// The step loop of run_steps: what it derives from the layers once (plans, what each layer
// reads, whether it keeps its aggregates), the buffers it reuses across applications, and one
// method per phase of a layer application.
template <typename T>
class StepLoop {
 public:
  explicit StepLoop(LoopArgs<T>& a);
  LoopResult run(std::vector<int64_t>& changed, bool all_changed, int64_t applications);

 private:
  void prepare_layer(LoopLayer<T>& ly);
  int64_t apply(int64_t i, std::vector<int64_t>& changed, bool everything, LoopResult& res);
  bool select_rows(int64_t i, const std::vector<int64_t>& changed, bool everything);
  void update_parts(LoopLayer<T>& ly, const T* inp, bool everything);
  void record_changes(std::vector<int64_t>& changed, bool all, LoopResult& res);
  void update_readouts(LoopLayer<T>& ly, int64_t i, const T* out, bool full);
  void update_graph(LoopLayer<T>& ly, int64_t i);

  LoopArgs<T>& a;
  const int64_t n, d, fz, dg, L;
  std::vector<uint8_t> flags, msg_flags, next_flags, mark;
  // rows of the current application; delta: rows whose input changed (D); adelta: rows whose
  // address features changed (adelta_msg: those whose messages read them); msg_changed: rows
  // whose messages changed; written: rows whose output changed (for the readout); sources:
  // rows whose changed messages an incremental application pushes
  std::vector<int64_t> rows, delta, adelta, adelta_msg, msg_changed, written, sources;
  bool dense = false;  // the current application computes every row
  std::vector<std::vector<uint8_t>> next_reads;
  std::vector<T> g_start, state_start;
  std::vector<LayerPlan<T>> plans;
  std::vector<NodePlan<T>> readout_plans, update_plans, gate_plans;
  std::vector<RowWorkspace<T>> workspaces;  // the calling thread's, for small applications
  std::vector<std::vector<ReadoutGroup>> readout_groups;  // per layer
  std::vector<T> leaf_old, leaf_saved;  // a changed leaf's previous readout values, a tree entry's
  std::vector<uint8_t> group_live;      // per readout group: still changing on the way up
  IncrementalAggregation<T> incr;
  std::vector<char> use_incremental;  // per layer: keeps its aggregates incrementally
  std::vector<T> xa, xb, red, gnew, ggate;
  int64_t root_row;  // of every readout tree
};

template <typename T>
StepLoop<T>::StepLoop(LoopArgs<T>& args)
    : a(args), n(args.n), d(args.d), fz(args.fz), dg(args.dg), L(static_cast<int64_t>(args.layers.size())),
      flags(static_cast<size_t>(n), 0), msg_flags(static_cast<size_t>(n), 0), next_flags(static_cast<size_t>(n), 0),
      mark(static_cast<size_t>(n), 0), next_reads(static_cast<size_t>(L)), g_start(static_cast<size_t>(dg)),
      incr(args.layers, args.n), root_row(readout_tree_rows(args.n) - 1) {
  if (static_cast<int64_t>(a.ring.size()) != L) throw std::invalid_argument("run_steps needs one ring buffer per layer");
  int64_t scratch = std::max<int64_t>(1, dg);
  for (auto& ly : a.layers) {
    prepare_layer(ly);
    scratch = std::max({scratch, readout_plans.back().width, update_plans.back().width, gate_plans.back().width,
                        static_cast<int64_t>(ly.readout_kinds.size())});
  }
  xa.resize(static_cast<size_t>(scratch));
  xb.resize(static_cast<size_t>(scratch));
  // each layer's output is read by the next layer (cyclically; a single layer by itself): its
  // messages' state columns, and the state columns its output depends on in value. A row
  // that changed elsewhere only is not recomputed, and keeps its output (a single layer's
  // buffer is updated in place, so that output is the row's state).
  for (int64_t i = 0; i < L; ++i) {
    LoopLayer<T>& ly = a.layers[static_cast<size_t>(i)];
    const LoopLayer<T>& next = a.layers[static_cast<size_t>((i + 1) % L)];
    ly.layer.msg_watch = next.src_reads.data();
    next_reads[static_cast<size_t>(i)] = state_reads(next, d, plans[static_cast<size_t>((i + 1) % L)].edges.k_out);
    ly.layer.next_reads = next_reads[static_cast<size_t>(i)].data();
    ly.layer.next_changed = next_flags.data();
  }
}

// Validates one layer and derives what the loop needs of it: which input columns its
// messages and its update read, its plans, and whether it keeps its aggregates.
template <typename T>
void StepLoop<T>::prepare_layer(LoopLayer<T>& ly) {
  EdgePassArgs<T>& E = ly.layer.edges;
  if (ly.agg_store && !incremental_aggregation_applies(E, a.out_edge_ids != nullptr))
    throw std::invalid_argument(
        "agg_store needs message groups of incremental kinds (max, min, argmax, argmin), and out_edge_ids "
        "with edge features");
  if (ly.agg_store && !ly.winner_store &&
      std::any_of(E.groups.begin(), E.groups.end(), [](const Group& g) { return is_arg(g.kind); }))
    throw std::invalid_argument("agg_store with argmax/argmin groups needs winner_store");
  E.S = ly.S;
  E.Q = ly.W_dst ? ly.Q : ly.bias;
  E.q_shared = ly.W_dst == nullptr && n != 1;
  E.rows = nullptr;
  validate(E, false);
  validate_layer(ly.layer);
  ly.layer.changed = flags.data();
  ly.layer.msg_changed = msg_flags.data();
  ly.layer.watch = a.watch;
  ly.src_reads.assign(static_cast<size_t>(fz), 0);
  ly.src_rows.clear();
  ly.dst_rows.clear();
  ly.src_zero.clear();
  ly.dst_zero.clear();
  for (int64_t j = 0; j < fz; ++j) {
    bool src_nz = false, dst_nz = false;
    for (int64_t c = 0; c < E.k0; ++c) {
      src_nz = src_nz || ly.W_src[j * E.k0 + c] != T(0);
      dst_nz = dst_nz || (ly.W_dst && ly.W_dst[j * E.k0 + c] != T(0));
    }
    ly.src_reads[static_cast<size_t>(j)] = src_nz ? 1 : 0;
    if (src_nz) ly.src_rows.push_back(j);
    if (dst_nz) ly.dst_rows.push_back(j);
    ly.src_zero.push_back(src_nz ? 0 : 1);
    ly.dst_zero.push_back(dst_nz ? 0 : 1);
  }
  E.S_zero = ly.src_rows.empty();
  ly.node_reads.assign(ly.src_reads.begin(), ly.src_reads.end());
  for (int64_t j : ly.dst_rows) ly.node_reads[static_cast<size_t>(j)] = 1;
  plans.emplace_back(ly.layer);
  for (const auto* zero : {&plans.back().update.zero_z, ly.layer.gated ? &plans.back().gate.zero_z : nullptr})
    if (zero)
      for (int64_t j = 0; j < fz; ++j)
        if (!(*zero)[static_cast<size_t>(j)]) ly.node_reads[static_cast<size_t>(j)] = 1;
  const int64_t r = static_cast<int64_t>(ly.readout_kinds.size());
  readout_groups.push_back(detail::readout_groups(ly.readout_kinds));
  readout_plans.emplace_back(ly.has_readout ? NodePlan<T>(ly.readout, a.hx, 0) : plans.back().update);
  update_plans.emplace_back(ly.has_graph_update ? NodePlan<T>(ly.graph_update, dg, r) : plans.back().update);
  gate_plans.emplace_back(ly.has_graph_gate ? NodePlan<T>(ly.graph_gate, dg, r) : plans.back().update);
  workspaces.emplace_back(plans.back());
  // Incremental aggregation (always in active mode). In auto mode it is used where it pays:
  // where a row's reduction reads many edges. A push evaluates one message per source when
  // every target gets the same one (no edge features, one destination part), else two per
  // edge (old and new), while an active row evaluates its in-degree's worth, and a changed
  // row is reached from about two sources; so auto uses it where the mean in-degree exceeds
  // twice the messages a push evaluates (measured on compiled models: ER graphs with mean
  // in-degree 10 gain; a grid's wide frontiers of per-edge messages lose 1.6x with it).
  const double mean_in_degree = static_cast<double>(a.m) / static_cast<double>(std::max<int64_t>(n, 1));
  const bool pays = mean_in_degree > 2.0 * (one_message_per_source(ly) ? 1.0 : 2.0);
  use_incremental.push_back(ly.agg_store != nullptr && (a.mode == Mode::Active || (a.mode == Mode::Auto && pays)));
}

// Chooses the rows of application i: D (the rows changed by the last application and the
// rows whose address features changed) and the rows D's changes reach, or every row (sets
// `dense`). With incremental aggregation, `sources` are the rows whose changed messages are
// pushed (the rows follow from the push).
template <typename T>
bool StepLoop<T>::select_rows(int64_t i, const std::vector<int64_t>& changed, bool everything) {
  delta.clear();
  if (!everything) {
    for (int64_t v : changed) if (!mark[v]) { mark[v] = 1; delta.push_back(v); }
    for (int64_t v : adelta) if (!mark[v]) { mark[v] = 1; delta.push_back(v); }
    for (int64_t v : delta) mark[v] = 0;
  }
  bool all = everything || a.mode == Mode::Dense ||
             (a.mode == Mode::Auto && static_cast<double>(delta.size()) > a.dense_nodes * static_cast<double>(n));
  rows.clear();
  sources.clear();
  if (all) return true;
  int64_t edges = 0;  // the in-edges to reduce, or the messages to push
  if (use_incremental[static_cast<size_t>(i)]) {
    // incremental aggregation: the sources whose messages changed push them; a push touches a
    // scattered row as a row's reduction does, so it counts as the mean in-degree's worth of
    // edges, and a row of D as one edge
    const int64_t per_push = std::max<int64_t>(1, a.m / std::max<int64_t>(n, 1));
    for (const auto* list : {&msg_changed, &adelta_msg})
      for (int64_t u : *list)
        if (!mark[u]) {
          mark[u] = 1;
          sources.push_back(u);
          edges += per_push * (a.out_indptr[u + 1] - a.out_indptr[u]);
        }
    for (int64_t u : sources) mark[u] = 0;
    edges += static_cast<int64_t>(delta.size());
  } else {
    // D itself, and the out-neighbours of the rows of D whose change the messages read
    for (int64_t u : delta)
      if (!mark[u]) { mark[u] = 1; rows.push_back(u); edges += a.in_indptr[u + 1] - a.in_indptr[u]; }
    for (const auto* list : {&msg_changed, &adelta_msg})
      for (int64_t u : *list)
        for (int64_t e = a.out_indptr[u]; e < a.out_indptr[u + 1]; ++e) {
          const int64_t v = a.out_targets[e];
          if (!mark[v]) { mark[v] = 1; rows.push_back(v); edges += a.in_indptr[v + 1] - a.in_indptr[v]; }
        }
    for (int64_t v : rows) mark[v] = 0;
  }
  return a.mode == Mode::Auto && static_cast<double>(edges) > a.dense_edges * static_cast<double>(std::max<int64_t>(a.m, 1));
}

// The per-node parts of the first message layer for the rows whose input changed (every row
// when `everything`): S[v] = z_v @ W_src, Q[v] = z_v @ W_dst + bias (all-zero rows of W add
// exact zeros: skipped).
template <typename T>
void StepLoop<T>::update_parts(LoopLayer<T>& ly, const T* inp, bool everything) {
  const int64_t k0 = ly.layer.edges.k0;
  auto parts = [&](int64_t v) {
    const T* zv = inp + v * fz;
    row_product(ly.W_src, ly.src_rows, ly.src_zero, fz, k0, zv, ly.S + v * k0);
    if (!ly.W_dst) return;
    T* q = ly.Q + v * k0;
    row_product(ly.W_dst, ly.dst_rows, ly.dst_zero, fz, k0, zv, q);
    for (int64_t c = 0; c < k0; ++c) q[c] = q[c] + ly.bias[c];
  };
  if (k0 >= kWideLayer && (everything || static_cast<int64_t>(delta.size()) > kSerialRows)) {
    // wide (learned) parts in blocks of rows: each weight row read once per block, the same
    // sums as row_product's (dense_accumulate_tile); the rows of D gathered into a block first
    // (one row product per changed row, as before, took 11% of a learned step at 10^5 nodes)
    const int64_t rows = everything ? n : static_cast<int64_t>(delta.size());
    const int64_t* ids = everything ? nullptr : delta.data();
    const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
#pragma omp parallel
    {
      std::vector<T> block(ids ? static_cast<size_t>(kBlockRows * (fz + 2 * k0)) : 0);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t i0 = b * kBlockRows, cnt = std::min(kBlockRows, rows - i0);
        const T* Z = inp + i0 * fz;
        T* S = ly.S + i0 * k0;
        T* Q = ly.W_dst ? ly.Q + i0 * k0 : nullptr;
        if (ids) {  // D's rows: inputs gathered, parts computed in the block, then scattered
          T* z = block.data();
          for (int64_t j = 0; j < cnt; ++j) std::copy(inp + ids[i0 + j] * fz, inp + (ids[i0 + j] + 1) * fz, z + j * fz);
          Z = z;
          S = z + kBlockRows * fz;
          Q = ly.W_dst ? S + kBlockRows * k0 : nullptr;
        }
        std::fill(S, S + cnt * k0, T(0));
        dense_accumulate_tile(ly.W_src, ly.src_zero.data(), fz, k0, cnt, Z, S);
        if (Q) {
          std::fill(Q, Q + cnt * k0, T(0));
          dense_accumulate_tile(ly.W_dst, ly.dst_zero.data(), fz, k0, cnt, Z, Q);
          for (int64_t j = 0; j < cnt * k0; ++j) Q[j] = Q[j] + ly.bias[j % k0];
        }
        if (!ids) continue;
        for (int64_t j = 0; j < cnt; ++j) {
          std::copy(S + j * k0, S + (j + 1) * k0, ly.S + ids[i0 + j] * k0);
          if (Q) std::copy(Q + j * k0, Q + (j + 1) * k0, ly.Q + ids[i0 + j] * k0);
        }
      }
    }
    return;
  }
  if (everything) {
#pragma omp parallel for schedule(static)
    for (int64_t v = 0; v < n; ++v) parts(v);
    return;
  }
  // a parallel region costs more than a few rows, even one that an if clause keeps serial
  const int64_t nd = static_cast<int64_t>(delta.size());
  const int64_t row_work = static_cast<int64_t>(ly.src_rows.size() + (ly.W_dst ? ly.dst_rows.size() : 0)) * k0;
  if (!run_serially(nd, row_work)) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < nd; ++j) parts(delta[static_cast<size_t>(j)]);
  } else {
    for (int64_t v : delta) parts(v);
  }
}

// After an application: which rows changed for the readout (written), for the next layer's
// messages (msg_changed) and for the next layer at all (changed); `all`: every row counts.
template <typename T>
void StepLoop<T>::record_changes(std::vector<int64_t>& changed, bool all, LoopResult& res) {
  changed.clear();
  msg_changed.clear();
  written.clear();
  auto record = [&](int64_t v, bool every) {
    if (every || flags[v]) written.push_back(v);
    if (every || msg_flags[v]) msg_changed.push_back(v);
    if (every || next_flags[v]) changed.push_back(v);
  };
  if (dense) {
    for (int64_t v = 0; v < n; ++v) record(v, all);
    res.node_updates += n;
  } else {
    for (int64_t v : rows) record(v, false);
    res.node_updates += static_cast<int64_t>(rows.size());
  }
}

// The readout values of the rows written (all rows when `full`) and their trees.
template <typename T>
void StepLoop<T>::update_readouts(LoopLayer<T>& ly, int64_t i, const T* out, bool full) {
  const int64_t r = static_cast<int64_t>(ly.readout_kinds.size());
  const auto& rp = readout_plans[static_cast<size_t>(i)];
  T* cache = ly.readout_cache;
  T* tree = ly.readout_tree;
  const auto& groups = readout_groups[static_cast<size_t>(i)];
  if (full) {
    for (int64_t v = 0; v < n; ++v) node_readout(ly, rp, out + v * fz, a.hx, cache + v * r, xa.data(), xb.data());
    tree_rebuild(cache, n, tree, r, groups);
    return;
  }
  // the leaves' blocks of the changed rows, fetched together (scattered on large graphs)
  const int64_t block_bytes = kTreeFanout * r * static_cast<int64_t>(sizeof(T));
  for (int64_t v : written) {
    const char* blk = reinterpret_cast<const char*>(cache + (v - v % kTreeFanout) * r);
    for (int64_t off = 0; off < block_bytes; off += 64) __builtin_prefetch(blk + off, 1);
  }
  leaf_old.resize(static_cast<size_t>(r));
  leaf_saved.resize(static_cast<size_t>(r));
  for (int64_t v : written) {
    std::copy(cache + v * r, cache + v * r + r, leaf_old.begin());
    node_readout(ly, rp, out + v * fz, a.hx, cache + v * r, xa.data(), xb.data());
    tree_update_leaf(cache, n, tree, r, groups, v, leaf_old.data(), leaf_saved.data(), group_live);
  }
}

// The graph update (and gate) from the roots of the layer's readout trees.
template <typename T>
void StepLoop<T>::update_graph(LoopLayer<T>& ly, int64_t i) {
  const int64_t r = static_cast<int64_t>(ly.readout_kinds.size());
  const T* root = ly.readout_tree + root_row * r;
  red.assign(root, root + r);
  if (!ly.has_graph_update) return;
  const auto& up = update_plans[static_cast<size_t>(i)];
  const auto& gp = gate_plans[static_cast<size_t>(i)];
  if (ly.has_graph_gate && up.lanes != 0 && up.lanes == gp.lanes) {  // both chains at once
    if (up.lanes == 16) node_mlp_packed16_pair(up, gp, a.g, red.data(), r, xa.data(), xb.data());
    else node_mlp_packed32_pair(up, gp, a.g, red.data(), r, xa.data(), xb.data());
    gnew.assign(xa.data(), xa.data() + dg);
    ggate.assign(xb.data(), xb.data() + dg);
  } else {
    const T* nv = node_mlp(ly.graph_update, up, a.g, dg, red.data(), r, xa.data(), xb.data());
    gnew.assign(nv, nv + dg);
    if (ly.has_graph_gate) {
      const T* gv = node_mlp(ly.graph_gate, gp, a.g, dg, red.data(), r, xa.data(), xb.data());
      ggate.assign(gv, gv + dg);
    }
  }
  if (ly.has_graph_gate) {
    for (int64_t c = 0; c < dg; ++c) {
      const T gg = sigmoid(ggate[static_cast<size_t>(c)]);
      a.g[c] = gg * gnew[static_cast<size_t>(c)] + (T(1) - gg) * a.g[c];
    }
  } else {
    std::copy(gnew.begin(), gnew.end(), a.g);
  }
}

// One application of layer i (res.applications counts them; it places the ring); returns how
// many of its rows changed a watched channel.
template <typename T>
int64_t StepLoop<T>::apply(int64_t i, std::vector<int64_t>& changed, bool everything, LoopResult& res) {
  LoopLayer<T>& ly = a.layers[static_cast<size_t>(i)];
  LayerArgs<T>& Ly = ly.layer;
  EdgePassArgs<T>& E = Ly.edges;
  const int64_t k = res.applications;
  const size_t ii = static_cast<size_t>((k + L - 1) % L), oo = static_cast<size_t>(k % L);
  T* inp = a.ring[ii];
  T* out = a.ring[oo];
  // 1. address deltas and this buffer's address columns
  adelta.clear();
  adelta_msg.clear();
  if (dg && !a.pointers.empty()) {
    address_delta(a, ly.last_g, a.g, ly.src_reads, ly.node_reads, adelta, adelta_msg);
    set_address(a, inp, a.buf_g[ii], a.g);
  }
  if (dg) std::copy(a.g, a.g + dg, ly.last_g);
  // 2. which rows
  dense = select_rows(i, changed, everything);
  // 3. per-node parts of the first message layer, for the rows whose input changed
  // (incremental aggregation: the previous parts of the message sources, and of the rows
  // whose destination part may change, then the push of the changed messages)
  const bool incremental = use_incremental[static_cast<size_t>(i)] && !dense;
  if (incremental) incr.save_parts(ly, sources, delta);
  update_parts(ly, inp, everything);
  if (incremental)
    res.aggregates_reused += incr.push(a, ly, plans[static_cast<size_t>(i)].edges,
                                       workspaces[static_cast<size_t>(i)].s, sources, delta, mark, rows);
  // 4. the layer
  Ly.z = inp;
  Ly.out = out;
  Ly.agg_store = use_incremental[static_cast<size_t>(i)] ? ly.agg_store : nullptr;
  Ly.winner_store = use_incremental[static_cast<size_t>(i)] ? ly.winner_store : nullptr;
  Ly.agg_from_store = incremental ? incr.from_store.data() : nullptr;
  Ly.compare_out = !everything && (L > 1 || !dense);
  E.rows = dense ? nullptr : rows.data();
  E.num_rows = dense ? 0 : static_cast<int64_t>(rows.size());
  const int64_t watched = layer_rows(Ly, plans[static_cast<size_t>(i)], &workspaces[static_cast<size_t>(i)]);
  if (incremental)
    for (int64_t v : rows) incr.from_store[static_cast<size_t>(v)] = 0;
  // A first application of a layer has no previous output to compare with, except for a
  // single layer, whose output is compared with its input: then only the rows that changed
  // are changes for the next step.
  record_changes(changed, everything && L > 1, res);
  // The next application's push reads the out-edges of the rows whose messages changed: when
  // they are few (scattered on large graphs), fetch their out-edge ranges now and their target
  // lists after the readouts, while this application's work goes on.
  const size_t next_layer = static_cast<size_t>((i + 1) % L);
  const bool early_fetch =
      use_incremental[next_layer] && !dense && static_cast<int64_t>(msg_changed.size()) <= kTouchWhole;
  if (early_fetch)
    for (int64_t u : msg_changed) __builtin_prefetch(a.out_indptr + u);
  // 5. readouts and the graph update (the targets fetched before the graph update, which
  // computes without memory traffic)
  if (ly.has_readout) update_readouts(ly, i, out, everything || dense);
  if (early_fetch)
    for (int64_t u : msg_changed)
      prefetch_span(a.out_targets + a.out_indptr[u], a.out_indptr[u + 1] - a.out_indptr[u]);
  if (ly.has_readout) update_graph(ly, i);
  if (early_fetch) {
    // and the targets' stored aggregates, state rows and readout leaves
    const LoopLayer<T>& nl = a.layers[next_layer];
    const int64_t kw = plans[next_layer].edges.k_out, r = static_cast<int64_t>(nl.readout_kinds.size());
    for (int64_t u : msg_changed)
      for (int64_t e = a.out_indptr[u]; e < a.out_indptr[u + 1]; ++e) {
        const int64_t w = a.out_targets[e];
        __builtin_prefetch(nl.agg_store + w * kw);
        prefetch_span(out + w * fz, fz);
        if (nl.has_readout) __builtin_prefetch(nl.readout_cache + w * r);
      }
  }
  ++res.applications;
  return watched;
}

template <typename T>
LoopResult StepLoop<T>::run(std::vector<int64_t>& changed, bool all_changed, int64_t applications) {
  LoopResult res;
  res.applications = applications;
  // changes carried in from the previous call: treat them all as read by the messages
  msg_changed = changed;
  for (int64_t step = 0; step < a.max_steps; ++step) {
    // the first step of a multi-layer model compares its result with the state it started
    // from (its layers' outputs are not comparable with their inputs); one layer compares
    // each row with its input
    const bool first_step = res.applications < L && L > 1;
    if (first_step) {
      const T* cur = a.ring[static_cast<size_t>((res.applications + L - 1) % L)];
      state_start.assign(static_cast<size_t>(n * d), T(0));
      for (int64_t v = 0; v < n; ++v) std::copy(cur + v * fz, cur + v * fz + d, state_start.data() + v * d);
    }
    if (dg) std::copy(a.g, a.g + dg, g_start.begin());
    int64_t watched = 0;  // rows of the last application that changed a watched channel
    for (int64_t i = 0; i < L; ++i) {
      watched = apply(i, changed, all_changed || res.applications < L, res);
      all_changed = false;
    }
    ++res.steps;
    if (first_step) {
      const T* cur = a.ring[static_cast<size_t>((res.applications + L - 1) % L)];
      watched = 0;
      for (int64_t v = 0; v < n; ++v) {
        bool w = false;
        for (int64_t c = 0; c < d; ++c)
          if (a.watch[c] && !(cur[v * fz + c] == state_start[static_cast<size_t>(v * d + c)])) w = true;
        watched += w ? 1 : 0;
      }
    }
    for (int64_t c : a.graph_watch)
      if (!(a.g[c] == g_start[static_cast<size_t>(c)])) ++watched;
    if (a.until_fixed && watched == 0) {
      res.converged = true;
      break;
    }
  }
  return res;
}

}  // namespace detail

// Runs up to a.max_steps steps. `changed` carries the rows changed by the last layer
// application across calls; all_changed = true before the first step. `applications` is the
// number of layer applications done before this call (it places the ring). On entry the
// current state is in ring[(applications - 1) mod L] (ring[L - 1] before the first step).
template <typename T>
LoopResult run_steps(LoopArgs<T>& a, std::vector<int64_t>& changed, bool all_changed, int64_t applications) {
  detail::StepLoop<T> loop(a);
  return loop.run(changed, all_changed, applications);
}

}  // namespace engine
