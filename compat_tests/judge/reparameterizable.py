"""Which models timm can fuse for deployment, found in the live code, and what a fused model lost.

A model is reparameterizable when any submodule below the root has `fuse`, `reparameterize` or
`switch_to_deploy`: exactly what `timm.utils.reparameterize_model` looks for (it walks children, never
the root itself). Discovery builds the model on the meta device, so no memory is allocated and a new
family is picked up the day timm adds it, with no list to maintain here.
"""

from __future__ import annotations

import linecache
import re
import traceback
from functools import cache

import torch

# The methods reparameterize_model calls, in its order of preference.
REPARAM_METHODS = ("fuse", "reparameterize", "switch_to_deploy")
# `self.<attr>(` on the source line that raised: the call that hit a None attribute.
_SELF_CALL = re.compile(r"self\.(\w+)\s*\(")


def reparam_sites(model: torch.nn.Module) -> list[str]:
    """Qualified names of the submodules reparameterize_model would act on, as 'path:Class.method'."""
    sites = []
    for name, module in model.named_modules():
        if not name:  # the root is never fused by reparameterize_model
            continue
        method = next((m for m in REPARAM_METHODS if hasattr(module, m)), None)
        if method:
            sites.append(f"{name}:{type(module).__name__}.{method}")
    return sites


def _build_for_discovery(name: str) -> torch.nn.Module:
    from ..source.meta import meta_model

    return meta_model(name)


@cache
def discover(name: str) -> tuple[str, ...] | None:
    """The fusable classes of `name` ('Class.method', deduplicated), () when none, None when it can't be built.

    Cached: the plugin asks once per path, and the full tier asks for every architecture.
    """
    try:
        model = _build_for_discovery(name)
    except Exception:  # the create_model cell owns that failure
        return None
    return tuple(sorted({site.split(":", 1)[1] for site in reparam_sites(model)}))


def is_reparameterizable(name: str) -> bool | None:
    """True/False from the live code; None when the model cannot be built (callers keep its cell)."""
    found = discover(name)
    return None if found is None else bool(found)


def none_attributes(unfused: torch.nn.Module, fused: torch.nn.Module) -> list[str]:
    """Submodule slots that hold None in the fused model where the unfused model had a module.

    Both models share the paths of the slots reparameterization left in place; a `fuse()` that replaced a
    child keeps its path too, so comparing by path is enough.
    """
    before = dict(unfused.named_modules())
    found = []
    for path, module in fused.named_modules():
        old = before.get(path)
        if old is None:
            continue
        for attr, child in module._modules.items():
            if child is None and isinstance(old._modules.get(attr), torch.nn.Module):
                found.append(f"{path}.{attr}" if path else attr)
    return found


def called_none_attribute(error: BaseException, model: torch.nn.Module) -> str | None:
    """The attribute path (e.g. 'stages.0.blocks.1.norm') whose None value a forward tried to call.

    Reads the innermost frame of `error` whose `self` is a submodule of `model` and whose source line
    calls `self.<attr>(` with that attribute None. The call itself opens no frame, so this frame is the
    caller, and its line names the attribute.
    """
    names = {id(m): n for n, m in model.named_modules()}
    for frame, lineno in reversed(list(traceback.walk_tb(error.__traceback__))):
        owner = frame.f_locals.get("self")
        if id(owner) not in names:
            continue
        line = linecache.getline(frame.f_code.co_filename, lineno)
        for attr in _SELF_CALL.findall(line):
            if attr in owner.__dict__.get("_modules", {}) and owner._modules[attr] is None:
                prefix = names[id(owner)]
                return f"{prefix}.{attr}" if prefix else attr
        return None  # the innermost model frame did not call a None slot: some other TypeError
    return None
