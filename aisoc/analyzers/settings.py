"""What a deployment tells the analyzers: dataset profiles, lateness, quiet-key suppression.

One model serves `aisoc serve` (the `analyzers:` block of aisoc.yml) and rule test cases
(`analyzers:` on a case), so a rule is tested against the analyzers exactly as they are built in
production:

    analyzers:
      allowed_lateness_seconds: 120
      learning_seconds: 86400
      request_rate_min_count: 30
      datasets:
        - {dataset: fraud-train, label_field: label, segment_fields: [region], feature_fields: [merchant]}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # imported when used: rule files load these settings, and analyzers import the rule model
    from aisoc.analyzers.base import StateStore
    from aisoc.analyzers.data import DatasetProfile

RowReader = Callable[[str], Iterable[dict[str, Any]]]


class DatasetSettings(BaseModel):
    """A dataset's columns, as the batch checks need them (see `aisoc.analyzers.data.DatasetProfile`)."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, description="aisoc.data.dataset of the batches (the manifest's dataset)")
    label_field: str | None = Field(None, description="label column (label_psi, too_perfect_share)")
    segment_fields: list[str] = Field(default_factory=list, description="columns whose values are segments")
    feature_fields: list[str] = Field(default_factory=list, description="categorical columns for rare_value_burst")
    ignore_fields: list[str] = Field(default_factory=list, description="columns left out of duplicate hashing")
    score_field: str | None = Field(None, description="column with the model's probability of the given label")

    def profile(self) -> DatasetProfile:
        from aisoc.analyzers.data import DatasetProfile

        return DatasetProfile(dataset=self.dataset, label_field=self.label_field,
                              segment_fields=tuple(self.segment_fields), feature_fields=tuple(self.feature_fields),
                              ignore_fields=tuple(self.ignore_fields), score_field=self.score_field)


class AnalyzerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="run the stateful analyzers on received events (signals)")
    datasets: list[DatasetSettings] = Field(default_factory=list, description="profiles of training datasets")
    allowed_lateness_seconds: float = Field(
        0, ge=0, le=86400, description="how long a window waits for late events before it closes")
    learning_seconds: float = Field(
        86400, ge=0, description="aisoc's first day: API keys first seen this soon after the first request are "
        "established (no age), and identities writing to ingestion paths then get no 'no baseline' signal; on the "
        "day aisoc is installed everything would otherwise look new; 0 = off")
    request_rate_min_count: int = Field(
        1, ge=1, description="api_key_request_rate: no signal for a key below this many requests per window")

    def build(self, state: StateStore, row_reader: RowReader | None = None) -> list[Any]:
        """Every analyzer aisoc ships (`default_analyzers`), configured by these settings."""
        from aisoc.analyzers.pipeline import default_analyzers

        return default_analyzers(state, [d.profile() for d in self.datasets], row_reader=row_reader,
                                 allowed_lateness=self.allowed_lateness_seconds, learning_seconds=self.learning_seconds,
                                 request_rate_min_count=self.request_rate_min_count)


def coerce_settings(value: Any) -> Any:
    """`analyzers: true|false` (the older form) -> settings with only `enabled`."""
    return {"enabled": value} if isinstance(value, bool) else value
