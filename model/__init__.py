"""The speculation model: telemetry, features, training, ranking, evaluation (pure: no processes)."""
