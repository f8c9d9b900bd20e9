"""The review-decision record: a person's verdict on one dataset record, applied when publishing.

One job: define ``ReviewDecision`` (accept, edit with new text, reject; who decided and when; the
key of the record it applies to). The annotation stage produces these from review projects (by
hand until then); ``pipelines.publish`` applies them: a rejected record is left out, an edited
one is replaced by a copy with the new text, an accepted one is published as it is. Each
outcome is counted in the published version's ``stats.json``.

Import it through ``schemas.records`` (registry name ``"review_decision"``).
"""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, Optional

from pydantic import field_validator, model_validator

from schemas.record_types import Key, Record, Text, rule_error

__all__ = ["ReviewDecision"]


class ReviewDecision(Record):
    """One reviewer's decision about one dataset record. ``key`` is the decision's own id."""

    RECORD_NAME: ClassVar[str] = "review_decision"
    dataset: Text
    """Dataset of the record decided on (``"VideoPoint"``, ``"CapQA"``, ...)."""
    record_key: Key
    """``key`` of the record the decision applies to."""
    decision: Literal["accept", "edit", "reject"]
    edits: Optional[dict[str, Text]] = None
    """For ``edit``: top-level text fields of the record and their new text, e.g.
    ``{"answer": "three"}``; None for ``accept`` and ``reject``."""
    reviewer: Text
    """Who decided (a Label Studio user name or e-mail)."""
    decided_at: Text
    """When, as ISO 8601 UTC text, e.g. ``2026-11-27T10:15:00Z``."""
    note: Optional[str] = None
    """The reviewer's reason, free text."""

    @field_validator("decided_at")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise rule_error("", f"must be an ISO 8601 time such as 2026-11-27T10:15:00Z, got {value!r}",
                             value) from None
        if parsed.tzinfo is None:
            raise rule_error("", f"must name its time zone (end in Z for UTC), got {value!r}", value)
        return value

    @model_validator(mode="after")
    def _edits_match_decision(self) -> ReviewDecision:
        if (self.decision == "edit") != bool(self.edits):
            raise rule_error("edits", "must hold at least one field exactly when decision is 'edit' "
                             f"(decision {self.decision!r})", self.edits)
        for name in self.edits or {}:
            if name in ("key", "schema_version"):
                raise rule_error(f"edits.{name}", "must name a text field of the record, not its identity",
                                 name)
        return self
