"""The shared remote coordinator: tenants, auth, Bazel-HTTP-compatible cache, telemetry, models."""
