"""service tests: one or a few real services (gRPC servers, Triton, Redis, promtool), in process or as processes."""
