"""Sends audit events to Vellum with the OpenTelemetry Python SDK, as a gateway would.

pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc
python examples/otlp_client.py [http://127.0.0.1:4317]
"""
import logging
import sys

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4317"
provider = LoggerProvider(resource=Resource.create({"service.name": "ai-gateway"}))
provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
audit = logging.getLogger("audit")
audit.addHandler(LoggingHandler(logger_provider=provider))
audit.setLevel(logging.INFO)

audit.warning("login failed", extra={"action": "login.failed", "user_id": "alice", "client.address": "203.0.113.9"})
audit.info("api key created", extra={"action": "api_key.created", "user_id": "bob", "key_id": "key_123"})
audit.info("model invoked", extra={"action": "model.invoke", "user_id": "carol", "model": "gpt-4o-mini", "tokens": 812})

# Vellum answers only once the records are durable; flushing waits for those answers.
provider.force_flush()
provider.shutdown()
