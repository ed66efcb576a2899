"""The meta device, made fast enough to build the whole registry, and the errors that mean "meta cannot
check this" rather than "the load is broken".

`torch.device("meta")` alone spends most of a build in weight initialisers (timm's `trunc_normal_` runs
a Python-level meta decomposition per op, ~5 ms each). Values do not exist on meta, so value-only
in-place ops whose other arguments are plain numbers are skipped: they can neither change a shape or
dtype nor fail a shape check. Anything with a tensor argument (`copy_` in load_state_dict) still runs
its meta kernel and so still raises on a size mismatch.

A forward on meta (the pickles of the cross-version tier) spends about half its time in the normalisations,
whose meta kernels are Python decompositions (layer_norm ~1 ms, group_norm ~6 ms a call against 0.03 ms for a
conv), and in the elementwise activations' Python references. Their result is the input's shape and their only
failures are shape checks, so `_SHAPE_RULES` gives those results directly and makes the same checks with the
same messages; anything outside what a rule covers (a CPU tensor, an integer input) runs the real kernel.
`tests/test_structural.py` holds each rule to the real meta kernel, on good inputs and bad.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Generic, NamedTuple, TypeVar

import torch
from torch._prims_common import suggest_memory_format
from torch.utils._device import DeviceContext, _device_constructors

_VALUE_ONLY = frozenset({
    "uniform_", "normal_", "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "clamp_min_", "clamp_max_",
    "fill_", "zero_", "exp_", "log_", "sqrt_", "abs_", "neg_", "bernoulli_", "random_", "exponential_",
    "log_normal_", "pow_", "reciprocal_",
    # torch.nn.init's Python functions, dispatched whole when their tensor is meta
    "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "constant_",
    "ones_", "zeros_", "orthogonal_", "normal", "uniform",
})


def _only_touches(target: torch.Tensor, values) -> bool:
    """No tensor among `values` but `target` itself (torch.nn.init passes it again as `tensor=`)."""
    for v in values:  # a loop, not any(): this runs for every initialiser of every build
        if v is not target and isinstance(v, torch.Tensor):
            return False
    return True


def _all_meta(input: Any, *others: Any) -> bool:
    """Every tensor on meta, of one floating dtype (mixed dtypes promote: the real kernel decides)."""
    return isinstance(input, torch.Tensor) and input.is_meta and input.is_floating_point() and all(
        t is None or (isinstance(t, torch.Tensor) and t.is_meta and t.dtype == input.dtype) for t in others)


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not (_all_meta(input, weight, bias) and shape):
        return NotImplemented
    if tuple(input.shape[-len(shape):]) != shape or input.dim() < len(shape):
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape [*, "
                           f"{', '.join(map(str, shape))}], but got input of size{input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{t.shape} and normalized_shape = {list(shape)}")
    return torch.empty(input.shape, dtype=input.dtype, device="meta")  # the meta kernel's: contiguous


def _batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if not (_all_meta(input, running_mean, running_var, weight, bias) and input.dim() >= 2):
        return NotImplemented
    if training:
        torch.nn.functional._verify_batch_size(input.size())
    channels = input.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.numel() != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {t.numel()}")
    return torch.empty_like(input)  # the meta kernel's: the input's layout


def _group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    if not (_all_meta(input, weight, bias) and input.dim() >= 2):
        return NotImplemented
    channels = input.shape[1]
    if channels % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {input.shape} and num_groups={num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dim() != 1 or t.numel() != channels):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, "
                               f"but got {name} of shape {t.shape} and input of shape {input.shape}")
    layout = suggest_memory_format(input) if _group_norm_keeps_layout() else torch.contiguous_format
    return torch.empty(input.shape, dtype=input.dtype, device="meta", memory_format=layout)


@lru_cache(maxsize=1)
def _group_norm_keeps_layout() -> bool:
    """Whether this torch's meta group_norm keeps a channels-last input's layout. Up to 2.14 its reference made
    every result contiguous on meta (only the CPU kept the layout); 2.15 keeps it on meta too. Asked of the real
    kernel once, so the rule follows whichever release is installed."""
    x = torch.empty(2, 2, 2, 2, device="meta").to(memory_format=torch.channels_last)
    return not torch.nn.functional.group_norm(x, 1).is_contiguous()


def _unary(input, *args, inplace=False, **kwargs):
    """An elementwise activation: its result has the input's shape, dtype and layout; in place, the input itself
    (autograd's refusal to change a leaf that requires grad in place is left to the real call)."""
    inplace = inplace or bool(args and args[-1] is True)  # F.relu(x, True)
    if not _all_meta(input) or any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())) or \
            (inplace and input.requires_grad) or \
            any(isinstance(a, str) and a not in ("none", "tanh") for a in (*args, *kwargs.values())):  # gelu's
        return NotImplemented
    return input if inplace else torch.empty_like(input)


def _shape_rules() -> dict:
    F = torch.nn.functional
    rules = {F.layer_norm: _layer_norm, F.batch_norm: _batch_norm, F.group_norm: _group_norm}
    for name in ("gelu", "silu", "relu", "relu6", "hardswish", "hardsigmoid", "mish", "sigmoid", "tanh", "elu",
                 "leaky_relu", "selu", "celu", "softplus"):
        if (func := getattr(F, name, None)) is not None:
            rules[func] = _unary
    for name in ("sigmoid", "tanh", "relu"):
        rules[getattr(torch, name)] = _unary
        rules[getattr(torch.Tensor, name)] = _unary
    return rules


_SHAPE_RULES = _shape_rules()


class _Handling(NamedTuple):
    value_only: bool  # an initialiser or in-place value op: skipped when it touches only its meta target
    ruled: bool  # has a shape rule, read from `_SHAPE_RULES` at each call (the selftests swap rules in)
    constructor: bool  # a factory that takes `device=`: made on meta unless the call names a device
    copy: bool  # `Tensor.copy_`: its target is recorded as written (`MetaShapes.wrote`)


def _handling_of(func: Any) -> _Handling | None:
    """What `MetaShapes` does with `func` beyond calling it; None for nothing (most of a build's calls)."""
    handling = _Handling(getattr(func, "__name__", "") in _VALUE_ONLY, func in _SHAPE_RULES,
                         func in _device_constructors(), func is torch.Tensor.copy_)
    return handling if any(handling) else None


# Decided once per function: a build makes some ten thousand torch calls, a structural run tens of millions.
_HANDLING: dict[Any, _Handling | None] = {}


class MetaShapes(DeviceContext):
    """`with MetaShapes():` is `with torch.device("meta"):` minus the cost of initialising values, and of
    normalisations' and activations' Python meta kernels."""

    def __init__(self) -> None:
        super().__init__("meta")
        # The tensors a `copy_` wrote into while this context was active, by id, held so that no other tensor takes
        # the id. On meta a load leaves no value behind: load_state_dict's `param.copy_(input_param)` is its only
        # trace, and a tensor no copy reached kept its initial value.
        self.written: dict[int, torch.Tensor] = {}

    def wrote(self, tensor: torch.Tensor) -> bool:
        """Whether a `copy_` under this context wrote into `tensor` (a parameter or buffer object itself, as
        `state_dict(keep_vars=True)` gives it)."""
        return self.written.get(id(tensor)) is tensor

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            handling = _HANDLING[func]
        except KeyError:
            handling = _HANDLING.setdefault(func, _handling_of(func))
        if handling is None:
            return func(*args, **kwargs) if kwargs else func(*args)
        kwargs = kwargs or {}
        if handling.value_only:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta and _only_touches(target, args) and \
                    _only_touches(target, kwargs.values()):
                return target
        elif handling.ruled and (result := _SHAPE_RULES[func](*args, **kwargs)) is not NotImplemented:
            return result
        elif handling.copy:
            result = func(*args, **kwargs)
            target = args[0] if args else kwargs["self"]
            self.written[id(target)] = target
            return result
        if handling.constructor and kwargs.get("device") is None:
            kwargs["device"] = self.device
        return func(*args, **kwargs)


# Factories whose results constructors read back as Python values: timm 0.9 builds its drop-path schedule
# with `[x.item() for x in torch.linspace(0, rate, depth)]` (byobnet: `.split(depths)` then `.tolist()`), and
# position indices come from arange. They are small and never parameters, which come from empty/zeros/ones.
_CPU_FACTORY_NAMES = ("linspace", "logspace", "arange", "range", "tensor", "as_tensor", "asarray", "scalar_tensor")


@lru_cache(maxsize=1)
def _cpu_factories() -> frozenset:
    return frozenset(f for f in (getattr(torch, n, None) for n in _CPU_FACTORY_NAMES) if f is not None)


# What torch says when one operation is given tensors on the CPU and on meta.
_DEVICE_MIX = re.compile(r"not on the expected device|to be on the same device", re.I)


class MetaShapesCpuFactories(MetaShapes):
    """`MetaShapes`, except that the small value factories (`torch.linspace`, `arange`, `tensor`, ...) called
    without a device stay on the CPU, so a constructor may read them (`.item()`, `.tolist()`) while every
    parameter stays on meta. A buffer made from one (a relative position index) is then a CPU tensor:
    its shape and dtype are the real ones; `model.to("meta")` moves it. An operation refusing to mix such a
    tensor with a meta one (RoPE frequencies: an arange times a meta `torch.rand`) is run again with its CPU
    tensors on meta, as it would have run under `MetaShapes`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _cpu_factories() and kwargs.get("device") is None:
            return func(*args, **kwargs)  # the mode is off while it handles a call: this is the CPU default
        try:
            return super().__torch_function__(func, types, args, kwargs)
        except RuntimeError as e:
            if not _DEVICE_MIX.search(str(e)):
                raise
        from torch.utils._pytree import tree_map

        def to_meta(value):
            return value.to("meta") if isinstance(value, torch.Tensor) and not value.is_meta else value

        return super().__torch_function__(func, types, tree_map(to_meta, tuple(args)), tree_map(to_meta, kwargs))


# How a build is tried on meta, in order: plain, then with the small value factories on the CPU. timm up to
# 1.0.15 reads its drop-path schedules with `.item()` in over half its architectures (534 of 0.9.16's 1,032, 672
# of 1.0.15's 1,200; none of 1.0.31's), and every one of those builds under the second. So do the constructors
# that call an operator with no meta kernel on a factory's result (timm 1.0.16-1.0.29's RegNet: torch.unique).
META_BUILDS: tuple[type[MetaShapes], ...] = (MetaShapes, MetaShapesCpuFactories)

# What torch says when an operator has no meta kernel at all: not a limit of meta as such, since transformers 5
# builds every model on meta and fails alike, but a plain-meta build that the CPU factories may get past.
_NO_META_KERNEL = re.compile(r"attempted to run this operator with Meta tensors", re.I)

T = TypeVar("T")


class Built(NamedTuple, Generic[T]):
    value: T
    context: type[MetaShapes] | None  # the first of the contexts that could build it (None: built for real)
    refused: Exception | None  # what plain meta raised, when a later context built it


def on_meta(build: Callable[[], T], contexts: Sequence[type[MetaShapes]] = META_BUILDS) -> Built[T]:
    """`build()` under the first of `contexts` that can run it. The next is tried only when one raised a meta
    limitation or met an operator without a meta kernel; the last one's error, or any other, is raised as it is."""
    refused: Exception | None = None
    for i, context in enumerate(contexts):
        try:
            with context():
                return Built(build(), context, refused)
        except Exception as e:
            if i + 1 == len(contexts) or (meta_limitation(e) is None and not _NO_META_KERNEL.search(str(e))):
                raise
            refused = refused or e
    raise ValueError("on_meta needs at least one context")


def build_anywhere(name: str, **kwargs: Any) -> Built[torch.nn.Module]:
    """`timm.create_model(name, **kwargs)` on the meta device where the constructor allows it (`on_meta`);
    constructors that need more values than the CPU factories give are built for real (context None), since the
    meta device failing is not the architecture saying no. Raises what timm raises."""
    import timm

    try:
        return on_meta(lambda: timm.create_model(name, pretrained=False, **kwargs))
    except Exception as e:
        if meta_limitation(e) is None:
            raise
        return Built(timm.create_model(name, pretrained=False, **kwargs), None, e)


def build_on_meta(name: str, **kwargs: Any) -> torch.nn.Module:
    """The model `build_anywhere` builds."""
    return build_anywhere(name, **kwargs).value


# The last meta build made only to learn whether timm accepts some kwargs, kept for the structural source of the
# same kwargs, which is built next: a foreign layout that implies `num_classes` (318 OpenCLIP trunk cells) is first
# probed, then built as the cell's source. Taken, never shared: a source is its cells' to save and to change.
_SPARE: dict[tuple[str, str], Built[torch.nn.Module]] = {}


def _build_key(name: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    return name, repr(sorted(kwargs.items()))


def probe_on_meta(name: str, **kwargs: Any) -> None:
    """Raises what timm raises building `name` with `kwargs` (`build_anywhere`). A build on meta is kept, in place
    of the one kept before, for `take_spare`."""
    built = build_anywhere(name, **kwargs)
    _SPARE.clear()
    if built.context is not None:
        _SPARE[_build_key(name, kwargs)] = built


def take_spare(name: str, kwargs: dict[str, Any]) -> Built[torch.nn.Module] | None:
    """The build `probe_on_meta` kept for exactly these kwargs, if it is the last one it made; handed over once."""
    return _SPARE.pop(_build_key(name, kwargs), None)


@lru_cache(maxsize=2)
def meta_model(name: str) -> torch.nn.Module:
    """`name` built once per process (`build_on_meta`), shared by the questions collection asks of a model
    (override axis facts, reparameterizable sites, is it a ViT): planning the full tier must not build every
    architecture once per question. Read it; never change it. Raises what timm raises."""
    return build_on_meta(name)


# What torch says when an operation needs data a meta tensor does not have.
_META_LIMITS = (
    re.compile(r"cannot be called on meta tensors", re.I),
    re.compile(r"Cannot copy out of meta tensor", re.I),
    re.compile(r"with arguments from the 'Meta' backend", re.I),
    re.compile(r"is not on the expected device (meta|cpu)", re.I),
    re.compile(r"meta device context manager", re.I),  # transformers' from_pretrained refuses to run on meta
    re.compile(r"data-dependent|aten::_local_scalar_dense", re.I),
    re.compile(r"on the meta device|meta tensors? (do|does) not", re.I),
)


def meta_limitation(error: BaseException) -> str | None:
    """The reason, when `error` says meta tensors cannot do this (so the cell cannot be checked structurally)."""
    text = f"{type(error).__name__}: {error}"
    for pattern in _META_LIMITS:
        if pattern.search(text):
            return text.splitlines()[0][:300]
    return None
