"""What users call: the SDK, the CLI, cluster access and the timeline."""
