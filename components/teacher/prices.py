"""Gemini prices as data: a dated table (``prices.yaml`` by default, or a user's file) and the cost of an answer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from silverset.components.common.errors import SilversetInputError

DEFAULT_PRICE_TABLE = Path(__file__).with_name("prices.yaml")


class ModelPrice(BaseModel):
    """USD per million tokens from ``from`` (UTC date) on; output includes thinking tokens, as Google bills them."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    valid_from: dt.date = Field(alias="from")
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class PriceTable(BaseModel):
    """Every priced model, each with its price periods; ``checked`` is when the list prices were read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checked: dt.date
    sources: tuple[str, ...] = ()
    batch_discount: float = Field(0.5, gt=0, le=1)
    models: dict[str, tuple[ModelPrice, ...]] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _periods_in_order(cls, value: dict[str, tuple[ModelPrice, ...]]) -> dict[str, tuple[ModelPrice, ...]]:
        for model, periods in value.items():
            if not periods:
                raise ValueError(f"model {model!r} has no price")
            starts = [p.valid_from for p in periods]
            if starts != sorted(set(starts)):
                raise ValueError(f"model {model!r}: price periods must have distinct 'from' dates in ascending order")
        return value

    def price(self, model: str, *, on: dt.date | None = None, source: str = "price table") -> ModelPrice:
        """The price of ``model`` on the date ``on`` (default: today, UTC); SilversetInputError if it has none."""
        day = on or dt.datetime.now(dt.timezone.utc).date()
        periods = self.models.get(model)
        if periods is None:
            raise SilversetInputError(
                "Gemini model",
                f"{model!r} has no price in the {source} (priced: {', '.join(sorted(self.models))}); "
                f"copy {DEFAULT_PRICE_TABLE}, add the model's input/output USD per 1M tokens from "
                "https://ai.google.dev/gemini-api/docs/pricing, and pass the file with --price-table",
            )
        current = [p for p in periods if p.valid_from <= day]
        if not current:
            raise SilversetInputError(
                "Gemini model", f"{model!r} has no price in the {source} before {periods[0].valid_from}"
            )
        return current[-1]


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The price table at ``path`` (local path or fsspec URI; None = the shipped table), validated."""
    import fsspec

    where = str(path or DEFAULT_PRICE_TABLE)
    what = f"--price-table '{where}'"
    try:
        with fsspec.open(where, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f.read())
    except FileNotFoundError:
        raise SilversetInputError(what, "file not found") from None
    except yaml.YAMLError as exc:
        raise SilversetInputError(what, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SilversetInputError(what, "must be a YAML mapping with 'checked' and 'models'")
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors())
        raise SilversetInputError(what, problems) from None


def shard_share_usd(manifest: str, shard, budget_usd: float) -> float:
    """One annotate shard's hard stop under a run's USD budget: the budget times the shard's share of the
    manifest's videos, so the shards together never spend more than ``budget_usd``."""
    from silverset.components.common.manifest import read_manifest

    ids = read_manifest(manifest)[0].column("video_id").to_pylist()
    return budget_usd * sum(shard.owns(v) for v in ids) / max(len(ids), 1)
