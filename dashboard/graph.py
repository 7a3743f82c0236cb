"""A watched model's graph (`model_graphs.graph`, written by `emitter.watch(log_graph=True)`) as DOT.

The stored JSON holds the module tree and, when the model could be traced, the dataflow between
modules:

    {"name": "Net", "modules": [{"name": "fc1", "type": "Linear", "parent": "", "leaf": true,
                                 "params": {"weight": [16, 8]}, "param_count": 128}, ...],
     "edges": [["input", "fc1"], ["fc1", "act"], ["act", "output"]]}

With dataflow, the leaf modules are drawn along it inside boxes for the modules that contain
them; without, the module tree is drawn. Names are labels only: node ids are generated, so no
module name can break the DOT text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MAX_NODES = 400
_ENDS = ("input", "output")


def to_dot(graph: dict[str, Any]) -> str:
    """DOT text for `st.graphviz_chart`."""
    modules = {m.get("name", ""): m for m in graph.get("modules") or [] if isinstance(m, dict)}
    edges = [tuple(e) for e in graph.get("edges") or [] if isinstance(e, (list, tuple)) and len(e) == 2]
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
        root = graph.get("name") or "model"
        lines.append(f'root [label="{_escape(root)}", fillcolor="#dfe7f3"];')
        ids[""] = "root"
        for name in names:
            ids[name] = f"n{len(ids)}"
            lines.append(f'{ids[name]} [label="{_escape(_label(name, modules.get(name, {})))}"];')
        for name in names:
            parent = modules[name].get("parent") or ""
            lines.append(f"{ids.get(parent, 'root')} -> {ids[name]};")
    lines.append("}")
    return "\n".join(lines)


def parse(text: str) -> dict[str, Any] | None:
    try:
        graph = json.loads(text)
    except ValueError:
        return None
    return graph if isinstance(graph, dict) else None


def describe(graph: dict[str, Any]) -> str:
    """'Net · 1,234 parameters · 7 modules · dataflow from torch.fx'."""
    modules = graph.get("modules") or []
    parts = [str(graph.get("name") or "model")]
    if isinstance(graph.get("param_count"), int):
        parts.append(f"{graph['param_count']:,} parameters")
    parts.append(f"{sum(1 for m in modules if isinstance(m, dict) and m.get('name'))} modules")
    flow = graph.get("dataflow")
    parts.append(f"dataflow from {flow}" if graph.get("edges") and flow else "module tree (no dataflow traced)")
    return " · ".join(parts)


def _clusters(lines: list[str], names: Iterable[str], modules: dict[str, Any], ids: dict[str, str]) -> None:
    """Nodes for `names`, nested in a cluster per containing module (`layer1` holds `layer1.0.conv`)."""
    tree: dict[str, list[str]] = {}
    for name in names:
        parent = "" if name in _ENDS else (modules.get(name, {}).get("parent") or _parent(name))
        tree.setdefault(parent, []).append(name)
        while parent:  # every ancestor is a cluster inside its own parent
            grand = modules.get(parent, {}).get("parent") or _parent(parent)
            siblings = tree.setdefault(grand, [])
            if f"cluster:{parent}" not in siblings:
                siblings.append(f"cluster:{parent}")
            parent = grand

    def emit(container: str, indent: str) -> None:
        for item in tree.get(container, []):
            if item.startswith("cluster:"):
                path = item.removeprefix("cluster:")
                kind = modules.get(path, {}).get("type", "")
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
                    lines.append(f'{indent}{ids[item]} [label="{_escape(_label(item, modules.get(item, {})))}"];')

    emit("", "")


def _label(name: str, module: dict[str, Any]) -> str:
    parts = [name.rsplit(".", 1)[-1] if name else name]
    if module.get("type"):
        parts.append(str(module["type"]))
    shapes = module.get("params") or {}
    if isinstance(shapes, dict) and shapes:
        parts.append(", ".join(f"{p} {'×'.join(map(str, s))}" for p, s in shapes.items() if isinstance(s, list)))
    if module.get("param_count"):
        parts.append(f"{module['param_count']:,} params")
    return "\n".join(parts)


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
