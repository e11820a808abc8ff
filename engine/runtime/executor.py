"""``execute``: run any Model (compiled or learned) on a graph with any backend.

Per step, each processor layer computes the per-node parts of its first message layer, the
fused sparse pass of the backend (message MLP + aggregation per group), then the update MLP
and the optional gate; then readouts and the graph update. Hints are decoded from the state
before each step (CLRS's hint ``t`` is the state before step ``t``); outputs from the final
state. The executor never looks at which algorithm a model computes.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._memory import require
from ..backends import get_backend
from ..errors import EngineError, ModelError
from ..model import registry as R
from ..model.message_graph import message_graph
from ..model.plan import build_plan
from ..model.spec import Model, step_bound
from .bound import BoundModel
from .columns import get_columns, set_columns
from .native_loop import NativeLoop
from .python_loop import ActiveStepper, dense_step

MODES = R.EXECUTION_MODES


@dataclass
class ExecutionResult:
    """What :func:`execute` returns.

    Attributes
    ----------
    outputs : dict of name -> ndarray
        Decoded outputs (CLRS names), e.g. ``pi`` as int32 pointers.
    hints : dict of name -> ndarray or None
        Per-step decoded hints, ``(T, n)`` etc. as :func:`engine.reference` lays them out,
        when ``trace=True``.
    hidden : ndarray or None
        ``(T + 1, n, d)`` states ``h_0 .. h_T`` when ``hidden=True``.
    steps : int
        Processor steps run (``T``).
    converged : bool
        Whether the termination rule was met. False when ``max_steps`` cut a fixed-point run
        short: the outputs are then those of an unfinished run (a model whose states never
        settle on this graph), and the command line exits non-zero.
    backend : str
    threads : int
    mode : str
        ``dense``, ``active`` or ``auto`` (as run).
    node_updates : int
        Node states computed over all steps (``n * steps`` when dense).
    aggregates_reused : int
        Of those, the ones whose aggregate the native loop updated from the changed messages
        instead of reducing the node's in-edges again (incremental aggregation).
    seconds : float
        Wall time of the step loop.
    """

    outputs: dict
    hints: dict | None
    steps: int
    converged: bool
    backend: str
    threads: int
    hidden: np.ndarray | None = None
    mode: str = "dense"
    node_updates: int = 0
    aggregates_reused: int = 0
    seconds: float = 0.0
    final_state: np.ndarray | None = field(default=None, repr=False)
    final_graph: np.ndarray | None = field(default=None, repr=False)


def check_count(value, what: str, minimum: int = 0) -> int:
    """``value`` as an integer ``>= minimum``; :class:`EngineError` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise EngineError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_domain(model: Model, graph) -> None:
    """Refuse graphs outside the model's declared exact domain, and weights the model's
    precision would round."""
    dom = model.spec.get("exact_domain") or {}
    n = graph.num_nodes
    if "max_nodes" in dom and n > dom["max_nodes"]:
        raise EngineError(f"model {model.name!r} is exact for at most {dom['max_nodes']} nodes in "
                          f"{model.spec['dtype']}; this graph has {n} (compile with dtype='float64')")
    if graph.weights is None or not graph.num_edges:
        return
    if graph.weights.dtype.itemsize > model.dtype.itemsize:
        rounded = graph.weights.astype(model.dtype).astype(graph.weights.dtype)
        bad = np.flatnonzero(rounded != graph.weights)
        if bad.size:
            raise EngineError(
                f"model {model.name!r} computes in {model.dtype.name}, which rounds {bad.size} of this graph's "
                f"{graph.weights.dtype.name} weights (e.g. {graph.weights[bad[0]]!r} -> {rounded[bad[0]]!r}); use "
                f"a {graph.weights.dtype.name} model (e.g. engine.compile(..., dtype='float64')), or pass "
                f"graph.with_dtype('{model.dtype.name}') to accept the rounding")
    w = np.abs(graph.weights)
    if "max_abs_weight" in dom and w.max() > dom["max_abs_weight"]:
        raise EngineError(f"model {model.name!r} is exact for |weight| <= {dom['max_abs_weight']:g}; "
                          f"this graph has {w.max():g}")
    nz = w[w > 0]
    if "min_abs_nonzero_weight" in dom and nz.size and nz.min() < dom["min_abs_nonzero_weight"]:
        raise EngineError(f"model {model.name!r} is exact for nonzero |weight| >= "
                          f"{dom['min_abs_nonzero_weight']:g}; this graph has {nz.min():g}")


def _first_feedback(model: Model, plan, first_hints, n: int) -> dict:
    """``first_hints`` (hint name -> value) checked against the model's fed-back hints, by
    decoder name, as the executor feeds them; ``{}`` for None."""
    if not first_hints:
        return {}
    fed = {s.decoder for s in plan.layout.feedback}
    allowed = sorted(name for name, dec in plan.hints.items() if dec in fed)
    if not isinstance(first_hints, dict):
        raise EngineError(f"first_hints must be a dict of hint name -> values, got {type(first_hints).__name__}")
    given = {}
    for name, value in first_hints.items():
        if name not in allowed:
            raise EngineError(f"first_hints: {name!r} is not a hint model {model.name!r} feeds back; "
                              f"allowed: {allowed}")
        dec = plan.decoders[plan.hints[name]]
        value = np.asarray(value)
        width = plan.layout.feedback[[s.decoder for s in plan.layout.feedback].index(plan.hints[name])].width
        want = (n,) if dec.kind in ("pointer", "mask", "scalar", "mask_one") else (n, width)
        if value.shape != want or not np.all(np.isfinite(value)):
            raise EngineError(f"first_hints[{name!r}] must be finite with shape {want} (the reference's hint "
                              f"layout for {n} nodes), got shape {value.shape}")
        if dec.kind == "pointer":
            if not np.issubdtype(value.dtype, np.integer) or value.min() < 0 or value.max() >= n:
                raise EngineError(f"first_hints[{name!r}] is a pointer: node ids in [0, {n}) expected")
            value = value.astype(np.int64)
        else:
            value = value.astype(model.dtype)
        given[plan.hints[name]] = value
    return given


def _call_on_state(on_state, t: int, z: np.ndarray, d: int) -> None:
    view = z[:, :d]
    view.flags.writeable = False
    try:
        on_state(t, view)
    finally:
        del view


def execute(model: Model, graph, source: int | None = None, *, backend: str | None = None,
            trace: bool = False, steps: int | None = None, max_steps: int | None = None,
            hidden: bool = False, threads: int | None = None, mode: str = "auto",
            progress=None, device: str | None = None, on_state=None,
            first_hints: dict | None = None) -> ExecutionResult:
    """Run ``model`` on ``graph``.

    Parameters
    ----------
    model : Model
    graph : Graph
    source : int, optional
        Source node (default 0), used when the model reads the ``source`` input.
    backend : {"native", "numba", "reference", "torch"}, optional
        Default: ``$ENGINE_BACKEND``, else the first that loads.
    trace : bool
        Decode every hint the model declares at every step.
    steps : int, optional
        Run exactly this many steps (CLRS's oracle trace length) instead of the model's
        termination rule.
    max_steps : int, optional
        Safety bound for fixed-point termination (default: the model's
        ``termination.max_steps``, else ``4 n + 16``); a run cut short there
        has ``converged=False``.
    hidden : bool
        Keep every hidden state.
    threads : int, optional
        Worker threads of the backend (default ``$ENGINE_THREADS``, else all cores).
    mode : {"auto", "dense", "active"}
        ``dense`` recomputes every node every step; ``active`` only the nodes whose own state
        or an in-neighbour's state changed in the previous step (identical results, see
        :class:`~engine.runtime.python_loop.ActiveStepper`); ``auto`` (default) steps actively
        while few nodes change and densely otherwise.
    progress : callable, optional
        Called as ``progress(step)`` after each step (or chunk of steps).
    device : str, optional
        For ``backend="torch"``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (default
        ``$ENGINE_TORCH_DEVICE``, else CUDA when available). Other backends run on the CPU.
    on_state : callable, optional
        Called as ``on_state(t, h)`` with each state ``h_0 .. h_T`` (``(n, d)``, a read-only
        view valid during the call only): statistics over states without keeping them
        (``hidden=True`` keeps them all). Runs the step loop in Python.
    first_hints : dict, optional
        Values of fed-back hints, by name and in the reference's layout (``hints[name][0]``
        of :func:`engine.reference`), fed into the first step instead of those decoded from
        the initial state: CLRS feeds its ground-truth hint 0, and a model trained so (the
        ``clrs`` protocol, ``spec.description.protocol.hint0 == "ground_truth"``) never
        learned to decode it. Fed-back hints not named are decoded as usual.
    """
    if not isinstance(model, Model):
        raise ModelError(f"expected an engine.Model, got {type(model).__name__}")
    from ..graph import Graph

    if not isinstance(graph, Graph):
        raise EngineError(f"expected an engine.Graph, got {type(graph).__name__}")
    n = graph.num_nodes
    if n == 0:
        raise EngineError("the graph has no nodes")
    if R.needs_source(model.spec.get("node_inputs", [])):
        source = graph.check_node(0 if source is None else source)
    elif source is not None:
        graph.check_node(source)
    if mode not in MODES:
        raise EngineError(f"mode must be one of {list(MODES)}, got {mode!r}")
    term = model.spec["termination"]
    if steps is None and term["rule"] == "steps":
        raise EngineError(f"model {model.name!r} runs a given number of steps; pass steps=")
    if steps is not None:
        steps = check_count(steps, "steps")
    if max_steps is not None:
        max_steps = check_count(max_steps, "max_steps", minimum=1)
    check_domain(model, graph)
    be = get_backend(backend, threads)
    if device is not None:
        if not hasattr(be, "on"):
            raise EngineError(f"device={device!r} needs backend='torch'; the {be.name} backend runs on the CPU")
        be = be.on(device)
    plan = build_plan(model.spec, model.weights.__getitem__)
    messages, static_edges = message_graph(model.spec, graph, model.dtype)
    run = BoundModel(plan, messages, source, be, static_edges)
    given = _first_feedback(model, plan, first_hints, n)
    bound = step_bound(model.spec, n, graph.num_edges)
    return run_bound(model, run, given, bound, trace=trace, steps=steps, max_steps=max_steps, hidden=hidden,
                     mode=mode, progress=progress, on_state=on_state)


def run_bound(model: Model, run: BoundModel, given: dict, bound: int, *, trace: bool = False,
              steps: int | None = None, max_steps: int | None = None, hidden: bool = False, mode: str = "auto",
              progress=None, on_state=None) -> ExecutionResult:
    """The step loop of :func:`execute` on a model already bound to its (message) graph, with
    the arguments checked; ``given``: the checked first hints, by decoder name; ``bound``: the
    default step limit of a fixed-point run (``max_steps`` overrides it)."""
    plan, be, graph = run.plan, run.backend, run.graph
    n = graph.num_nodes
    term = model.spec["termination"]
    feedback = bool(plan.layout.feedback)
    if feedback and mode == "active":
        raise EngineError(f"model {model.name!r} feeds decoded hints back (spec.feedback), so its inputs "
                          f"change at every node every step; run it with mode='dense' or 'auto'")
    if feedback:
        mode = "dense"  # auto: every input column changes every step, nothing to skip
    stepper = ActiveStepper(run, mode) if mode != "dense" else None
    # the backend's own step loop, when it has one and nothing is needed between steps
    use_native_loop = be.has_step_loop and not trace and not hidden and not feedback and on_state is None
    limit = steps if steps is not None else (max_steps if max_steps is not None else bound)
    d = model.hidden
    if hidden:
        require((limit + 1) * n * d * model.dtype.itemsize, "keeping every hidden state",
                "pass hidden=False, or steps=/max_steps= to bound the run")
    watch = graph_watch = None
    if steps is None:
        watch = np.zeros(d, dtype=np.uint8)
        watch[term["channels"]] = 1
        graph_watch = np.array(term.get("graph_channels", []), dtype=np.int64)
    g = run.initial_graph()
    t0 = time.perf_counter()
    z = run.new_buffer()
    # the native loop runs a single layer in place; every other loop needs a second buffer
    spare = run.new_buffer() if not (use_native_loop and len(plan.layers) == 1) else None
    set_columns(z, 0, run.initial_state())
    native_loop = NativeLoop(run, mode, z, spare, g) if use_native_loop else None
    states = [get_columns(z, 0, d)] if hidden else None
    if on_state is not None:
        _call_on_state(on_state, 0, z, d)
    hint_rows = {name: [] for name in plan.hints} if trace else None
    converged = steps is not None
    t = 0
    chunk = 16
    while native_loop is not None and t < limit:
        z, g, ran, done = native_loop.steps(watch, graph_watch, min(chunk, limit - t))
        t += ran
        chunk = min(chunk * 2, 1 << 16)
        if progress is not None:
            progress(t)
        if watch is not None and done:
            converged = True
            break
    while native_loop is None and t < limit:
        decoded = {}
        if trace:
            for clrs_name, dec in plan.hints.items():
                decoded[dec] = run.decode(dec, z, g)
                hint_rows[clrs_name].append(decoded[dec])
        if feedback:
            run.feed_back(z, (spare,), g, {**decoded, **given} if t == 0 else decoded)
        if stepper is None:
            z, spare, changed, g = dense_step(run, z, spare, watch, g, graph_watch)
        else:
            z, spare, changed, g = stepper.step(z, spare, watch, g, graph_watch)
        t += 1
        if hidden:
            states.append(get_columns(z, 0, d))
        if on_state is not None:
            _call_on_state(on_state, t, z, d)
        if progress is not None:
            progress(t)
        if watch is not None and changed == 0:
            converged = True
            break
    if not converged:
        warnings.warn(f"{model.name}: stopped after max_steps={limit} without reaching a fixed point",
                      RuntimeWarning, stacklevel=3)
    outputs = {name: run.decode(dec, z, g) for name, dec in plan.outputs.items()}
    hints = {k: np.stack(v) if v else np.zeros((0, n)) for k, v in hint_rows.items()} if trace else None
    final_graph = None if g is None else g.copy()
    return ExecutionResult(outputs=outputs, hints=hints, steps=t, converged=converged, backend=be.name,
                           threads=be.threads(), hidden=np.stack(states) if hidden else None, mode=mode,
                           node_updates=(native_loop.node_updates if native_loop else
                                         stepper.active_rows if stepper else n * t * len(plan.layers)),
                           aggregates_reused=native_loop.aggregates_reused if native_loop else 0,
                           seconds=time.perf_counter() - t0, final_state=get_columns(z, 0, d), final_graph=final_graph)
