"""The OTLP intake: gRPC (4317) and HTTP (4318) receivers and the span pipeline."""
