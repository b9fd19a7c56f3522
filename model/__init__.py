"""The speculation model: telemetry, features, training, ranking, evaluation (no processes)."""
