"""Quick random initialisers for the models a cell builds only to load a checkpoint into.

Most of building a big model is its random initialisers (a `trunc_normal_` is a uniform draw and an `erfinv`
per element): 2.1 of vit_large's 3.0 s, 8.8 of aimv2_1b's 12.6 s. A loading cell builds such a model and then
overwrites every value with the checkpoint's, so `QuickInit` fills what a random initialiser would draw from a
fixed pool of random numbers at the initialiser's own scale instead, at the cost of a copy.

What a cell proves stays as it was:
- a tensor the loader fails to fill still holds values no source holds (random numbers at the initialiser's
  scale, never uninitialised memory, which could be a freed copy of the source), so it still fails;
- constant initialisers (ones, zeros, LayerScale's `init_values * ones`, `fill_`) are not touched, so a tensor
  left at init is still recognised as `silent-reinit`;
- a draw given its own `generator` (a model fixing random features on purpose), a tensor on meta and an
  in-place draw autograd would refuse run as they are.

The cell's repro builds with the real initialisers: only values the loader never filled can differ. The
cell that proves a seeded build is deterministic (`create_model`) keeps them, as does every path that does not
opt in (`LoadingPath.loads_into_build`).
"""

from __future__ import annotations

import math
import weakref
from functools import lru_cache

import torch
from torch.overrides import TorchFunctionMode

# Pool length: a 4 MB draw per kind once per process; a longer tensor repeats it.
_POOL = 1 << 20


@lru_cache(maxsize=1)
def _pools() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(20261130)
    return torch.randn(_POOL, generator=generator), torch.rand(_POOL, generator=generator)


def _fill_(target: torch.Tensor, pool: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    flat = target.view(-1)
    with torch.no_grad():
        # Scaled and shifted chunk by chunk while the chunk is in cache: one pass over the model's memory, where a
        # copy and then a multiply and an add over the whole tensor made three (float32 values the same bit for bit).
        for start in range(0, flat.numel(), _POOL):
            chunk = flat[start:start + _POOL]
            torch.mul(pool[:chunk.numel()], scale, out=chunk).add_(shift)
    return target


def _arg(args: tuple, kwargs: dict, index: int, names: tuple[str, ...], default):
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return args[index] if len(args) > index else default


def _normal(target, args, kwargs):
    return "normal", _arg(args, kwargs, 2, ("std",), 1.0), _arg(args, kwargs, 1, ("mean",), 0.0)


def _uniform(target, args, kwargs):
    low, high = _arg(args, kwargs, 1, ("a", "from"), 0.0), _arg(args, kwargs, 2, ("b", "to"), 1.0)
    return "uniform", high - low, low


def _scaled(std: float, uniform: bool) -> tuple[str, float, float]:
    bound = math.sqrt(3.0) * std  # a uniform draw of that std
    return ("uniform", 2 * bound, -bound) if uniform else ("normal", std, 0.0)


def _kaiming(uniform: bool):
    def draw(target, args, kwargs):
        fan = torch.nn.init._calculate_correct_fan(target, _arg(args, kwargs, 2, ("mode",), "fan_in"))
        gain = torch.nn.init.calculate_gain(_arg(args, kwargs, 3, ("nonlinearity",), "leaky_relu"),
                                            _arg(args, kwargs, 1, ("a",), 0))
        return _scaled(gain / math.sqrt(fan), uniform)
    return draw


def _xavier(uniform: bool):
    def draw(target, args, kwargs):
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(target)
        return _scaled(_arg(args, kwargs, 1, ("gain",), 1.0) * math.sqrt(2.0 / float(fan_in + fan_out)), uniform)
    return draw


# Each random initialiser by name (torch.nn.init's function or the tensor method), and how its tensor and own
# arguments give the fill: (pool, scale, shift).
_DRAWS = {
    "normal_": _normal,
    "uniform_": _uniform,
    "trunc_normal_": _normal,  # torch.nn.init's, dispatched whole and clamped after (timm's is uniform_ + erfinv_)
    "kaiming_uniform_": _kaiming(True),
    "kaiming_normal_": _kaiming(False),
    "xavier_uniform_": _xavier(True),
    "xavier_normal_": _xavier(False),
}


@lru_cache(maxsize=1)
def _init_functions() -> frozenset:
    return frozenset(f for f in (getattr(torch.nn.init, name, None) for name in _DRAWS) if f is not None)


def _drawable(func, target, kwargs: dict) -> bool:
    """Whether the pool may answer this draw: a real floating tensor without a generator of its own."""
    if not isinstance(target, torch.Tensor) or kwargs.get("generator") is not None:
        return False
    if target.is_meta or not target.is_floating_point() or not target.is_contiguous() or target.numel() == 0:
        return False
    # torch.nn.init's functions draw under no_grad themselves; a tensor method on a leaf that requires grad
    # raises, and must still.
    return func in _init_functions() or not (target.requires_grad and torch.is_grad_enabled())


class QuickInit(TorchFunctionMode):
    """`with QuickInit():` builds as usual, except that random initialisers draw from a fixed pool."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = 0  # initialisers answered from the pool, for tests and profiles
        # timm's trunc_normal_ draws uniform_ then maps it through erfinv_; the map is skipped only on the
        # tensor just drawn (a pool's uniform values need no reshaping to be a fill no source holds).
        self._just_drawn: weakref.ref | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")
        if name == "erfinv_" and target is not None and self._just_drawn is not None and self._just_drawn() is target:
            self._just_drawn = None
            return target
        draw = _DRAWS.get(name)
        if draw is None or not _drawable(func, target, kwargs):
            return func(*args, **kwargs)
        try:
            kind, scale, shift = draw(target, args, kwargs)
        except (ValueError, TypeError, ZeroDivisionError):
            return func(*args, **kwargs)  # arguments the real initialiser would refuse: let it
        normal, uniform = _pools()
        _fill_(target, normal if kind == "normal" else uniform, float(scale), float(shift))
        if name == "trunc_normal_":
            with torch.no_grad():
                target.clamp_(_arg(args, kwargs, 3, ("a",), -2.0), _arg(args, kwargs, 4, ("b",), 2.0))
        self.drawn += 1
        self._just_drawn = weakref.ref(target) if name == "uniform_" else None
        return target
