"""Pure numpy analysis of run records: latency, consistency, summaries."""

from busim.analysis.summary import ConsumerSummary, PublisherSummary, Summary, summarize

__all__ = ["ConsumerSummary", "PublisherSummary", "Summary", "summarize"]
