"""The module graph of a watched model: the module tree (types, parameter shapes and counts) and the
dataflow between modules, stored once per run in `model_graphs`.

Dataflow comes from `torch.fx.symbolic_trace` when the model traces (no input
needed), else from the first real forward pass, through forward hooks on the
leaf modules linked by autograd's graph (tensor identity under `no_grad`).
Edges name modules by their qualified names, plus "input" and "output".

The structure is `pulse.v1.Model` (proto/pulse/v1/graph.proto); the run stores every watched model
in one `ModelGraphDoc`, encoded by pulse/graph_schema.py, the same code the dashboard decodes with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pulse.graph_schema import FORMAT, Edge, Model, ModelGraphDoc, Module, Shape, as_dict

MAX_AUTOGRAD_NODES = 10_000  # how far back one input is followed through autograd's graph


def describe(model: Any, prefix: str = "") -> Model:
    """The model's module tree, with dataflow from torch.fx when it traces (else `dataflow` is "none")."""
    modules = []
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        modules.append(Module(
            name=name, type=type(module).__name__, parent=name.rpartition(".")[0],
            leaf=next(module.children(), None) is None,
            params={pname: Shape(dims=list(p.shape)) for pname, p in own},
            param_count=sum(p.numel() for _, p in own),
            trainable=sum(p.numel() for _, p in own if p.requires_grad)))
    described = Model(name=type(model).__name__, prefix=prefix, dataflow="none",
                      param_count=sum(p.numel() for p in model.parameters()), modules=modules)
    edges = fx_edges(model)
    return with_dataflow(described, edges, "torch.fx") if edges is not None else described


def with_dataflow(model: Model, edges: list[list[str]], source: str) -> Model:
    """A copy of `model` whose dataflow is `edges` (source, target pairs), found by `source`."""
    traced = Model()
    traced.CopyFrom(model)
    traced.dataflow = source
    del traced.edges[:]
    traced.edges.extend(Edge(source=a, target=b) for a, b in edges)
    return traced


def document(models: list[Model]) -> dict[str, Any]:
    """What a run sends as its model graph: every model it watched with log_graph=True."""
    return as_dict(ModelGraphDoc(format=FORMAT, models=models))


def fx_edges(model: Any) -> list[list[str]] | None:
    """Module-to-module dataflow from a symbolic trace, or None when the model does not trace."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # data-dependent control flow and the like: the forward-hook tracer takes over
        return None
    edges: dict[tuple[str, str], None] = {}
    sources: dict[Any, set[str]] = {}
    for node in graph.nodes:
        inputs = set().union(*(sources.get(a, set()) for a in node.all_input_nodes))
        if node.op == "placeholder":
            sources[node] = {"input"}
        elif node.op == "get_attr":
            sources[node] = set()  # a parameter or buffer, not data
        elif node.op in ("call_module", "output"):
            target = node.target if node.op == "call_module" else "output"
            edges.update(((s, target), None) for s in sorted(inputs))
            sources[node] = {target}
        else:  # functions and methods between modules pass their inputs' sources through
            sources[node] = inputs
    return [list(edge) for edge in edges]


class HookTracer:
    """Records the dataflow of the model's next forward pass, then removes its hooks and calls `done(edges)`."""

    def __init__(self, model: Any, done: Callable[[list[list[str]]], None]) -> None:
        self._done = done
        self._by_id: dict[int, str] = {}
        self._by_fn: dict[Any, str] = {}
        self._edges: dict[tuple[str, str], None] = {}
        self.handles = [model.register_forward_pre_hook(self._start),
                        model.register_forward_hook(self._finish)]
        for name, module in model.named_modules():
            if name and next(module.children(), None) is None:
                self.handles.append(module.register_forward_hook(self._leaf(name)))

    def _start(self, _module: Any, args: tuple) -> None:
        for t in _tensors(args):
            self._produced(t, "input")

    def _leaf(self, name: str) -> Callable:
        def hook(_module: Any, args: tuple, output: Any) -> None:
            self._link(args, name)
            for t in _tensors(output):
                self._produced(t, name)
        return hook

    def _finish(self, _module: Any, _args: tuple, output: Any) -> None:
        self._link(output, "output")
        self.remove()
        self._by_id.clear()
        self._by_fn.clear()  # it holds the forward's autograd graph, and with it the saved activations
        self._done([list(edge) for edge in self._edges])

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _produced(self, t: Any, name: str) -> None:
        self._by_id[id(t)] = name
        if t.grad_fn is not None:
            self._by_fn[t.grad_fn] = name

    def _link(self, value: Any, target: str) -> None:
        for t in _tensors(value):
            for source in sorted(self._sources(t)):
                if source != target:
                    self._edges[(source, target)] = None

    def _sources(self, t: Any) -> set[str]:
        """The modules that produced `t`: by identity, else back through autograd's graph."""
        if id(t) in self._by_id:
            return {self._by_id[id(t)]}
        found: set[str] = set()
        stack, seen = [t.grad_fn], set()
        while stack and len(seen) < MAX_AUTOGRAD_NODES:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in self._by_fn:
                found.add(self._by_fn[fn])
            else:
                stack.extend(next_fn for next_fn, _ in fn.next_functions)
        return found or {"input"}  # not made by a module: derived from the model's input


def _tensors(value: Any) -> Iterator[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
