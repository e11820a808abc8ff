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

#include "engine/message_passing.h"
#include "engine/registry.h"

namespace py = pybind11;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

template <typename T>
Array<T> require(const py::object& obj, const char* name, std::vector<int64_t> shape) {
  // shape entries < 0 mean "any"
  if (!py::isinstance<py::array>(obj)) throw py::value_error(std::string(name) + " must be a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>()))
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

template <typename T>
py::tuple edge_pass_typed(const py::object& indptr_o, const py::object& indices_o, const py::object& S_o,
                          const py::object& Q_o, const py::object& E_o, const py::object& We_o, int first_act,
                          const py::list& weights, const py::list& biases, const std::vector<int>& acts,
                          const py::object& groups_o, bool include_self, bool check_edges) {
  auto indptr = require<int64_t>(indptr_o, "indptr", {-1});
  const int64_t n = indptr.shape(0) - 1;
  if (n < 0) throw py::value_error("indptr must have at least one entry");
  auto indices = require<int32_t>(indices_o, "indices", {-1});
  const int64_t m = indices.shape(0);
  auto S = require<T>(S_o, "S", {n, -1});
  const int64_t k0 = S.shape(1);
  auto Q = require<T>(Q_o, "Q", {n, k0});
  engine::EdgePassArgs<T> a;
  a.num_nodes = n;
  a.num_edges = m;
  a.indptr = indptr.data();
  a.indices = indices.data();
  a.S = S.data();
  a.Q = Q.data();
  a.k0 = k0;
  Array<T> E, We;
  if (!E_o.is_none()) {
    E = require<T>(E_o, "E", {m, -1});
    a.fe = E.shape(1);
    We = require<T>(We_o, "We", {a.fe, k0});
    a.E = E.data();
    a.We = We.data();
  }
  if (first_act < 0 || first_act >= static_cast<int>(engine::kActivationNames.size()))
    throw py::value_error("unknown activation code");
  a.first_act = static_cast<engine::Activation>(first_act);
  if (weights.size() != biases.size() || weights.size() != acts.size())
    throw py::value_error("weights, biases and activations must have the same length");
  std::vector<Array<T>> keep;
  int64_t width = k0;
  for (size_t i = 0; i < weights.size(); ++i) {
    auto W = require<T>(weights[i], "layer weight", {width, -1});
    auto b = require<T>(biases[i], "layer bias", {W.shape(1)});
    if (acts[i] < 0 || acts[i] >= static_cast<int>(engine::kActivationNames.size()))
      throw py::value_error("unknown activation code");
    engine::DenseLayer<T> l;
    l.weight = W.data();
    l.bias = b.data();
    l.in = width;
    l.out = W.shape(1);
    l.act = static_cast<engine::Activation>(acts[i]);
    a.layers.push_back(l);
    width = l.out;
    keep.push_back(W);
    keep.push_back(b);
  }
  auto groups = require<int64_t>(groups_o, "groups", {-1, 3});
  int64_t num_arg = 0;
  for (py::ssize_t g = 0; g < groups.shape(0); ++g) {
    const int64_t kind = groups.at(g, 0);
    if (kind < 0 || kind >= static_cast<int64_t>(engine::kReduceNames.size()))
      throw py::value_error("unknown reduce code " + std::to_string(kind));
    engine::Group grp;
    grp.kind = static_cast<engine::Reduce>(kind);
    grp.start = groups.at(g, 1);
    grp.stop = groups.at(g, 2);
    if (grp.kind == engine::Reduce::ArgMax || grp.kind == engine::Reduce::ArgMin) ++num_arg;
    a.groups.push_back(grp);
  }
  a.include_self = include_self;
  Array<T> out({n, width});
  Array<int32_t> winners({n, num_arg});
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

py::tuple edge_pass(const py::object& indptr, const py::object& indices, const py::object& S, const py::object& Q,
                    const py::object& E, const py::object& We, int first_act, const py::list& weights,
                    const py::list& biases, const std::vector<int>& acts, const py::object& groups,
                    bool include_self, bool check_edges) {
  if (!py::isinstance<py::array>(S)) throw py::value_error("S must be a numpy array");
  auto dt = py::reinterpret_borrow<py::array>(S).dtype();
  if (dt.is(py::dtype::of<float>()))
    return edge_pass_typed<float>(indptr, indices, S, Q, E, We, first_act, weights, biases, acts, groups,
                                  include_self, check_edges);
  if (dt.is(py::dtype::of<double>()))
    return edge_pass_typed<double>(indptr, indices, S, Q, E, We, first_act, weights, biases, acts, groups,
                                   include_self, check_edges);
  throw py::value_error("features must be float32 or float64, got " + py::str(dt).cast<std::string>());
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "engine's C++ kernels (sparse fused message passing)";
  m.def("edge_pass", &edge_pass, py::arg("indptr"), py::arg("indices"), py::arg("S"), py::arg("Q"), py::arg("E"),
        py::arg("We"), py::arg("first_act"), py::arg("weights"), py::arg("biases"), py::arg("acts"),
        py::arg("groups"), py::arg("include_self"), py::arg("check_edges") = false,
        "Fused message MLP + per-group aggregation over in-edges; returns (out, winners).");
  m.def("set_num_threads", &engine::set_threads, py::arg("n"));
  m.def("get_num_threads", &engine::max_threads);
  m.def("reduce_names", []() {
    std::vector<std::string> names(engine::kReduceNames.begin(), engine::kReduceNames.end());
    return names;
  });
  m.def("activation_names", []() {
    std::vector<std::string> names(engine::kActivationNames.begin(), engine::kActivationNames.end());
    return names;
  });
#if defined(_OPENMP)
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
}
