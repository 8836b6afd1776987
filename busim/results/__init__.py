"""What runs found: one model for a run, replications and a comparison, and the documents that hold them."""

from busim.results.document import (
    COMPARISON_SCHEMA,
    REPLICATIONS_SCHEMA,
    RESULT_SCHEMA,
    comparison_document,
    document,
    json_text,
    json_words,
    parse_json,
    read_comparison,
    read_outcome,
)
from busim.results.model import Comparison, MessageCounts, Outcome, Replications, Result, RunMetadata, Source

__all__ = [
    "COMPARISON_SCHEMA",
    "REPLICATIONS_SCHEMA",
    "RESULT_SCHEMA",
    "Comparison",
    "MessageCounts",
    "Outcome",
    "Replications",
    "Result",
    "RunMetadata",
    "Source",
    "comparison_document",
    "document",
    "json_text",
    "json_words",
    "parse_json",
    "read_comparison",
    "read_outcome",
]
