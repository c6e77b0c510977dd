"""Patch algebra for the Kubernetes emulator: merge, strategic merge, JSON patch, field ownership.

Pure functions on JSON-like data, kept apart from the HTTP layer so that the
rules a real API server applies are readable in one place:

* RFC 7386 merge patch and RFC 6902 JSON patch, exactly;
* strategic merge approximated as merge patch plus "lists of objects that all
  carry ``name`` are merged by name" (containers, env, volumes, ports) and the
  ``$patch`` directives;
* server-side apply's field ownership as sets of leaf paths, with lists atomic.
  That is coarser than the API server's structured-merge-diff, but it keeps the
  two behaviours the steps depend on: fields a manager stops applying are
  removed, and another manager's differing value is a conflict unless forced.
"""

from __future__ import annotations

import copy
from typing import Any

Path = tuple[str, ...]

# Fields the server owns; they never appear in a manager's field set.
_SERVER_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
    }
)


class PatchError(ValueError):
    """The patch document is malformed or a JSON-patch ``test`` failed (the server answers 422)."""


# -- merge patches -------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Merge patch, except that lists of named objects merge by ``name``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder/…, $retainKeys: ordering hints kubectl sends
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and _named(value) and isinstance(result.get(key), list):
            result[key] = _merge_named(result[key], value)
        elif isinstance(value, list):
            result[key] = [_strip_directives(v) for v in value]
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _merge_named(current: list[Any], patch: list[Any]) -> list[Any]:
    merged = copy.deepcopy(current)
    for item in patch:
        index = next(
            (i for i, c in enumerate(merged) if isinstance(c, dict) and c.get("name") == item["name"]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_strip_directives(item))
        else:
            merged[index] = strategic_merge(merged[index], item)
    return merged


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    return copy.deepcopy(value)


# -- JSON patch ----------------------------------------------------------------
def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}")
        kind = op["op"]
        if kind == "add":
            doc = _pointer_set(doc, op["path"], copy.deepcopy(op.get("value")), insert=True)
        elif kind == "remove":
            doc, _ = _pointer_pop(doc, op["path"])
        elif kind == "replace":
            _pointer_get(doc, op["path"])
            doc = _pointer_set(doc, op["path"], copy.deepcopy(op.get("value")), insert=False)
        elif kind == "move":
            doc, value = _pointer_pop(doc, op["from"])
            doc = _pointer_set(doc, op["path"], value, insert=True)
        elif kind == "copy":
            doc = _pointer_set(doc, op["path"], copy.deepcopy(_pointer_get(doc, op["from"])), insert=True)
        elif kind == "test":
            if _pointer_get(doc, op["path"]) != op.get("value"):
                raise PatchError(f"test operation failed at {op['path']}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _step(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise PatchError(f"path {pointer} does not exist")


def _pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _step(node, token, pointer)
    return node


def _pointer_set(doc: Any, pointer: str, value: Any, insert: bool) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    parent = _pointer_get(doc, "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1]))
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (0 if insert else 1):
            if insert:
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            raise PatchError(f"index {last} out of range at {pointer}")
    else:
        raise PatchError(f"path {pointer} does not exist")
    return doc


def _pointer_pop(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = doc
    for token in tokens[:-1]:
        parent = _step(parent, token, pointer)
    value = _step(parent, tokens[-1], pointer)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[int(tokens[-1])]
    return doc, value


# -- field ownership (server-side apply) ---------------------------------------
def field_paths(obj: dict[str, Any], with_status: bool = False) -> set[Path]:
    """Leaf paths a manager owns when it sets ``obj`` (server-owned metadata excluded)."""
    paths: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not with_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            for mkey, mvalue in value.items():
                if mkey not in _SERVER_META:
                    paths |= _leaves(mvalue, ("metadata", mkey))
        else:
            paths |= _leaves(value, (key,))
    return paths


def _leaves(value: Any, prefix: Path) -> set[Path]:
    if isinstance(value, dict) and value:
        out: set[Path] = set()
        for key, sub in value.items():
            out |= _leaves(sub, (*prefix, key))
        return out
    return {prefix}


def get_path(obj: Any, path: Path) -> Any:
    node = obj
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def remove_path(obj: dict[str, Any], path: Path) -> None:
    """Delete the leaf at ``path`` and any maps it leaves empty (but not top-level sections)."""
    chain: list[dict[str, Any]] = [obj]
    for key in path[:-1]:
        node = chain[-1].get(key)
        if not isinstance(node, dict):
            return
        chain.append(node)
    chain[-1].pop(path[-1], None)
    for depth in range(len(chain) - 1, 1, -1):
        if not chain[depth]:
            chain[depth - 1].pop(path[depth - 1], None)


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, sub in tree.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        paths |= from_fields_v1(sub, path) if sub else {path}
    return paths


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
"""What :func:`get_path` returns for an absent path (distinct from ``None``)."""
