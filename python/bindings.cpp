// The one pybind11 file: buffer checks, dtype dispatch, GIL release.
//
// Everything numeric lives in csrc/engine/*.h; this file only checks that the NumPy
// buffers have the shapes, dtypes and layout the kernels assume, and raises ValueError
// (never crashes) when they do not.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "engine/active.h"
#include "engine/attention.h"
#include "engine/csr.h"
#include "engine/edge_score.h"
#include "engine/extremum_grad.h"
#include "engine/message_passing.h"
#include "engine/reduce.h"
#include "engine/registry.h"

namespace py = pybind11;

namespace {

// The most OpenMP threads the bindings ask for (engine.backends caps lower, with a warning).
constexpr int64_t kMaxThreads = 1024;

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

// Whether dt is T in native byte order. Compared by kind, size and byte order, not by object
// identity: arrays that crossed a process boundary (pickled, e.g. by Dask) carry an equal
// but distinct dtype object.
template <typename T>
bool is_dtype(const py::dtype& dt) {
  const py::dtype want = py::dtype::of<T>();
  const char order = dt.byteorder();
  return dt.kind() == want.kind() && dt.itemsize() == want.itemsize() &&
         (order == '=' || order == '|' || order == want.byteorder() ||
          (order == '<' && py::module_::import("sys").attr("byteorder").cast<std::string>() == "little"));
}

template <typename T>
Array<T> require(const py::object& obj, const char* name, std::vector<int64_t> shape) {
  // shape entries < 0 mean "any"
  if (!py::isinstance<py::array>(obj)) throw py::value_error(std::string(name) + " must be a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!is_dtype<T>(arr.dtype()))
    throw py::value_error(std::string(name) + " has dtype " + py::str(arr.dtype()).cast<std::string>() +
                          ", expected " + py::str(py::dtype::of<T>()).cast<std::string>());
  if (!(arr.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (arr.ndim() != static_cast<py::ssize_t>(shape.size()))
    throw py::value_error(std::string(name) + " must have " + std::to_string(shape.size()) + " dimensions");
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] >= 0 && arr.shape(i) != shape[i])
      throw py::value_error(std::string(name) + " has wrong size " + std::to_string(arr.shape(i)) + " in dimension " +
                            std::to_string(i) + ", expected " + std::to_string(shape[i]));
  return py::reinterpret_borrow<Array<T>>(arr);
}

// Owns references to the arrays whose data pointers the kernel arguments hold.
using Keep = std::vector<py::object>;

// Attribute `name` of a plan object (engine.model.plan, engine.backends.base.EdgeInputs,
// engine.runtime.native_loop); a ValueError names what is missing.
py::object attr(const py::handle& obj, const char* name) {
  if (!py::hasattr(obj, name))
    throw py::value_error(std::string("expected an object with attribute '") + name + "', got " +
                          py::str(py::type::of(obj)).cast<std::string>());
  return obj.attr(name);
}

engine::Activation activation(const py::object& code) {
  const int act = code.cast<int>();
  if (act < 0 || act >= static_cast<int>(engine::kActivationNames.size()))
    throw py::value_error("unknown activation code " + std::to_string(act));
  return static_cast<engine::Activation>(act);
}

// A sequence of engine.model.plan.Dense (weight, bias, act) starting at `width` inputs.
template <typename T>
std::vector<engine::DenseLayer<T>> parse_layers(const py::handle& layers, int64_t width, const char* what, Keep& keep) {
  std::vector<engine::DenseLayer<T>> out;
  for (const auto& item : layers.cast<py::sequence>()) {
    auto W = require<T>(attr(item, "weight"), what, {width, -1});
    auto b = require<T>(attr(item, "bias"), what, {W.shape(1)});
    engine::DenseLayer<T> l;
    l.weight = W.data();
    l.bias = b.data();
    l.in = width;
    l.out = W.shape(1);
    l.act = activation(attr(item, "act"));
    out.push_back(l);
    width = l.out;
    keep.push_back(W);
    keep.push_back(b);
  }
  return out;
}

// The group table (G x 3: code, start, stop); an unknown code is refused (reduce.h).
std::vector<engine::Group> parse_groups(const py::object& groups_o, Keep& keep) {
  auto groups = require<int64_t>(groups_o, "groups", {-1, 3});
  keep.push_back(groups);
  std::vector<engine::Group> out;
  for (py::ssize_t g = 0; g < groups.shape(0); ++g) {
    engine::Group grp;
    try {
      grp.kind = engine::reduce_from_code(groups.at(g, 0));
    } catch (const std::invalid_argument& exc) {
      throw py::value_error(exc.what());
    }
    grp.start = groups.at(g, 1);
    grp.stop = groups.at(g, 2);
    out.push_back(grp);
  }
  return out;
}

// The graph's CSR by destination and the edge pass's inputs (engine.backends.base.EdgeInputs,
// or any object with its attributes: S, Q, E, We, act0, tail, groups, include_self).
template <typename T>
engine::EdgePassArgs<T> parse_edges(const py::object& indptr_o, const py::object& indices_o, const py::handle& edges,
                                    const py::object& rows_o, Keep& keep) {
  auto indptr = require<int64_t>(indptr_o, "indptr", {-1});
  const int64_t n = indptr.shape(0) - 1;
  if (n < 0) throw py::value_error("indptr must have at least one entry");
  auto indices = require<int32_t>(indices_o, "indices", {-1});
  const int64_t m = indices.shape(0);
  auto S = require<T>(attr(edges, "S"), "S", {n, -1});
  const int64_t k0 = S.shape(1);
  auto Q = require<T>(attr(edges, "Q"), "Q", {-1, k0});
  if (Q.shape(0) != n && Q.shape(0) != 1) throw py::value_error("Q must have n rows or one shared row");
  for (py::object o : {py::object(indptr), py::object(indices), py::object(S), py::object(Q)}) keep.push_back(o);
  engine::EdgePassArgs<T> a;
  a.num_nodes = n;
  a.num_edges = m;
  a.indptr = indptr.data();
  a.indices = indices.data();
  a.S = S.data();
  a.Q = Q.data();
  a.q_shared = Q.shape(0) == 1 && n != 1;
  a.k0 = k0;
  const py::object E_o = attr(edges, "E");
  if (!E_o.is_none()) {
    auto E = require<T>(E_o, "E", {m, -1});
    if (E.shape(1) > 0) {  // no columns: no edge term
      a.fe = E.shape(1);
      auto We = require<T>(attr(edges, "We"), "We", {a.fe, k0});
      a.E = E.data();
      a.We = We.data();
      keep.push_back(E);
      keep.push_back(We);
    }
  }
  a.first_act = activation(attr(edges, "act0"));
  a.layers = parse_layers<T>(attr(edges, "tail"), k0, "message layer", keep);
  a.groups = parse_groups(attr(edges, "groups"), keep);
  a.include_self = attr(edges, "include_self").cast<bool>();
  if (!rows_o.is_none()) {
    auto rows = require<int64_t>(rows_o, "rows", {-1});
    a.rows = rows.data();
    a.num_rows = rows.shape(0);
    keep.push_back(rows);
  }
  return a;
}

template <typename T>
int64_t count_args(const engine::EdgePassArgs<T>& a) {
  int64_t k = 0;
  for (const auto& g : a.groups) k += engine::is_arg(g.kind) ? 1 : 0;
  return k;
}

template <typename T>
py::tuple edge_pass_typed(const py::object& indptr, const py::object& indices, const py::object& edges,
                          const py::object& rows, bool check_edges) {
  Keep keep;
  auto a = parse_edges<T>(indptr, indices, edges, rows, keep);
  const int64_t out_rows = a.rows ? a.num_rows : a.num_nodes;
  Array<T> out({out_rows, engine::message_width(a)});
  Array<int32_t> winners({out_rows, count_args(a)});
  a.out = out.mutable_data();
  a.winners = winners.mutable_data();
  try {
    py::gil_scoped_release release;
    engine::edge_pass<T>(a, check_edges);
  } catch (const std::invalid_argument& exc) {
    throw py::value_error(exc.what());
  }
  return py::make_tuple(out, winners);
}

// An engine.model.plan.NodeMLP (Wz, Wa, b0, act0, tail, ln_gamma, ln_beta) reading fz
// columns of z and k aggregate channels (Wa may be None when k == 0).
template <typename T>
engine::NodeMLP<T> parse_node_mlp(const py::handle& mlp, int64_t fz, int64_t k, const char* what, Keep& keep) {
  auto Wz = require<T>(attr(mlp, "Wz"), what, {fz, -1});
  const int64_t w0 = Wz.shape(1);
  auto b0 = require<T>(attr(mlp, "b0"), what, {w0});
  keep.push_back(Wz);
  keep.push_back(b0);
  engine::NodeMLP<T> m;
  m.Wz = Wz.data();
  m.b0 = b0.data();
  m.w0 = w0;
  const py::object Wa_o = attr(mlp, "Wa");
  if (!Wa_o.is_none() || k > 0) {
    auto Wa = require<T>(Wa_o, what, {k, w0});
    keep.push_back(Wa);
    m.Wa = Wa.data();
  }
  m.act0 = activation(attr(mlp, "act0"));
  m.tail = parse_layers<T>(attr(mlp, "tail"), w0, what, keep);
  const py::object gamma_o = attr(mlp, "ln_gamma");
  if (!gamma_o.is_none()) {
    const int64_t w = m.tail.empty() ? w0 : m.tail.back().out;
    auto gamma = require<T>(gamma_o, "layer norm gamma", {w});
    auto beta = require<T>(attr(mlp, "ln_beta"), "layer norm beta", {w});
    keep.push_back(gamma);
    keep.push_back(beta);
    m.ln_gamma = gamma.data();
    m.ln_beta = beta.data();
  }
  return m;
}

template <typename T>
int64_t layer_pass_typed(const py::object& indptr, const py::object& indices, const py::object& edges,
                         const py::object& rows, const py::object& z_o, int64_t d, const py::object& update,
                         const py::object& gate, const py::object& out_o, const py::object& watch_o,
                         const py::object& changed_o, bool compare_out, bool check_edges) {
  Keep keep;
  engine::LayerArgs<T> L;
  L.edges = parse_edges<T>(indptr, indices, edges, rows, keep);
  const int64_t n = L.edges.num_nodes;
  auto z = require<T>(z_o, "z", {n, -1});
  L.fz = z.shape(1);
  if (d <= 0 || d > L.fz) throw py::value_error("d must be in [1, z.shape[1]]");
  auto out = require<T>(out_o, "out", {n, L.fz});
  if (!out.writeable()) throw py::value_error("out must be writeable");
  if (out.data() == z.data()) throw py::value_error("out must not be z (states are updated synchronously)");
  keep.push_back(z);
  keep.push_back(out);
  L.z = z.data();
  L.d = d;
  L.out = out.mutable_data();
  L.compare_out = compare_out;
  const int64_t k = engine::message_width(L.edges);
  L.update = parse_node_mlp<T>(update, L.fz, k, "update", keep);
  if (!gate.is_none()) {
    L.gated = true;
    L.gate = parse_node_mlp<T>(gate, L.fz, k, "gate", keep);
  }
  if (!watch_o.is_none()) {
    auto watch = require<uint8_t>(watch_o, "watch", {d});
    L.watch = watch.data();
    keep.push_back(watch);
  }
  if (!changed_o.is_none()) {
    auto changed = require<uint8_t>(changed_o, "changed", {n});
    if (!changed.writeable()) throw py::value_error("changed must be writeable");
    L.changed = changed.mutable_data();
    keep.push_back(changed);
  }
  int64_t num_changed = 0;
  try {
    py::gil_scoped_release release;
    num_changed = engine::layer_pass<T>(L, check_edges);
  } catch (const std::invalid_argument& exc) {
    throw py::value_error(exc.what());
  }
  return num_changed;
}

bool is_double(const py::object& S, const char* name = "S") {
  if (!py::isinstance<py::array>(S)) throw py::value_error(std::string(name) + " must be a numpy array");
  auto dt = py::reinterpret_borrow<py::array>(S).dtype();
  if (is_dtype<float>(dt)) return false;
  if (is_dtype<double>(dt)) return true;
  throw py::value_error("features must be float32 or float64, got " + py::str(dt).cast<std::string>());
}

py::tuple edge_pass(const py::object& indptr, const py::object& indices, const py::object& edges,
                    const py::object& rows, bool check_edges) {
  if (is_double(attr(edges, "S"))) return edge_pass_typed<double>(indptr, indices, edges, rows, check_edges);
  return edge_pass_typed<float>(indptr, indices, edges, rows, check_edges);
}

int64_t layer_pass(const py::object& indptr, const py::object& indices, const py::object& edges,
                   const py::object& rows, const py::object& z, int64_t d, const py::object& update,
                   const py::object& gate, const py::object& out, const py::object& watch, const py::object& changed,
                   bool compare_out, bool check_edges) {
  if (is_double(attr(edges, "S")))
    return layer_pass_typed<double>(indptr, indices, edges, rows, z, d, update, gate, out, watch, changed,
                                    compare_out, check_edges);
  return layer_pass_typed<float>(indptr, indices, edges, rows, z, d, update, gate, out, watch, changed, compare_out,
                                 check_edges);
}

template <typename T>
T* mutable_array(const py::object& o, const char* name, std::vector<int64_t> shape, Keep& keep) {
  auto a = require<T>(o, name, std::move(shape));
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  keep.push_back(a);
  return a.mutable_data();
}

int64_t int_attr(const py::handle& obj, const char* name) { return attr(obj, name).cast<int64_t>(); }

// One engine.runtime.native_loop.NativeLayer: its plan (engine.model.plan.LayerPlan) and the
// buffers the loop keeps for it.
template <typename T>
engine::LoopLayer<T> parse_loop_layer(const py::handle& obj, const py::object& indptr, const py::object& indices,
                                      int64_t n, int64_t fz, const engine::LoopArgs<T>& A, Keep& keep) {
  const py::object plan = attr(obj, "plan");
  const py::object message = attr(plan, "message");
  engine::LoopLayer<T> ly;
  engine::LayerArgs<T>& L = ly.layer;
  L.edges = parse_edges<T>(indptr, indices, obj, py::none(), keep);  // a NativeLayer has EdgeInputs' attributes
  const int64_t k0 = L.edges.k0;
  L.fz = fz;
  L.d = A.d;
  const int64_t k = engine::message_width(L.edges);
  L.update = parse_node_mlp<T>(attr(plan, "update"), fz, k, "update", keep);
  if (!attr(plan, "gate").is_none()) {
    L.gated = true;
    L.gate = parse_node_mlp<T>(attr(plan, "gate"), fz, k, "gate", keep);
  }
  auto W_src = require<T>(attr(message, "src"), "message src", {fz, k0});
  auto bias = require<T>(attr(message, "bias"), "message bias", {k0});
  keep.push_back(W_src);
  keep.push_back(bias);
  ly.W_src = W_src.data();
  ly.bias = bias.data();
  ly.S = mutable_array<T>(attr(obj, "S"), "S", {n, k0}, keep);
  if (!attr(obj, "W_dst").is_none()) {
    auto W_dst = require<T>(attr(obj, "W_dst"), "W_dst", {fz, k0});
    keep.push_back(W_dst);
    ly.W_dst = W_dst.data();
    ly.Q = mutable_array<T>(attr(obj, "Q"), "Q", {n, k0}, keep);
  }
  const py::object readout = attr(plan, "readout");
  if (!readout.is_none()) {
    ly.has_readout = true;
    ly.readout = parse_node_mlp<T>(attr(readout, "mlp"), A.hx, 0, "readout", keep);
    auto kinds = require<uint8_t>(attr(readout, "codes"), "readout codes", {-1});
    ly.readout_kinds.assign(kinds.data(), kinds.data() + kinds.shape(0));
    const int64_t r = kinds.shape(0);
    const int64_t width = ly.readout.tail.empty() ? ly.readout.w0 : ly.readout.tail.back().out;
    if (width != r) throw py::value_error("readout width does not match its reduce kinds");
    ly.readout_cache = mutable_array<T>(attr(obj, "readout_cache"), "readout_cache", {n, r}, keep);
    ly.readout_tree = mutable_array<T>(attr(obj, "readout_tree"), "readout_tree",
                                       {engine::detail::readout_tree_rows(n), r}, keep);
    for (const char* key : {"graph_update", "graph_gate"}) {
      const py::object mlp = attr(plan, key);
      if (mlp.is_none()) continue;
      engine::NodeMLP<T> parsed = parse_node_mlp<T>(mlp, A.dg, r, key, keep);
      const int64_t w = parsed.tail.empty() ? parsed.w0 : parsed.tail.back().out;
      if (w != A.dg) throw py::value_error(std::string(key) + " must end with the graph state width");
      if (std::string(key) == "graph_update") {
        ly.has_graph_update = true;
        ly.graph_update = parsed;
      } else {
        ly.has_graph_gate = true;
        ly.graph_gate = parsed;
      }
    }
  }
  ly.last_g = mutable_array<T>(attr(obj, "last_g"), "last_g", {A.dg}, keep);
  if (!attr(obj, "agg_store").is_none()) ly.agg_store = mutable_array<T>(attr(obj, "agg_store"), "agg_store", {n, k}, keep);
  if (!attr(obj, "winner_store").is_none())
    ly.winner_store = mutable_array<int32_t>(attr(obj, "winner_store"), "winner_store", {n, count_args(L.edges)}, keep);
  return ly;
}

// engine.runtime.native_loop.NativeLoopArgs (the loop's graph, layers, buffers and layout)
// and this call's arguments.
template <typename T>
py::tuple run_steps_typed(const py::object& args, const py::object& watch_o, const std::vector<int64_t>& graph_watch,
                          const py::object& changed_o, int64_t max_steps, bool until_fixed, int64_t applications,
                          bool check_edges) {
  Keep keep;
  engine::LoopArgs<T> A;
  const py::object indptr_o = attr(args, "indptr"), indices_o = attr(args, "indices");
  auto indptr = require<int64_t>(indptr_o, "indptr", {-1});
  const int64_t n = indptr.shape(0) - 1;
  if (n < 0) throw py::value_error("indptr must have at least one entry");
  auto indices = require<int32_t>(indices_o, "indices", {-1});
  const int64_t m = indices.shape(0);
  if (indptr.at(0) != 0 || indptr.at(n) != m) throw py::value_error("indptr must run from 0 to len(indices)");
  A.n = n;
  A.m = m;
  A.in_indptr = indptr.data();
  keep.push_back(indptr);
  auto out_indptr = require<int64_t>(attr(args, "out_indptr"), "out_indptr", {n + 1});
  auto out_targets = require<int32_t>(attr(args, "out_targets"), "out_targets", {m});
  keep.push_back(out_indptr);
  keep.push_back(out_targets);
  A.out_indptr = out_indptr.data();
  A.out_targets = out_targets.data();
  if (!attr(args, "out_edge_ids").is_none()) {
    auto ids = require<int64_t>(attr(args, "out_edge_ids"), "out_edge_ids", {m});
    keep.push_back(ids);
    A.out_edge_ids = ids.data();
  }
  A.d = int_attr(args, "d");
  A.hx = int_attr(args, "hx");
  A.addr_col = int_attr(args, "addr_col");
  A.bcast_col = int_attr(args, "bcast_col");
  A.pointers = attr(args, "pointers").cast<std::vector<int64_t>>();
  A.broadcast = attr(args, "broadcast").cast<std::vector<int64_t>>();
  A.graph_watch = graph_watch;
  auto g = require<T>(attr(args, "g"), "g", {-1});
  A.dg = g.shape(0);
  A.g = mutable_array<T>(g, "g", {A.dg}, keep);
  for (int64_t c : A.pointers) if (c < 0 || c >= A.dg) throw py::value_error("pointer channel out of range");
  for (int64_t c : A.broadcast) if (c < 0 || c >= A.dg) throw py::value_error("broadcast channel out of range");
  for (int64_t c : A.graph_watch) if (c < 0 || c >= A.dg) throw py::value_error("watched graph channel out of range");
  const py::list ring = attr(args, "ring").cast<py::list>();
  const py::list buf_g = attr(args, "buf_g").cast<py::list>();
  const py::list layers = attr(args, "layers").cast<py::list>();
  if (layers.size() == 0) throw py::value_error("a model needs at least one layer");
  if (ring.size() != layers.size() || buf_g.size() != layers.size())
    throw py::value_error("need one ring buffer and one buf_g per layer (" + std::to_string(layers.size()) + "), got " +
                          std::to_string(ring.size()) + " and " + std::to_string(buf_g.size()));
  int64_t fz = -1;
  for (size_t j = 0; j < ring.size(); ++j) {
    auto b = require<T>(ring[j], "ring buffer", {n, -1});
    if (fz < 0) fz = b.shape(1);
    A.ring.push_back(mutable_array<T>(b, "ring buffer", {n, fz}, keep));
    A.buf_g.push_back(mutable_array<T>(buf_g[j], "buf_g", {A.dg}, keep));
  }
  A.fz = fz;
  if (A.d <= 0 || A.hx < A.d || A.addr_col < A.hx || A.bcast_col != A.addr_col + static_cast<int64_t>(A.pointers.size()) ||
      A.bcast_col + static_cast<int64_t>(A.broadcast.size()) != fz)
    throw py::value_error("inconsistent state layout (d, hx, address and broadcast columns)");
  auto watch = require<uint8_t>(watch_o, "watch", {A.d});
  keep.push_back(watch);
  A.watch = watch.data();
  for (const auto& item : layers) A.layers.push_back(parse_loop_layer<T>(item, indptr_o, indices_o, n, fz, A, keep));
  const int64_t mode = int_attr(args, "mode");
  if (mode < 0 || mode >= static_cast<int64_t>(engine::kModeNames.size()))
    throw py::value_error("mode must be 0 (dense), 1 (active) or 2 (auto)");
  A.mode = static_cast<engine::Mode>(mode);
  A.dense_nodes = attr(args, "dense_nodes").cast<double>();
  A.dense_edges = attr(args, "dense_edges").cast<double>();
  if (max_steps < 0) throw py::value_error("max_steps must be a non-negative integer");
  A.max_steps = max_steps;
  A.until_fixed = until_fixed;
  std::vector<int64_t> changed;
  const bool all_changed = changed_o.is_none();
  if (!all_changed) {
    auto ch = require<int64_t>(changed_o, "changed", {-1});
    for (py::ssize_t i = 0; i < ch.shape(0); ++i) {
      const int64_t v = ch.at(i);
      if (v < 0 || v >= n) throw py::value_error("changed node out of range");
      changed.push_back(v);
    }
  }
  engine::LoopResult r;
  try {
    py::gil_scoped_release release;
    if (check_edges) {
      engine::validate_csr(n, m, A.in_indptr, indices.data());
      engine::validate_csr(n, m, A.out_indptr, A.out_targets);
      if (A.out_edge_ids)
        for (int64_t e = 0; e < m; ++e)
          if (A.out_edge_ids[e] < 0 || A.out_edge_ids[e] >= m) throw std::invalid_argument("out edge id out of range");
    }
    r = engine::run_steps<T>(A, changed, all_changed, applications);
  } catch (const std::invalid_argument& exc) {
    throw py::value_error(exc.what());
  }
  Array<int64_t> changed_out(static_cast<py::ssize_t>(changed.size()));
  std::copy(changed.begin(), changed.end(), changed_out.mutable_data());
  return py::make_tuple(r.steps, r.converged, r.node_updates, r.applications, changed_out, r.aggregates_reused);
}

py::tuple run_steps(const py::object& args, const py::object& watch, const std::vector<int64_t>& graph_watch,
                    const py::object& changed, int64_t max_steps, bool until_fixed, int64_t applications,
                    bool check_edges) {
  if (is_double(attr(args, "g"), "g"))
    return run_steps_typed<double>(args, watch, graph_watch, changed, max_steps, until_fixed, applications, check_edges);
  return run_steps_typed<float>(args, watch, graph_watch, changed, max_steps, until_fixed, applications, check_edges);
}

template <typename T>
void project_typed(const py::object& A_o, const py::object& W_o, const py::object& out_o) {
  auto A = require<T>(A_o, "A", {-1, -1});
  auto W = require<T>(W_o, "W", {A.shape(1), -1});
  auto Y = require<T>(out_o, "out", {A.shape(0), W.shape(1)});
  if (!Y.writeable()) throw py::value_error("out must be writeable");
  py::gil_scoped_release release;
  engine::project<T>(A.data(), A.shape(0), A.shape(1), W.data(), W.shape(1), Y.mutable_data());
}

void project(const py::object& A, const py::object& W, const py::object& out) {
  if (is_double(A)) return project_typed<double>(A, W, out);
  project_typed<float>(A, W, out);
}

template <typename T>
Array<T> readout_tree_roots_typed(const py::object& cache_o, const py::object& codes_o, const py::object& leaves_o,
                                  const py::object& values_o) {
  auto cache_in = require<T>(cache_o, "cache", {-1, -1});
  const int64_t n = cache_in.shape(0), r = cache_in.shape(1);
  if (n < 1) throw py::value_error("cache needs at least one row");
  auto codes = require<uint8_t>(codes_o, "codes", {r});
  auto leaves = require<int64_t>(leaves_o, "leaves", {-1});
  const int64_t k = leaves.shape(0);
  auto values = require<T>(values_o, "values", {k, r});
  for (int64_t j = 0; j < k; ++j)
    if (leaves.at(j) < 0 || leaves.at(j) >= n) throw py::value_error("leaves must be node indices in [0, n)");
  std::vector<engine::detail::ReadoutGroup> groups;
  try {
    groups = engine::detail::readout_groups(std::vector<uint8_t>(codes.data(), codes.data() + r));
  } catch (const std::invalid_argument& exc) {
    throw py::value_error(exc.what());
  }
  std::vector<T> cache(cache_in.data(), cache_in.data() + n * r);
  const int64_t tree_rows = engine::detail::readout_tree_rows(n);
  std::vector<T> tree(static_cast<size_t>(tree_rows * r)), old_leaf(static_cast<size_t>(r)), saved(static_cast<size_t>(r));
  std::vector<uint8_t> live;
  Array<T> roots({k + 1, r});
  T* out = roots.mutable_data();
  const T* root = tree.data() + (tree_rows - 1) * r;
  engine::detail::tree_rebuild(cache.data(), n, tree.data(), r, groups);
  std::copy(root, root + r, out);
  for (int64_t j = 0; j < k; ++j) {
    const int64_t v = leaves.at(j);
    std::copy(cache.begin() + v * r, cache.begin() + (v + 1) * r, old_leaf.begin());
    std::copy(values.data() + j * r, values.data() + (j + 1) * r, cache.begin() + v * r);
    engine::detail::tree_update_leaf(cache.data(), n, tree.data(), r, groups, v, old_leaf.data(), saved.data(), live);
    std::copy(root, root + r, out + (j + 1) * r);
  }
  return roots;
}

py::object readout_tree_roots(const py::object& cache, const py::object& codes, const py::object& leaves,
                              const py::object& values) {
  if (is_double(cache, "cache")) return readout_tree_roots_typed<double>(cache, codes, leaves, values);
  return readout_tree_roots_typed<float>(cache, codes, leaves, values);
}

// The fused edge scores (edge_score.h): arrays checked, indices range-checked.
template <typename T>
struct EdgeScoreCall {
  engine::EdgeScoreArgs<T> args;
  Keep keep;
};

template <typename T>
EdgeScoreCall<T> edge_score_args(const py::object& S_o, const py::object& Q_o, const py::object& E_o,
                                 const py::object& We_o, const py::object& w_o, const py::object& bias_o,
                                 const py::object& src_o, const py::object& pos_o, const py::object& eid_o,
                                 int64_t heads, double slope) {
  EdgeScoreCall<T> call;
  auto& A = call.args;
  auto S = require<T>(S_o, "S", {-1, -1});
  A.n = S.shape(0);
  A.d = S.shape(1);
  auto Q = require<T>(Q_o, "Q", {A.n, A.d});
  auto E = require<T>(E_o, "E", {-1, -1});
  A.fe = E.shape(1);
  auto We = require<T>(We_o, "We", {A.fe, A.d});
  auto w = require<T>(w_o, "w", {A.d});
  if (heads < 1 || A.d % heads != 0)
    throw py::value_error("heads must divide the channels (" + std::to_string(A.d) + "), got " + std::to_string(heads));
  A.heads = heads;
  auto bias = require<T>(bias_o, "bias", {heads});
  auto src = require<int64_t>(src_o, "src", {-1});
  A.messages = src.shape(0);
  auto pos = require<int64_t>(pos_o, "pos", {A.messages});
  auto eid = require<int64_t>(eid_o, "eid", {A.messages});
  const int64_t rows = E.shape(0);
  for (int64_t e = 0; e < A.messages; ++e) {
    if (src.data()[e] < 0 || src.data()[e] >= A.n || pos.data()[e] < 0 || pos.data()[e] >= A.n)
      throw py::value_error("message " + std::to_string(e) + " has a node index outside [0, " + std::to_string(A.n) + ")");
    if (eid.data()[e] < -1 || (A.fe > 0 && eid.data()[e] >= rows))
      throw py::value_error("message " + std::to_string(e) + " has an edge row outside [-1, " + std::to_string(rows) + ")");
  }
  A.S = S.data();
  A.Q = Q.data();
  A.E = E.data();
  A.We = We.data();
  A.w = w.data();
  A.bias = bias.data();
  A.src = src.data();
  A.pos = pos.data();
  A.eid = eid.data();
  A.slope = static_cast<T>(slope);
  call.keep = {S, Q, E, We, w, bias, src, pos, eid};
  return call;
}

int score_threads(int64_t threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw py::value_error("threads must be in [1, " + std::to_string(kMaxThreads) + "], got " + std::to_string(threads));
  return static_cast<int>(threads);
}

template <typename T>
py::object edge_score_forward_typed(const py::object& S, const py::object& Q, const py::object& E,
                                    const py::object& We, const py::object& w, const py::object& bias,
                                    const py::object& src, const py::object& pos, const py::object& eid,
                                    int64_t heads, double slope, int64_t threads) {
  const int nt = score_threads(threads);
  auto call = edge_score_args<T>(S, Q, E, We, w, bias, src, pos, eid, heads, slope);
  Array<T> out({call.args.messages, call.args.heads});
  {
    py::gil_scoped_release release;
    engine::edge_score_forward(call.args, out.mutable_data(), nt);
  }
  return out;
}

template <typename T>
py::tuple edge_score_backward_typed(const py::object& S, const py::object& Q, const py::object& E,
                                    const py::object& We, const py::object& w, const py::object& bias,
                                    const py::object& src, const py::object& pos, const py::object& eid,
                                    int64_t heads, double slope, const py::object& g_o, int64_t threads) {
  const int nt = score_threads(threads);
  auto call = edge_score_args<T>(S, Q, E, We, w, bias, src, pos, eid, heads, slope);
  const auto& A = call.args;
  auto g = require<T>(g_o, "g", {A.messages, A.heads});
  Array<T> dS({A.n, A.d}), dQ({A.n, A.d}), dWe({A.fe, A.d}), dEx({A.messages, A.fe}), dw(A.d), dbias(A.heads);
  engine::EdgeScoreGrads<T> G;
  G.dS = dS.mutable_data();
  G.dQ = dQ.mutable_data();
  G.dWe = dWe.mutable_data();
  G.dEx = dEx.mutable_data();
  G.dw = dw.mutable_data();
  G.dbias = dbias.mutable_data();
  {
    py::gil_scoped_release release;
    engine::edge_score_backward(A, g.data(), G, nt);
  }
  return py::make_tuple(dS, dQ, dWe, dEx, dw, dbias);
}

py::object edge_score_forward(const py::object& S, const py::object& Q, const py::object& E, const py::object& We,
                              const py::object& w, const py::object& bias, const py::object& src,
                              const py::object& pos, const py::object& eid, int64_t heads, double slope,
                              int64_t threads) {
  if (is_double(S)) return edge_score_forward_typed<double>(S, Q, E, We, w, bias, src, pos, eid, heads, slope, threads);
  return edge_score_forward_typed<float>(S, Q, E, We, w, bias, src, pos, eid, heads, slope, threads);
}

py::tuple edge_score_backward(const py::object& S, const py::object& Q, const py::object& E, const py::object& We,
                              const py::object& w, const py::object& bias, const py::object& src,
                              const py::object& pos, const py::object& eid, int64_t heads, double slope,
                              const py::object& g, int64_t threads) {
  if (is_double(S))
    return edge_score_backward_typed<double>(S, Q, E, We, w, bias, src, pos, eid, heads, slope, g, threads);
  return edge_score_backward_typed<float>(S, Q, E, We, w, bias, src, pos, eid, heads, slope, g, threads);
}

// The fused attention aggregation (attention.h): arrays checked, pos checked to be grouped.
// Where each destination row's messages begin (n_out + 1 offsets), from their rows `pos`
// (non-decreasing: messages grouped by destination row); a ValueError names a row out of
// range or out of order.
void row_starts(const int64_t* pos, int64_t messages, int64_t n_out, std::vector<int64_t>& row_start) {
  if (n_out < 0) throw py::value_error("n_out must be >= 0");
  row_start.assign(static_cast<size_t>(n_out + 1), 0);
  for (int64_t e = 0; e < messages; ++e) {
    const int64_t v = pos[e];
    if (v < 0 || v >= n_out)
      throw py::value_error("message " + std::to_string(e) + " has a row outside [0, " + std::to_string(n_out) + ")");
    if (e > 0 && v < pos[e - 1])
      throw py::value_error("pos must be non-decreasing (messages grouped by destination row)");
    row_start[static_cast<size_t>(v + 1)] += 1;
  }
  for (int64_t v = 0; v < n_out; ++v) row_start[static_cast<size_t>(v + 1)] += row_start[static_cast<size_t>(v)];
}

template <typename T>
struct AttentionCall {
  engine::AttentionArgs<T> args;
  std::vector<int64_t> row_start;
  Keep keep;
};

template <typename T>
void attention_args(AttentionCall<T>& call, const py::object& scores_o, const py::object& V_o,
                    const py::object& src_o, const py::object& pos_o, int64_t n_out, int64_t heads) {
  auto& A = call.args;
  auto V = require<T>(V_o, "V", {-1, -1});
  A.sources = V.shape(0);
  A.d = V.shape(1);
  if (heads < 1 || A.d % heads != 0)
    throw py::value_error("heads must divide the value channels (" + std::to_string(A.d) + "), got " +
                          std::to_string(heads));
  A.heads = heads;
  auto scores = require<T>(scores_o, "scores", {-1, heads});
  A.messages = scores.shape(0);
  auto src = require<int64_t>(src_o, "src", {A.messages});
  auto pos = require<int64_t>(pos_o, "pos", {A.messages});
  for (int64_t e = 0; e < A.messages; ++e) {
    const int64_t s = src.data()[e];
    if (s < 0 || s >= A.sources)
      throw py::value_error("message " + std::to_string(e) + " has a source outside [0, " + std::to_string(A.sources) + ")");
  }
  row_starts(pos.data(), A.messages, n_out, call.row_start);
  A.n_out = n_out;
  A.scores = scores.data();
  A.V = V.data();
  A.src = src.data();
  A.pos = pos.data();
  A.row_start = call.row_start.data();
  call.keep = {scores, V, src, pos};
}

template <typename T>
py::object attention_forward_typed(const py::object& scores, const py::object& V, const py::object& src,
                                   const py::object& pos, int64_t n_out, int64_t heads, int64_t threads) {
  const int nt = score_threads(threads);
  AttentionCall<T> call;
  attention_args<T>(call, scores, V, src, pos, n_out, heads);
  Array<T> out({call.args.n_out, call.args.heads + call.args.d});
  {
    py::gil_scoped_release release;
    engine::attention_forward(call.args, out.mutable_data(), nt);
  }
  return out;
}

template <typename T>
py::tuple attention_backward_typed(const py::object& scores, const py::object& V, const py::object& src,
                                   const py::object& pos, int64_t n_out, int64_t heads, const py::object& out_o,
                                   const py::object& g_o, int64_t threads) {
  const int nt = score_threads(threads);
  AttentionCall<T> call;
  attention_args<T>(call, scores, V, src, pos, n_out, heads);
  const auto& A = call.args;
  auto out = require<T>(out_o, "out", {A.n_out, A.heads + A.d});
  auto g = require<T>(g_o, "g", {A.n_out, A.heads + A.d});
  Array<T> dscores({A.messages, A.heads}), dV({A.sources, A.d});
  {
    py::gil_scoped_release release;
    engine::attention_backward(A, out.data(), g.data(), dscores.mutable_data(), dV.mutable_data(), nt);
  }
  return py::make_tuple(dscores, dV);
}

py::object attention_forward(const py::object& scores, const py::object& V, const py::object& src,
                             const py::object& pos, int64_t n_out, int64_t heads, int64_t threads) {
  if (is_double(V, "V")) return attention_forward_typed<double>(scores, V, src, pos, n_out, heads, threads);
  return attention_forward_typed<float>(scores, V, src, pos, n_out, heads, threads);
}

py::tuple attention_backward(const py::object& scores, const py::object& V, const py::object& src,
                             const py::object& pos, int64_t n_out, int64_t heads, const py::object& out,
                             const py::object& g, int64_t threads) {
  if (is_double(V, "V")) return attention_backward_typed<double>(scores, V, src, pos, n_out, heads, out, g, threads);
  return attention_backward_typed<float>(scores, V, src, pos, n_out, heads, out, g, threads);
}

template <typename T>
py::tuple extremum_linear_backward_typed(const py::object& H_o, const py::object& W_o, const py::object& M_o,
                                         const py::object& agg_o, const py::object& pos_o, const py::object& g_o,
                                         int64_t threads) {
  const int nt = score_threads(threads);
  engine::ExtremumGradArgs<T> A;
  auto H = require<T>(H_o, "H", {-1, -1});
  A.messages = H.shape(0);
  A.k = H.shape(1);
  auto W = require<T>(W_o, "W", {A.k, -1});
  A.w = W.shape(1);
  auto M = require<T>(M_o, "M", {A.messages, A.w});
  auto agg = require<T>(agg_o, "agg", {-1, A.w});
  A.rows = agg.shape(0);
  auto g = require<T>(g_o, "g", {A.rows, A.w});
  auto pos = require<int64_t>(pos_o, "pos", {A.messages});
  std::vector<int64_t> row_start;
  row_starts(pos.data(), A.messages, A.rows, row_start);
  std::vector<T> WT(static_cast<size_t>(A.w * A.k));
  for (int64_t j = 0; j < A.k; ++j)
    for (int64_t c = 0; c < A.w; ++c) WT[static_cast<size_t>(c * A.k + j)] = W.data()[j * A.w + c];
  A.H = H.data();
  A.WT = WT.data();
  A.M = M.data();
  A.agg = agg.data();
  A.G = g.data();
  A.row_start = row_start.data();
  Array<T> dH({A.messages, A.k}), dW({A.k, A.w}), db(A.w);
  std::vector<T> dWT(static_cast<size_t>(A.w * A.k));
  {
    py::gil_scoped_release release;
    engine::extremum_linear_backward(A, dH.mutable_data(), dWT.data(), db.mutable_data(), nt);
    T* out = dW.mutable_data();
    for (int64_t j = 0; j < A.k; ++j)
      for (int64_t c = 0; c < A.w; ++c) out[j * A.w + c] = dWT[static_cast<size_t>(c * A.k + j)];
  }
  return py::make_tuple(dH, dW, db);
}

py::tuple extremum_linear_backward(const py::object& H, const py::object& W, const py::object& M,
                                   const py::object& agg, const py::object& pos, const py::object& g,
                                   int64_t threads) {
  if (is_double(H, "H")) return extremum_linear_backward_typed<double>(H, W, M, agg, pos, g, threads);
  return extremum_linear_backward_typed<float>(H, W, M, agg, pos, g, threads);
}

py::tuple transpose(const py::object& indptr_o, const py::object& indices_o, bool with_edge_ids) {
  auto indptr = require<int64_t>(indptr_o, "indptr", {-1});
  const int64_t n = indptr.shape(0) - 1;
  if (n < 0) throw py::value_error("indptr must have at least one entry");
  auto indices = require<int32_t>(indices_o, "indices", {-1});
  const int64_t m = indices.shape(0);
  Array<int64_t> out_indptr(n + 1);
  Array<int32_t> targets(m);
  Array<int64_t> edge_ids(with_edge_ids ? m : 0);
  try {
    py::gil_scoped_release release;
    engine::validate_csr(n, m, indptr.data(), indices.data());
    engine::transpose(n, indptr.data(), indices.data(), out_indptr.mutable_data(), targets.mutable_data(),
                      with_edge_ids ? edge_ids.mutable_data() : nullptr);
  } catch (const std::invalid_argument& exc) {
    throw py::value_error(exc.what());
  }
  if (!with_edge_ids) return py::make_tuple(out_indptr, targets, py::none());
  return py::make_tuple(out_indptr, targets, edge_ids);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "engine's C++ kernels (sparse fused message passing)";
  m.def("edge_pass", &edge_pass, py::arg("indptr"), py::arg("indices"), py::arg("edges"),
        py::arg("rows") = py::none(), py::arg("check_edges") = true,
        "Fused message MLP + per-group aggregation over in-edges (edges: engine.backends.base.EdgeInputs); "
        "returns (out, winners). check_edges validates indptr/indices (O(n + m)); engine's backends skip it "
        "for validated graphs, which own frozen copies of their arrays.");
  m.def("layer_pass", &layer_pass, py::arg("indptr"), py::arg("indices"), py::arg("edges"), py::arg("rows"),
        py::arg("z"), py::arg("d"), py::arg("update"), py::arg("gate"), py::arg("out"),
        py::arg("watch") = py::none(), py::arg("changed") = py::none(), py::arg("compare_out") = false,
        py::arg("check_edges") = true,
        "A whole processor layer fused: messages, aggregation, update MLP and gate (engine.model.plan.NodeMLP). "
        "Writes the new states into the first d columns of out (shaped like z) and returns how many rows "
        "changed a watched channel.");
  m.def("run_steps", &run_steps, py::arg("args"), py::arg("watch"), py::arg("graph_watch"), py::arg("changed"),
        py::arg("max_steps"), py::arg("until_fixed"), py::arg("applications"), py::arg("check_edges") = true,
        "Run up to max_steps processor steps in C++ (dense, active or auto) over "
        "engine.runtime.native_loop.NativeLoopArgs; returns "
        "(steps, converged, node_updates, applications, changed, aggregates_reused).");
  m.def("project", &project, py::arg("A"), py::arg("W"), py::arg("out"),
        "out = A @ W (inputs ascending, all-zero rows of W skipped), rows in parallel.");
  m.def("readout_tree_rows", &engine::detail::readout_tree_rows, py::arg("n"),
        "Rows of run_steps' 16-ary readout tree over n nodes (its readout_tree argument is that x r).");
  m.def("readout_tree_roots", &readout_tree_roots, py::arg("cache"), py::arg("codes"), py::arg("leaves"),
        py::arg("values"),
        "The readout reductions run_steps keeps (its 16-ary tree): built over cache (n x r, per-channel "
        "readout codes), then after cache[leaves[j]] = values[j] for each j in turn, updated leaf by leaf; "
        "returns the (k + 1) x r roots.");
  m.def("edge_score_forward", &edge_score_forward, py::arg("S"), py::arg("Q"), py::arg("E"), py::arg("We"),
        py::arg("w"), py::arg("bias"), py::arg("src"), py::arg("pos"), py::arg("eid"), py::arg("heads"),
        py::arg("slope"), py::arg("threads"),
        "Fused edge scores (edge_score.h): out[e, h] = sum over head h's channels of "
        "w * act((S[src] + Q[pos]) + E[eid] @ We) + bias[h]; eid -1 reads zero edge inputs.");
  m.def("edge_score_backward", &edge_score_backward, py::arg("S"), py::arg("Q"), py::arg("E"), py::arg("We"),
        py::arg("w"), py::arg("bias"), py::arg("src"), py::arg("pos"), py::arg("eid"), py::arg("heads"),
        py::arg("slope"), py::arg("g"), py::arg("threads"),
        "Gradients of edge_score_forward given g = dLoss/dout: (dS, dQ, dWe, dEx, dw, dbias), dEx per message.");
  m.def("attention_forward", &attention_forward, py::arg("scores"), py::arg("V"), py::arg("src"), py::arg("pos"),
        py::arg("n_out"), py::arg("heads"), py::arg("threads"),
        "Fused attention aggregation (attention.h): per row and head [max score, softmax-weighted sum of "
        "V[src]]; pos non-decreasing.");
  m.def("attention_backward", &attention_backward, py::arg("scores"), py::arg("V"), py::arg("src"), py::arg("pos"),
        py::arg("n_out"), py::arg("heads"), py::arg("out"), py::arg("g"), py::arg("threads"),
        "Gradients of attention_forward given its out and g = dLoss/dout: (dscores, dV).");
  m.def("extremum_linear_backward", &extremum_linear_backward, py::arg("H"), py::arg("W"), py::arg("M"),
        py::arg("agg"), py::arg("pos"), py::arg("g"), py::arg("threads"),
        "Gradients (dH, dW, db) of the channel-wise max/min per row (pos non-decreasing) of messages "
        "M = H @ W + b, given agg and g = dLoss/dagg (extremum_grad.h): ties split the gradient evenly.");
  m.def("transpose", &transpose, py::arg("indptr"), py::arg("indices"), py::arg("edge_ids") = true,
        "CSR by destination -> CSR by source (counting sort): (out_indptr, targets, edge_ids); edge_ids "
        "is None when not asked for.");
  m.def("set_num_threads", [](int64_t n) {
    if (n < 1 || n > kMaxThreads)
      throw py::value_error("threads must be in [1, " + std::to_string(kMaxThreads) + "], got " + std::to_string(n));
    engine::set_threads(static_cast<int>(n));
  }, py::arg("n"));
  m.def("get_num_threads", &engine::max_threads);
  m.def("reduce_table", []() {
    py::list rows;
    for (const auto& info : engine::kReduceTable)
      rows.append(py::make_tuple(std::string(info.name), static_cast<int>(info.kind), info.arg, info.incremental,
                                 info.min_size));
    return rows;
  }, "The aggregation kinds (reduce.h): (name, code, arg, incremental, min_size) in code order.");
  m.def("mode_names", []() {
    std::vector<std::string> names(engine::kModeNames.begin(), engine::kModeNames.end());
    return names;
  });
  m.def("activation_names", []() {
    std::vector<std::string> names(engine::kActivationNames.begin(), engine::kActivationNames.end());
    return names;
  });
  m.def("readout_names", []() {
    std::vector<std::string> names(engine::kReadoutNames.begin(), engine::kReadoutNames.end());
    return names;
  });
#if defined(_OPENMP)
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
}
