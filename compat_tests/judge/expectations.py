"""What each loader documents, per release: the table the oracle judges against where releases differ.

A loader that departs from its own documented behaviour is the failure; the documented behaviour itself is
not. So where a loader's documented result changed between releases (transformers 5 loads a half-precision
checkpoint in its own dtype, 4.x in float32), the judge asks this table which result the installed release
promises, and every row says where that promise is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.versions import installed


@dataclass(frozen=True)
class Expectation:
    fact: str  # what it answers, "<loader>.<question>"
    package: str  # whose release decides it
    releases: str  # PEP 440 specifier of the releases that document `value`
    value: str
    source: str  # the doc or source line the promise is written in


# The dtype a loader gives a model whose checkpoint is float16/bfloat16, and the dtype it runs a float32 input in.
EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("pretrained_file.dtype", "timm", ">=0.9", "float32",
                "timm _builder.load_pretrained: the model is built in float32, then Module.load_state_dict copies "
                "the checkpoint into its parameters (copy_ casts)"),
    Expectation("timm_hub.dtype", "timm", ">=0.9", "float32",
                "timm create_model('local-dir:...', pretrained=True) loads through load_pretrained, as above"),
    Expectation("hf_auto.dtype", "transformers", "<5", "float32",
                "transformers 4.x PreTrainedModel.from_pretrained docstring, torch_dtype: 'If not specified the "
                "model will get loaded in torch.float (fp32)'"),
    Expectation("hf_auto.dtype", "transformers", ">=5", "checkpoint",
                "transformers 5.x modeling_utils.py from_pretrained: dtype 'defaults to \"auto\"': the config's "
                "dtype, else the dtype of the checkpoint's first floating weight; the model is built with it as "
                "torch's default dtype (get_init_context: local_torch_dtype)"),
    Expectation("hf_auto.input", "transformers", ">=4.48", "model dtype",
                "transformers models/timm_wrapper/modeling_timm_wrapper.py, TimmWrapperModel.forward and "
                "TimmWrapperForImageClassification.forward: pixel_values = pixel_values.to(self.device, self.dtype) "
                "(4.48.3, 4.57, 5.5+; TimmWrapperModel in 5.0-5.4 dropped the dtype: a bug, in the baseline)"),
    Expectation("pretrained_file.input", "timm", ">=0.9", "as given", "timm models take the input as given"),
    Expectation("timm_hub.input", "timm", ">=0.9", "as given", "timm models take the input as given"),
)


class UndocumentedRelease(LookupError):
    """No row of the table covers the installed release: the oracle cannot say what is right."""


def expected(fact: str, versions: dict[str, str | None] | None = None) -> Expectation:
    """The row for `fact` that covers the installed release (or `versions`' release) of its package."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    versions = installed() if versions is None else versions
    rows = [row for row in EXPECTATIONS if row.fact == fact]
    for row in rows:
        found = versions.get(row.package)
        if found and Version(found.split("+")[0]) in SpecifierSet(row.releases, prereleases=True):
            return row
    raise UndocumentedRelease(f"no expectation for {fact} under {', '.join(f'{r.package} {r.releases}' for r in rows)}"
                              f" covers {versions}: add the row (with its source) to judge/expectations.py")
