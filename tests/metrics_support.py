"""The node's ``/metrics`` text read in tests with prometheus_client's own parser (the library the
node writes it with), rather than by matching lines by hand in each test file."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric(text: str, name: str, *, default: float | None = None, **labels: str) -> float:
    """The sum of the samples called ``name`` (``..._total`` for a counter) whose labels include
    ``labels``; ``default`` when there is none (a counter no request has touched yet), else an
    ``AssertionError``."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    if not values:
        if default is None:
            raise AssertionError(f"no {name} {labels or ''} in /metrics")
        return default
    return sum(values)
