"""Per-lead routing: eligible resellers, a fair choice among them, the recorded decision."""
