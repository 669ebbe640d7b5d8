"""The hub's edges: sources that publish partner events (API, synthetic) and sinks."""
