"""The service's Prometheus metrics (prometheus-client), in a registry of its own per app.

    shotlab_requests_total{endpoint, code}     every answered request
    shotlab_request_seconds{endpoint}          server-side latency (histogram)
    shotlab_batch_size                         items per model run (histogram): > 1 is batching
    shotlab_queue_depth                        items waiting for the model
    shotlab_decisions_total, shotlab_flagged_total, shotlab_needs_review_total
    shotlab_cache_hits_total                   answered from the decision store
    shotlab_rejections_total{reason}           unauthorized, too_large, media_type, bad_input,
                                               queue_full, timeout, store_down,
                                               client_disconnected (code 499: the client hung
                                               up before its body was all sent)
    shotlab_explanations_pending               tier-1 jobs waiting in the store
    shotlab_explanations_failed_total          tier-1 jobs this process failed (each also a
                                               WARNING line in the log with its reason)
    shotlab_reviews_total{outcome}             human verdicts stored: upheld (the model's labels)
                                               or overturned (serve/review.py)
    shotlab_decodes_total                      bodies whose decoding started
    shotlab_decodes_in_flight                  bodies being decoded now (at most --decode-slots)
    shotlab_decodes_in_flight_peak             the most decoded at once since the start
    shotlab_clip_frames_decoded_total          frames the clip decoder produced (deadline: fewer)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets from 1 ms to 10 s: a batch-1 CPU run is a few ms, a full queue seconds.
LATENCY_BUCKETS = (.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self, queue_depth, explanations_pending, decodes=None):
        """`decodes`: the service's serve.decoding.DecodePool (its in_flight and peak)."""
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("shotlab_requests", "Answered requests", ["endpoint", "code"],
                                registry=registry)
        self.latency = Histogram("shotlab_request_seconds", "Server-side request latency",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("shotlab_batch_size",
                                    "Items per model run (an image, comment, post or whole clip)",
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.decisions = Counter("shotlab_decisions", "Decisions made", registry=registry)
        self.flagged = Counter("shotlab_flagged", "Decisions with a flagged category",
                               registry=registry)
        self.review = Counter("shotlab_needs_review", "Decisions sent to human review",
                              registry=registry)
        self.cache_hits = Counter("shotlab_cache_hits", "Answered from the decision store",
                                  registry=registry)
        self.rejections = Counter("shotlab_rejections", "Refused requests", ["reason"],
                                  registry=registry)
        self.explanations_failed = Counter("shotlab_explanations_failed",
                                           "Tier-1 explanations that failed (see the log)",
                                           registry=registry)
        Gauge("shotlab_queue_depth", "Items waiting for the model",
              registry=registry).set_function(queue_depth)
        Gauge("shotlab_explanations_pending", "Tier-1 explanations waiting in the store",
              registry=registry).set_function(explanations_pending)
        self.reviews = Counter("shotlab_reviews", "Human verdicts stored", ["outcome"],
                               registry=registry)
        self.decodes = Counter("shotlab_decodes", "Bodies whose decoding started",
                               registry=registry)
        self.frames_decoded = Counter("shotlab_clip_frames_decoded",
                                      "Frames the clip decoder produced", registry=registry)
        if decodes is not None:
            Gauge("shotlab_decodes_in_flight", "Bodies being decoded now",
                  registry=registry).set_function(lambda: decodes.in_flight)
            Gauge("shotlab_decodes_in_flight_peak", "Most bodies decoded at once since the start",
                  registry=registry).set_function(lambda: decodes.peak)

    def count_decisions(self, records) -> None:
        self.decisions.inc(len(records))
        self.flagged.inc(sum(bool(r["flagged"]) for r in records))
        self.review.inc(sum(bool(r["needs_review"]) for r in records))

    def text(self) -> bytes:
        return generate_latest(self.registry)
