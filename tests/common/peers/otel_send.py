"""Sends audit logs to an OTLP endpoint with the OpenTelemetry Python SDK.

usage: otel_send.py grpc|http ENDPOINT COUNT [MARKER]

Each record i is a WARNING "login failed for u<i>" with attributes user_id, attempt and
audit.index = i, from resource service.name=gateway-test. With MARKER, the body ends with
" <MARKER>" and the attribute "marker" holds it. Exits non-zero if the SDK reports that
an export failed.
"""
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

protocol, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
marker = sys.argv[4] if len(sys.argv) > 4 else None
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    inner = OTLPLogExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    inner = OTLPLogExporter(endpoint=endpoint.rstrip("/") + "/v1/logs")

failures = []


class Checked:
    """Wraps the real exporter to remember whether any export failed."""

    def __init__(self, exporter):
        self.exporter = exporter

    def export(self, batch):
        result = self.exporter.export(batch)
        # The result enum was renamed across SDK versions; its member name was not.
        if getattr(result, "name", str(result)) != "SUCCESS":
            failures.append(result)
        return result

    def shutdown(self):
        return self.exporter.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


provider = LoggerProvider(resource=Resource.create({"service.name": "gateway-test"}))
provider.add_log_record_processor(BatchLogRecordProcessor(Checked(inner), max_export_batch_size=128))
logger = logging.getLogger("audit")
logger.propagate = False
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
logger.setLevel(logging.INFO)
for i in range(count):
    extra = {"user_id": f"u{i}", "attempt": i, "audit.index": i}
    if marker is None:
        logger.warning("login failed for u%d", i, extra=extra)
    else:
        logger.warning("login failed for u%d %s", i, marker, extra={**extra, "marker": marker})
ok = provider.force_flush(30000)
provider.shutdown()
if failures or not ok:
    print(f"export failed: {failures} flushed={ok}", file=sys.stderr)
    sys.exit(1)
