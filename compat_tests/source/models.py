"""Source models: what every loading path saves, and what the oracle compares the loaded model with.

A source model carries seeded, perturbed values in every parameter and persistent floating buffer,
so a tensor that a load leaves at its initial value (LayerScale's constant gamma, BatchNorm's
running stats, a zero bias) can never equal the source by chance.
"""

from __future__ import annotations

import gc
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

# The seeded, perturbed source model exactly as `build_source` builds it, as repro script text: the start
# of every repro template that starts from a source model (a str.format template over `spec`).
BUILD_SOURCE = '''
spec = {spec!r}
torch.manual_seed(spec["seed"])
source = timm.create_model(spec["name"], pretrained=False, **spec["source_kwargs"]).eval()
perturb_(source, spec["seed"])'''

# Inputs are kept small to keep the matrix fast, as timm's own tests do; models whose
# config says the input size is fixed keep theirs.
MAX_INPUT_SIDE = 160
# One sample, as timm's forward test feeds: the judge runs every loaded model in eval mode, where samples
# never mix, so a second one proves nothing more about a load and doubles a big model's forwards, most of
# its cells' time.
BATCH = 1
DEFAULT_SEED = 0


def perturb_(model, seed=0):
    """Shift every floating state tensor by seeded noise scaled to its magnitude, in place.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import math
    import zlib

    import torch

    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.is_meta:
                continue  # meta tensors (structural cells) have no values to perturb
            gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
            # Uniform noise of unit variance: as unlike any initial value as a normal draw, at half its cost (the
            # draw is most of a big source's perturbation, and the source and the seeded rebuild each make one).
            noise = torch.empty(tensor.shape).uniform_(-3**0.5, 3**0.5, generator=gen).to(tensor.dtype)
            spread = tensor.float().abs().mean().item()
            # A finite mean of magnitudes means every value is finite: the element-wise check (a pass as slow as
            # the draw itself) is made only when it is not.
            if not math.isfinite(spread) and not (finite := tensor.isfinite()).all():
                # an open bound (Gemma4's clip -inf/inf) stays open: noise would make it NaN
                noise = noise.masked_fill(~finite, 0)
                spread = tensor[finite].float().abs().mean().item() if finite.any() else 0.0
            tensor.add_(noise, alpha=0.1 * spread if spread > 0 else 0.02)
            if key.endswith("running_var"):
                tensor.abs_()  # a variance must stay positive or eval-mode BatchNorm yields NaN
    return model


def make_input(input_size, seed=0, batch=1):
    """The seeded input every cell feeds the source and the loaded model (standalone for repros)."""
    import torch

    gen = torch.Generator().manual_seed(seed + 12345)
    return torch.randn((batch, *input_size), generator=gen)


@dataclass
class SourceModel:
    name: str
    kwargs: dict[str, Any]
    seed: int
    model: torch.nn.Module
    input_size: tuple[int, ...]
    # None for a structural (meta-device) source: it has no values to run.
    reference: torch.Tensor | None
    # Tensors whose initialiser gives one constant value (ones, zeros, LayerScale's 1e-5), kept so
    # the oracle can tell "left at init" from any other mismatch.
    constant_inits: dict[str, torch.Tensor] = field(default_factory=dict)
    # Non-persistent buffers as the constructor left them, before the reference forward.
    built_buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    # The bytes of its state in float32 (0 on meta): what one more copy of the model costs, and what a file of it
    # holds. The cell's memory check and the choice of RAM or disk for its files are made from it.
    fp32_bytes: int = 0
    # A structural source: the meta context (source/meta.py) its constructor needed. The cell's own builds go
    # straight to it, and its repro builds for real where that was the CPU-factories one.
    meta_context: type | None = None
    # What a plain meta build of it raised, when the CPU factories got past it: its create_model cell's finding.
    meta_refused: Exception | None = None

    _meta_state: dict[str, torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)

    def input(self) -> torch.Tensor:
        return make_input(self.input_size, self.seed, BATCH)

    def state(self) -> dict[str, torch.Tensor]:
        """`model.state_dict()`. A structural source's is taken once: its four or five cells each compared with a
        fresh one (2% of a structural run), and on meta there are no values for a path to change."""
        if self.reference is not None:
            return self.model.state_dict()
        if self._meta_state is None:
            self._meta_state = self.model.state_dict()
        return self._meta_state


def fp32_bytes(module: torch.nn.Module) -> int:
    """Bytes of `module`'s state (parameters and buffers) with floating tensors counted as float32: a checkpoint's
    size, and one copy of the model in memory. Shapes only, so a meta-device model answers too."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}.values()  # tied weights once
    return sum(t.numel() * (4 if t.is_floating_point() else t.element_size()) for t in tensors)


def _input_candidates(model: torch.nn.Module, kwargs: dict[str, Any]) -> list[tuple[int, ...]]:
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    native = tuple(cfg.get("input_size") or (3, 224, 224))
    if "in_chans" in kwargs:
        native = (int(kwargs["in_chans"]), *native[1:])
    if "img_size" in kwargs:
        side = kwargs["img_size"]
        native = (native[0], *((side, side) if isinstance(side, int) else tuple(side)))
    if cfg.get("fixed_input_size") or max(native[1:]) <= MAX_INPUT_SIDE or "img_size" in kwargs:
        return [native]
    small = tuple(cfg.get("min_input_size") or (native[0], MAX_INPUT_SIDE, MAX_INPUT_SIDE))
    return [(native[0], *small[1:]), native]


def is_constant(tensor: torch.Tensor) -> bool:
    """A floating tensor of more than one element holding one value: what a constant initialiser gives."""
    if not tensor.is_floating_point() or tensor.numel() < 2:
        return False
    flat = tensor.flatten()
    # Two different first values settle it for nearly every drawn tensor, without a pass over all of it.
    return bool(flat[0] == flat[1]) and bool((flat == flat[0]).all())


def nonpersistent_buffers(module: torch.nn.Module, saved: dict[str, torch.Tensor] | None = None
                          ) -> dict[str, torch.Tensor]:
    """Buffers the model computes itself and never saves; `saved` is its state_dict, when already at hand."""
    saved = module.state_dict() if saved is None else saved
    return {k: b for k, b in module.named_buffers() if k not in saved}


def build_source(name: str, kwargs: dict[str, Any] | None = None, seed: int = DEFAULT_SEED) -> SourceModel:
    """Build, perturb and run the source model once; raises whatever timm raises."""
    import timm

    kwargs = dict(kwargs or {})
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    constant_inits = {k: v.clone() for k, v in model.state_dict().items() if is_constant(v)}
    perturb_(model, seed)
    built_buffers = {k: b.clone() for k, b in nonpersistent_buffers(model).items()}
    error: Exception | None = None
    for size in _input_candidates(model, kwargs):
        try:
            with torch.no_grad():
                reference = model(make_input(size, seed, BATCH))
        except Exception as e:  # a capped size the architecture rejects: fall back to its own
            error = e
            continue
        return SourceModel(name, kwargs, seed, model, size, reference, constant_inits, built_buffers,
                           fp32_bytes(model))
    assert error is not None
    raise error


def build_meta_source(name: str, kwargs: dict[str, Any] | None = None, seed: int = DEFAULT_SEED) -> SourceModel:
    """The source of a structural cell: built on the meta device, no values, no forward; or the same build that a
    probe of these kwargs just made (`take_spare`)."""
    import timm

    from .meta import on_meta, take_spare

    kwargs = dict(kwargs or {})
    built = take_spare(name, kwargs) or on_meta(lambda: timm.create_model(name, pretrained=False, **kwargs))
    model = built.value.eval()
    return SourceModel(name, kwargs, seed, model, _input_candidates(model, kwargs)[0], None,
                       meta_context=built.context, meta_refused=built.refused)


class SourceCache:
    """Keeps the most recently built source models; cells of one model run back to back."""

    def __init__(self, size: int = 1) -> None:
        self._size = size
        self._items: OrderedDict[tuple, SourceModel | Exception] = OrderedDict()
        # Seconds spent building source models: the run's time account reports them apart from the cells.
        self.build_s = 0.0

    def held_bytes(self, name: str) -> int:
        """The float32 bytes of the source models of `name` this cache holds, after releasing every other
        model's: memory a cell of `name` already has (its source), or gets back before its source is built."""
        if any(key[0] != name for key in self._items):
            self.release(keep=name)
        return sum(s.fp32_bytes for s in self._items.values() if isinstance(s, SourceModel))

    def release(self, keep: str | None = None) -> None:
        """Drop the sources of every model but `keep` and return their memory now, not at the next build: the
        memory check reads what the machine has free."""
        doomed = [key for key in self._items if key[0] != keep]
        for key in doomed:
            del self._items[key]
        if doomed:
            gc.collect()  # a module graph with a reference cycle would otherwise hold its tensors until later

    def get(self, name: str, kwargs: dict[str, Any], seed: int = DEFAULT_SEED, meta: bool = False) -> SourceModel:
        key = (name, tuple(sorted((k, repr(v)) for k, v in kwargs.items())), seed, meta)
        if key not in self._items:
            while len(self._items) >= self._size:
                self._items.popitem(last=False)
            started = time.perf_counter()
            try:
                self._items[key] = (build_meta_source if meta else build_source)(name, kwargs, seed)
            except Exception as e:  # remembered, so every cell of a broken model fails fast
                self._items[key] = e
            finally:
                self.build_s += time.perf_counter() - started
        found = self._items[key]
        if isinstance(found, Exception):
            raise found
        return found
