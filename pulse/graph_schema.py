"""The model-graph contract: `model_graphs.graph` as the emitter writes it and the dashboard reads it.

The structure is the `pulse.v1.ModelGraphDoc` message (proto/pulse/v1/graph.proto); the column
holds it as JSON text, written and read here with google.protobuf.json_format, so both sides use
the same generated code and the same options, and a field renamed on one side fails on both.
json_format rather than a hand-written dict walk: it checks every field's type on the way in.

Example:
    doc = ModelGraphDoc(format=FORMAT, models=[Model(name="Net", modules=[Module(name="fc1", type="Linear")])])
    text = encode(doc)                  # what the emitter sends as ModelGraph.graph_json
    decode(text).models[0].modules[0].type   # 'Linear'
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from pulse.v1.graph_pb2 import Edge, Model, ModelGraphDoc, Module, Shape

__all__ = ["FORMAT", "Edge", "GraphFormatError", "Model", "ModelGraphDoc", "Module", "Shape", "as_dict", "decode",
           "encode"]

FORMAT = "pulse.model_graph/2"
# The first emitters wrote the same fields as plain JSON, with edges as [source, target] pairs and
# shapes as bare lists; such rows are still read.
FORMAT_V1 = "pulse.model_graph/1"


class GraphFormatError(ValueError):
    """The stored text is not a model graph this version can read; the message says why."""


def as_dict(doc: ModelGraphDoc) -> dict[str, Any]:
    """The document as JSON values (what `encode` writes as text)."""
    # Every field, defaults too: users query this column with JSONExtract and expect each key there.
    return json_format.MessageToDict(doc, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def encode(doc: ModelGraphDoc) -> str:
    """The JSON text stored in `model_graphs.graph`."""
    return json.dumps(as_dict(doc))


def decode(text: str) -> ModelGraphDoc:
    """A stored graph; GraphFormatError when the text is not one."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise GraphFormatError(f"the stored model graph is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise GraphFormatError("the stored model graph is not a JSON object")
    if value.get("format") == FORMAT_V1:
        value = _from_v1(value)
    try:
        # Unknown fields are skipped: a newer emitter may add some, and this reader still draws the rest.
        return json_format.ParseDict(value, ModelGraphDoc(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise GraphFormatError(f"the stored model graph does not match pulse.v1.ModelGraphDoc: {exc}") from None


def _from_v1(value: dict[str, Any]) -> dict[str, Any]:
    models = []
    for model in value.get("models") or []:
        if not isinstance(model, dict):
            continue
        modules = [{**m, "parent": m.get("parent") or "",
                    "params": {p: {"dims": s} for p, s in (m.get("params") or {}).items()}}
                   for m in model.get("modules") or [] if isinstance(m, dict)]
        edges = [{"source": e[0], "target": e[1]} for e in model.get("edges") or []
                 if isinstance(e, list) and len(e) == 2]
        models.append({**model, "modules": modules, "edges": edges})
    return {"format": FORMAT_V1, "models": models}
