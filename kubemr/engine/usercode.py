"""Find the user's mapper, reducer, combiner, partitioner and value key.

A reference is a name defined in `code.inline`, an import path `package.module:function`, or a
role in the functions the SDK shipped with cloudpickle (`code.pickle`). A reference to a class
gives the method of the same role on one shared instance (`value_key` for spec.valueKey), after
calling its `setup()`; a class may also define `mapper_final()`, whose pairs are emitted after
the last input record.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass

from kubemr.errors import UserCodeError

ROLES = {"mapper": 2, "reducer": 2, "combiner": 2, "partitioner": 3, "valueKey": 1}
ATTRIBUTES = {"valueKey": "value_key"}  # a role's name in UserFunctions and on a class
INLINE_MODULE = "kubemr_inline"


@dataclass
class UserFunctions:
    mapper: Callable
    reducer: Callable | None = None
    combiner: Callable | None = None
    partitioner: Callable | None = None
    value_key: Callable | None = None
    mapper_final: Callable | None = None


def _inline_module(source: str) -> types.ModuleType:
    module = sys.modules.get(INLINE_MODULE)
    if module is not None and getattr(module, "__kubemr_source__", None) == source:
        return module
    try:
        code = compile(source, "<code.inline>", "exec")
    except SyntaxError as e:
        raise UserCodeError(
            f"spec.code.inline: syntax error at line {e.lineno}: {e.msg}"
        ) from None
    module = types.ModuleType(INLINE_MODULE)
    module.__kubemr_source__ = source
    sys.modules[INLINE_MODULE] = module
    try:
        exec(code, module.__dict__)
    except Exception as e:
        del sys.modules[INLINE_MODULE]
        tail = traceback.format_exception_only(type(e), e)[-1].strip()
        raise UserCodeError(f"spec.code.inline: running the code raised {tail}") from None
    return module


def _import_path(field_name: str, ref: str) -> object:
    module_name, _, attr_path = ref.partition(":")
    if not attr_path:
        module_name, _, attr_path = ref.rpartition(".")
    if not module_name or not attr_path:
        raise UserCodeError(
            f"spec.{field_name}: {ref!r} is not an import path like package.module:function "
            "(or define it in code.inline)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserCodeError(f"spec.{field_name}: cannot import {module_name!r}: {e}") from None
    except Exception as e:
        tail = traceback.format_exception_only(type(e), e)[-1].strip()
        raise UserCodeError(f"spec.{field_name}: importing {module_name!r} raised {tail}") from None
    return _attribute(field_name, module, attr_path, f"module {module_name!r}")


def _attribute(field_name: str, owner: object, attr_path: str, where: str) -> object:
    value = owner
    for part in attr_path.split("."):
        if not hasattr(value, part):
            raise UserCodeError(f"spec.{field_name}: {where} has no {attr_path!r}")
        value = getattr(value, part)
    return value


def _check_arity(field_name: str, ref: str, fn: Callable) -> None:
    if not callable(fn):
        raise UserCodeError(f"spec.{field_name}: {ref!r} is not callable")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    n = ROLES[field_name]
    try:
        signature.bind(*([None] * n))
    except TypeError:
        expected = {1: "(value)", 3: "(key, value, num_partitions)"}.get(n) or (
            "(key, value)" if field_name == "mapper" else "(key, values)")
        raise UserCodeError(
            f"spec.{field_name}: {ref} must accept {expected}; its signature is {signature}"
        ) from None


def load_functions(spec: dict, pickled: dict | None = None) -> UserFunctions:
    """Resolve every role the spec names. `pickled` is the SDK's {role: function} bundle."""
    inline = (spec.get("code") or {}).get("inline")
    module = _inline_module(inline) if inline else None
    instances: dict[type, object] = {}
    resolved: dict[str, Callable | None] = {}
    mapper_final = None
    for role in ROLES:
        ref = spec.get(role)
        attribute = ATTRIBUTES.get(role, role)
        if ref is None:
            resolved[attribute] = None
            continue
        if pickled is not None and ref in pickled:
            obj = pickled[ref]
        elif module is not None and ":" not in ref:
            obj = _attribute(role, module, ref, "code.inline")
        else:
            obj = _import_path(role, ref)
        if isinstance(obj, type):
            if obj not in instances:
                instance = obj()
                if hasattr(instance, "setup"):
                    instance.setup()
                instances[obj] = instance
            if not hasattr(instances[obj], attribute):
                raise UserCodeError(f"spec.{role}: class {ref} has no method {attribute}()")
            if role == "mapper":
                mapper_final = getattr(instances[obj], "mapper_final", None)
            obj = getattr(instances[obj], attribute)
        _check_arity(role, ref, obj)
        resolved[attribute] = obj
    if resolved["mapper"] is None:
        raise UserCodeError("spec.mapper: required field is missing")
    return UserFunctions(mapper_final=mapper_final, **resolved)


def load_pickled(uri: str) -> dict:
    """The {role: function} bundle the SDK uploaded, after checking it can be unpickled here."""
    import pickle
    import platform

    import cloudpickle

    from kubemr.storage import store_for

    bundle = pickle.loads(store_for(uri).read_bytes(uri))
    here = {"python": platform.python_version_tuple()[:2], "cloudpickle": cloudpickle.__version__}
    there = {"python": tuple(bundle["python"].split(".")[:2]),
             "cloudpickle": bundle["cloudpickle"]}
    if here != there:
        raise UserCodeError(
            f"code.pickle {uri} was made with Python {'.'.join(there['python'])} and "
            f"cloudpickle {there['cloudpickle']}, but this task runs Python "
            f"{'.'.join(here['python'])} and cloudpickle {here['cloudpickle']}: submit from a "
            "matching environment or use an image that matches yours"
        )
    return cloudpickle.loads(bundle["functions"])
