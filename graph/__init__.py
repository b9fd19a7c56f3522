"""The build graph: workspace scan, import inference, targets, impacted/why."""
