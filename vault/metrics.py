"""Prometheus metrics, one registry per node (several nodes can run in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Request counts and latencies by route; stored bytes and chunk count."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vault_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vault_http_request_duration_seconds",
            "Time from request start to response, by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.stored_bytes = Gauge("vault_chunk_store_bytes", "Bytes held by the chunk store.", registry=self.registry)
        self.stored_chunks = Gauge(
            "vault_chunk_store_chunks", "Chunks held by the chunk store.", registry=self.registry
        )
        self.corrupt_chunks = Counter(
            "vault_chunk_corrupt_reads",
            "Chunk reads that failed verification (bit rot; the bytes were never served).",
            registry=self.registry,
        )
        self.repaired_chunks = Counter(
            "vault_chunk_repairs",
            "Corrupt stored chunks replaced by a good copy an upload brought.",
            registry=self.registry,
        )
        self.push_deliveries = Counter(
            "vault_push_deliveries",
            "Push sends by provider and outcome (delivered, retry, gone, failed, expired, skipped).",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "vault_upload_received_bytes", "Upload bytes received and verified.", registry=self.registry
        )
        self.body_bytes = Counter(
            "vault_request_body_bytes",
            "Request body bytes read by the streamed routes (chunk PUT, tus PATCH, one-request upload).",
            registry=self.registry,
        )
        # The same, readable without going through the registry (the heap trimmer's "quiet?").
        self.body_bytes_seen = 0
        self.heap_checks = Counter(
            "vault_memory_trim_checks",
            "Looks at the heap for freed memory to give back to the system (vault serve, glibc).",
            registry=self.registry,
        )
        self.heap_trims = Counter(
            "vault_memory_trims", "Heap trims that gave freed memory back to the system.", registry=self.registry
        )

    def body_received(self, size: int) -> None:
        self.body_bytes.inc(size)
        self.body_bytes_seen += size

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
