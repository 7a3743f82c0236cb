"""A watched model's graph (`model_graphs.graph`, written by `emitter.watch(log_graph=True)`) as DOT.

The stored text is a `pulse.v1.ModelGraphDoc` (proto/pulse/v1/graph.proto), read with
pulse/graph_schema.py, the same code the emitter writes it with: one `Model` per watched model,
each with its module tree and, when the model could be traced, the dataflow between modules.

With dataflow, the leaf modules are drawn along it inside boxes for the modules that contain
them; without, the module tree is drawn. Names are labels only: node ids are generated, so no
module name can break the DOT text.

Example:
    doc = parse(text)                       # GraphFormatError when the text is not a graph
    for model in doc.models:
        st.caption(describe(model)); st.graphviz_chart(to_dot(model))
"""

from __future__ import annotations

from collections.abc import Iterable

from pulse.graph_schema import GraphFormatError, Model, ModelGraphDoc, Module, decode

__all__ = ["GraphFormatError", "describe", "parse", "to_dot"]

MAX_NODES = 400
_ENDS = ("input", "output")


def parse(text: str) -> ModelGraphDoc:
    """The stored document; GraphFormatError says why when it is not one."""
    return decode(text)


def to_dot(model: Model) -> str:
    """DOT text for `st.graphviz_chart`."""
    modules = {m.name: m for m in model.modules}
    edges = [(e.source, e.target) for e in model.edges]
    lines = ["digraph model {", "rankdir=TB; nodesep=0.25; ranksep=0.3;",
             'node [shape=box, style="rounded,filled", fillcolor="#eaf1fb", color="#4e79a7", '
             'fontname="Helvetica", fontsize=10];',
             'edge [color="#7f7f7f", arrowsize=0.6];',
             'graph [fontname="Helvetica", fontsize=10, color="#b0b0b0", style="rounded,dashed"];']
    ids: dict[str, str] = {}
    if edges:
        names = list(dict.fromkeys(n for edge in edges for n in edge))[:MAX_NODES]
        _clusters(lines, names, modules, ids)
        for a, b in edges:
            if a in ids and b in ids:
                lines.append(f"{ids[a]} -> {ids[b]};")
    else:
        names = [n for n in modules if n][:MAX_NODES]
        lines.append(f'root [label="{_escape(model.name or "model")}", fillcolor="#dfe7f3"];')
        ids[""] = "root"
        for name in names:
            ids[name] = f"n{len(ids)}"
            lines.append(f'{ids[name]} [label="{_escape(_label(name, modules.get(name)))}"];')
        for name in names:
            lines.append(f"{ids.get(modules[name].parent, 'root')} -> {ids[name]};")
    lines.append("}")
    return "\n".join(lines)


def describe(model: Model) -> str:
    """'Net · 1,234 parameters · 7 modules · dataflow from torch.fx'."""
    parts = [model.name or "model"]
    if model.prefix:
        parts.append(f"metrics under {model.prefix}")
    parts.append(f"{model.param_count:,} parameters")
    parts.append(f"{sum(1 for m in model.modules if m.name)} modules")
    parts.append(f"dataflow from {model.dataflow}" if model.edges and model.dataflow != "none"
                 else "module tree (no dataflow traced)")
    return " · ".join(parts)


def _clusters(lines: list[str], names: Iterable[str], modules: dict[str, Module], ids: dict[str, str]) -> None:
    """Nodes for `names`, nested in a cluster per containing module (`layer1` holds `layer1.0.conv`)."""
    tree: dict[str, list[str]] = {}

    def parent_of(name: str) -> str:
        module = modules.get(name)
        return module.parent if module is not None else name.rpartition(".")[0]

    for name in names:
        parent = "" if name in _ENDS else parent_of(name)
        tree.setdefault(parent, []).append(name)
        while parent:  # every ancestor is a cluster inside its own parent
            grand = parent_of(parent)
            siblings = tree.setdefault(grand, [])
            if f"cluster:{parent}" not in siblings:
                siblings.append(f"cluster:{parent}")
            parent = grand

    def emit(container: str, indent: str) -> None:
        for item in tree.get(container, []):
            if item.startswith("cluster:"):
                path = item.removeprefix("cluster:")
                kind = modules[path].type if path in modules else ""
                lines.append(f"{indent}subgraph cluster_{len(ids)}_{len(lines)} {{")
                lines.append(f'{indent}  label="{_escape(f"{path} ({kind})" if kind else path)}";')
                emit(path, indent + "  ")
                lines.append(f"{indent}}}")
            else:
                ids[item] = f"n{len(ids)}"
                if item in _ENDS:
                    lines.append(f'{indent}{ids[item]} [label="{item}", shape=ellipse, fillcolor="#f2f2f2", '
                                 'color="#9a9a9a"];')
                else:
                    lines.append(f'{indent}{ids[item]} [label="{_escape(_label(item, modules.get(item)))}"];')

    emit("", "")


def _label(name: str, module: Module | None) -> str:
    parts = [name.rsplit(".", 1)[-1] if name else name]
    if module is None:
        return parts[0]
    if module.type:
        parts.append(module.type)
    if module.params:
        ordered = sorted(module.params.items(), key=lambda item: (item[0] != "weight", item[0]))  # weight first
        parts.append(", ".join(f"{p} {'×'.join(map(str, shape.dims))}" for p, shape in ordered))
    if module.param_count:
        parts.append(f"{module.param_count:,} params")
    return "\n".join(parts)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
