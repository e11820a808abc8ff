// engine/active.h - the step loop for one-layer-per-step models, in C++.
//
// A node's next state is a deterministic function of its own state and inputs and of its
// in-neighbours' states and edge inputs. After a step that changed the set C of nodes, the
// next step can only change C and the out-neighbours of C; every other node keeps its state.
// run_steps recomputes exactly those rows (active steps), or every row when that is cheaper
// (dense steps), so that a step costs about what it changes. Results do not depend on which
// kind of step ran, nor on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "engine/message_passing.h"

namespace engine {

template <typename T>
struct StepArgs {
  LayerArgs<T> layer;  // edges.S / edges.Q / edges.rows / z / out are managed by run_steps
  // First message layer, per-node parts: S[v] = z_v @ W_src, Q[v] = z_v @ W_dst + bias
  // (sums over z's columns ascending); W_dst null: Q is the bias row, shared.
  const T* W_src = nullptr;  // fz x k0
  const T* W_dst = nullptr;  // fz x k0 or null
  const T* bias = nullptr;   // k0
  T* S = nullptr;            // n x k0, kept up to date with z
  T* Q = nullptr;            // n x k0 (or 1 x k0 when W_dst is null)
  // CSR by source, for the out-neighbours of changed nodes.
  const int64_t* out_indptr = nullptr;
  const int32_t* out_targets = nullptr;
  // State buffers (n x fz, x columns filled): the step reads one and writes the other.
  T* z_a = nullptr;
  T* z_b = nullptr;
  // Policy: 0 dense, 1 active, 2 auto. Auto steps densely when more than dense_nodes * n
  // nodes changed or the active rows carry more than dense_edges * m in-edges.
  int policy = 2;
  double dense_nodes = 0.1;
  double dense_edges = 0.3;
  int64_t max_steps = 0;      // steps to run at most in this call
  bool until_fixed = true;    // stop after a step that changes no watched channel
};

struct StepResult {
  int64_t steps = 0;         // steps run in this call
  bool converged = false;    // the last step changed no watched channel
  bool in_b = false;         // the current state is in z_b (else z_a)
  int64_t node_updates = 0;  // rows computed
};

namespace detail {

template <typename T>
void node_parts(const StepArgs<T>& a, const T* z, int64_t fz, int64_t k0, int64_t v) {
  T* s = a.S + v * k0;
  const T* zv = z + v * fz;
  for (int64_t c = 0; c < k0; ++c) s[c] = T(0);
  for (int64_t i = 0; i < fz; ++i) {
    const T zi = zv[i];
    const T* w = a.W_src + i * k0;
    for (int64_t c = 0; c < k0; ++c) s[c] += zi * w[c];
  }
  if (!a.W_dst) return;
  T* q = a.Q + v * k0;
  for (int64_t c = 0; c < k0; ++c) q[c] = T(0);
  for (int64_t i = 0; i < fz; ++i) {
    const T zi = zv[i];
    const T* w = a.W_dst + i * k0;
    for (int64_t c = 0; c < k0; ++c) q[c] += zi * w[c];
  }
  for (int64_t c = 0; c < k0; ++c) q[c] = q[c] + a.bias[c];
}

}  // namespace detail

// Runs up to a.max_steps steps. `changed` carries the nodes changed by the previous step
// across calls (sorted ascending); pass all_changed = true before the first step (every
// node counts as changed: S and Q are computed for all rows and the step is dense). The
// current state is in z_a on entry; the result says where it is on exit.
template <typename T>
StepResult run_steps(StepArgs<T>& a, std::vector<int64_t>& changed, bool all_changed) {
  LayerArgs<T>& L = a.layer;
  EdgePassArgs<T>& E = L.edges;
  const int64_t n = E.num_nodes, m = E.num_edges, fz = L.fz, k0 = E.k0;
  StepResult res;
  std::vector<uint8_t> flags(static_cast<size_t>(n), 0);
  std::vector<uint8_t> mark(static_cast<size_t>(n), 0);
  std::vector<int64_t> rows;
  T* cur = a.z_a;
  T* nxt = a.z_b;
  L.changed = flags.data();
  E.Q = a.W_dst ? a.Q : a.bias;
  E.q_shared = a.W_dst == nullptr && n != 1;
  E.S = a.S;
  E.rows = nullptr;
  validate(E, false);
  validate_layer(L);
  const LayerPlan<T> plan(L);
  for (int64_t step = 0; step < a.max_steps; ++step) {
    // 1. which rows to compute
    bool dense = all_changed || a.policy == 0;
    if (!dense && a.policy == 2 && static_cast<double>(changed.size()) > a.dense_nodes * static_cast<double>(n))
      dense = true;
    rows.clear();
    if (!dense) {
      int64_t edges = 0;
      for (int64_t u : changed) {
        if (!mark[u]) { mark[u] = 1; rows.push_back(u); edges += E.indptr[u + 1] - E.indptr[u]; }
        for (int64_t k = a.out_indptr[u]; k < a.out_indptr[u + 1]; ++k) {
          const int64_t v = a.out_targets[k];
          if (!mark[v]) { mark[v] = 1; rows.push_back(v); edges += E.indptr[v + 1] - E.indptr[v]; }
        }
      }
      for (int64_t v : rows) mark[v] = 0;
      if (a.policy == 2 && static_cast<double>(edges) > a.dense_edges * static_cast<double>(m)) {
        dense = true;
      } else {
        std::sort(rows.begin(), rows.end());
        // nxt must equal cur outside the rows written below: bring the rows the last step
        // changed up to date (nxt holds their previous values)
        for (int64_t v : changed) std::copy(cur + v * fz, cur + v * fz + L.d, nxt + v * fz);
      }
    }
    // 2. per-node parts of the first message layer for rows whose z changed
    if (all_changed) {
#pragma omp parallel for schedule(static)
      for (int64_t v = 0; v < n; ++v) detail::node_parts(a, cur, fz, k0, v);
    } else {
      const int64_t nc = static_cast<int64_t>(changed.size());
#pragma omp parallel for schedule(static) if (nc > 4096)
      for (int64_t i = 0; i < nc; ++i) detail::node_parts(a, cur, fz, k0, changed[static_cast<size_t>(i)]);
    }
    // 3. the layer
    L.z = cur;
    L.out = nxt;
    E.rows = dense ? nullptr : rows.data();
    E.num_rows = dense ? 0 : static_cast<int64_t>(rows.size());
    const int64_t watched = layer_rows(L, plan);
    // 4. bookkeeping
    changed.clear();
    if (dense) {
      for (int64_t v = 0; v < n; ++v)
        if (flags[v]) changed.push_back(v);
      res.node_updates += n;
    } else {
      for (int64_t v : rows)
        if (flags[v]) changed.push_back(v);
      res.node_updates += static_cast<int64_t>(rows.size());
    }
    all_changed = false;
    std::swap(cur, nxt);
    res.in_b = !res.in_b;
    ++res.steps;
    if (a.until_fixed && watched == 0) {
      res.converged = true;
      break;
    }
  }
  return res;
}

}  // namespace engine
