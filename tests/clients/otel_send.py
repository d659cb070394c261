"""Sends invoke_agent spans to a swarm-metrics server with the
OpenTelemetry Python SDK and its OTLP/HTTP protobuf exporter (gzipped),
then prints, one JSON object per line, the task each span must become
under the mapping README.md documents ("OpenTelemetry spans"), worked out
here from what was sent.

Usage: otel_send.py ENDPOINT COUNT [TOKEN]
"""

import json
import random
import sys
import time

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

endpoint, count = sys.argv[1], int(sys.argv[2])
headers = {"Authorization": "Bearer " + sys.argv[3]} if len(sys.argv) > 3 else None

resource = Resource.create({"service.name": "otel-service", "swarm.id": "otel-swarm"})
provider = TracerProvider(resource=resource)
exporter = OTLPSpanExporter(
    endpoint=endpoint + "/v1/traces", compression=Compression.Gzip, headers=headers
)
provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
tracer = provider.get_tracer("swarm-metrics-test")

rng = random.Random(20261207)
now = time.time_ns()
expected = []
for i in range(count):
    start = now - (count - i) * 1_000_000_000 - rng.randrange(10**9)
    end = start + rng.randrange(1, 20_000) * 1_000_000 + rng.randrange(1_000_000)
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "model-x"}
    style = i % 4
    if style == 0:
        attributes["gen_ai.agent.id"] = "agent-%d" % (i % 5)
        attributes["gen_ai.agent.name"] = "named-%d" % (i % 5)
    elif style in (1, 2):
        attributes["gen_ai.agent.name"] = "agent-%d" % (i % 5)
    # style 3: no agent attribute; the resource's service.name names it.
    input_tokens, output_tokens = rng.randrange(5000), rng.randrange(2000)
    attributes["gen_ai.usage.input_tokens"] = input_tokens
    attributes["gen_ai.usage.output_tokens"] = output_tokens
    if i % 7 == 0:
        attributes["swarm.id"] = "span-swarm"
    if i % 11 == 0:
        attributes["swarm.files_changed"] = 3
    outcome = rng.random()
    if outcome < 0.10:
        attributes["error.type"] = "timeout"
        status, result = Status(StatusCode.ERROR, "timed out"), "timeout"
    elif outcome < 0.15:
        attributes["error.type"] = "cancelled"
        status, result = Status(StatusCode.ERROR), "cancelled"
    elif outcome < 0.30:
        attributes["error.type"] = "ToolError"
        status, result = Status(StatusCode.ERROR), "failure"
    elif outcome < 0.40:
        status, result = Status(StatusCode.OK), "success"
    else:
        status, result = None, "success"
    span = tracer.start_span(
        "invoke_agent", kind=SpanKind.INTERNAL, start_time=start, attributes=attributes
    )
    if status is not None:
        span.set_status(status)
    context = span.get_span_context()
    span.end(end_time=end)
    agent = attributes.get("gen_ai.agent.id") or attributes.get("gen_ai.agent.name") or "otel-service"
    expected.append(
        {
            "task_id": "%032x:%016x" % (context.trace_id, context.span_id),
            "agent_id": agent,
            "swarm_id": attributes.get("swarm.id", "otel-swarm"),
            "duration_ms": (end - start) // 1_000_000,
            "result": result,
            "tokens_used": input_tokens + output_tokens,
            "files_changed": attributes.get("swarm.files_changed", 0),
            "timestamp_us": end // 1000,
            "trace_id": "%032x" % context.trace_id,
            "span_id": "%016x" % context.span_id,
        }
    )
    # A span that is not a task: ignored by the server.
    if i % 10 == 0:
        tracer.start_span("chat", attributes={"gen_ai.operation.name": "chat"}).end()

if not provider.force_flush(60_000):
    sys.exit("the spans were not all exported")
provider.shutdown()
for task in expected:
    print(json.dumps(task))
