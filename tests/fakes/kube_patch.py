"""The three PATCH bodies the fake Kubernetes API accepts, applied as the real API server applies them.

- ``application/merge-patch+json`` (RFC 7386): maps merge recursively, ``null`` deletes, lists replace.
- ``application/strategic-merge-patch+json``: like a merge patch, but lists of objects that Kubernetes
  types declare ``patchStrategy: merge`` (containers by ``name``, volumeMounts by ``mountPath``, ...)
  merge element-wise by that key, and ``$patch: delete|replace`` directives apply. The real server finds
  merge keys in each type's schema; here they are keyed by field name, which is what they are for the
  kinds this fake serves. The python client sends this type for ``patch_namespaced_*`` with a dict body.
- ``application/json-patch+json`` (RFC 6902): a list of add/remove/replace/move/copy/test operations; the
  python client sends this type when the body is a list. A failed ``test`` or a missing path is 422.
"""

from __future__ import annotations

import copy

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
CONTENT_TYPES = (JSON_PATCH, MERGE, STRATEGIC)

# field name -> merge key, for the list fields of core/apps types declared ``patchStrategy: merge``.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "conditions": "type",
    "ownerReferences": "uid",
}
PRIMITIVE_MERGE_LISTS = {"finalizers"}


class PatchError(ValueError):
    """A patch the server refuses: ``status`` is the HTTP code it answers with (400, 415, 422)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strategic_list(field: str, current: list, patch: list) -> list:
    if field in PRIMITIVE_MERGE_LISTS:
        return current + [v for v in patch if v not in current]
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [strategic_merge_patch(None, item) if isinstance(item, dict) else copy.deepcopy(item) for item in patch]
    if field == "ports" and patch and all("containerPort" not in item for item in patch):
        key = "port"  # a Service's ports merge by port
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if key not in item:
            raise PatchError(422, f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge_patch(None, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def strategic_merge_patch(target, patch):
    """Strategic merge patch of one object (see the module docstring for what is covered)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise PatchError(400, f"Unknown patch type: {directive} in map: {patch}")
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key == "$patch" or key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _strategic_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, [], value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(422, f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(document, parts: list[str], path: str):
    node = document
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(422, f"doc is missing path: {path!r}")
    return node


def _index(container: list, part: str, path: str, *, insert: bool) -> int:
    if insert and part == "-":
        return len(container)
    if not part.isdigit() or int(part) > len(container) - (0 if insert else 1):
        raise PatchError(422, f"unable to access invalid index: {part} in {path!r}")
    return int(part)


def json_patch(document, operations) -> dict:
    """RFC 6902 JSON patch."""
    if not isinstance(operations, list):
        raise PatchError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    document = copy.deepcopy(document)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        parts = _pointer(path)
        if op in ("add", "replace", "remove", "test", "move", "copy") and not parts and op != "test":
            raise PatchError(422, f"cannot {op} the document root")
        if op == "test":
            if _walk(document, parts, path) != operation.get("value"):
                raise PatchError(422, f"testing value {path} failed: test failed")
            continue
        if op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            value = copy.deepcopy(_walk(document, source, operation.get("from", "")))
            if op == "move":
                json_patch_remove(document, source, operation.get("from", ""))
            op, operation = "add", {"value": value}
        if op not in ("add", "replace", "remove"):
            raise PatchError(400, f"Unexpected kind: {op}")
        parent = _walk(document, parts[:-1], path)
        last = parts[-1]
        if op == "remove":
            json_patch_remove(document, parts, path)
        elif isinstance(parent, dict):
            if op == "replace" and last not in parent:
                raise PatchError(422, f"replace operation does not apply: doc is missing key: {path}")
            parent[last] = copy.deepcopy(operation.get("value"))
        elif isinstance(parent, list):
            index = _index(parent, last, path, insert=op == "add")
            if op == "add":
                parent.insert(index, copy.deepcopy(operation.get("value")))
            else:
                parent[index] = copy.deepcopy(operation.get("value"))
        else:
            raise PatchError(422, f"doc is missing path: {path!r}")
    return document


def json_patch_remove(document, parts: list[str], path: str) -> None:
    parent = _walk(document, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list):
        parent.pop(_index(parent, last, path, insert=False))
    else:
        raise PatchError(422, f"remove operation does not apply: doc is missing path: {path!r}")


def apply_patch(content_type: str, current: dict, patch) -> dict:
    """Apply ``patch`` sent with ``content_type`` to ``current``; PatchError(415) for any other type."""
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type == JSON_PATCH:
        return json_patch(current, patch)
    if not isinstance(patch, dict):
        raise PatchError(400, "the body of a merge patch must be a JSON object")
    if content_type == MERGE:
        return merge_patch(current, patch)
    if content_type == STRATEGIC:
        return strategic_merge_patch(current, patch)
    if content_type == "application/apply-patch+yaml":
        raise PatchError(
            415, "server-side apply is not served by this fake; send a merge, strategic-merge or JSON patch"
        )
    raise PatchError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(CONTENT_TYPES)}, application/apply-patch+yaml",
    )
