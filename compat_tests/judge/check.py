"""A `Check`: one way of judging a completed load, with what reproduces it outside the suite.

Paths whose correct result is the source itself share `NUMERIC`; paths whose correct result is a documented
transform of the source (resampled embeddings, fused branches, an upcast checkpoint) share the Check of
that kind of judging, so a loading path names how it is judged in one field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.evidence import Evidence
from ..source.models import SourceModel
from .oracle import judge

Judge = Callable[[SourceModel, dict[str, Any]], Evidence]


@dataclass(frozen=True)
class Check:
    # judge(source, loaded) -> Evidence, where `loaded` is what the path's roundtrip returned.
    judge: Judge
    # Standalone functions the repro script embeds for this kind of judging (the roundtrip's own come apart).
    helpers: tuple[Any, ...] = ()
    # Replaces the generic repro template (a str.format template over spec, input_size, batch, roundtrip),
    # for cells whose expectation is not "the source, bit for bit".
    repro_prepare: str | None = None
    # judge(source, loaded) on the meta device (None: judge_structure, the saved model's keys, shapes and dtypes),
    # for a path whose correct result is not the source model.
    structure: Judge | None = None
    # Replaces the whole repro body (prepare and check), numeric or structural alike: a cell whose file comes from
    # elsewhere (an older release) is reproduced the way that file is really made.
    repro: str | None = None

    def with_judge(self, judge: Judge, *helpers: Any, repro_prepare: str | None = None) -> Check:
        """This kind of judging, adapted by a path (a layout converted first): its judge, more helpers."""
        return Check(judge, (*helpers, *self.helpers), repro_prepare or self.repro_prepare, self.structure, self.repro)


NUMERIC = Check(judge)
