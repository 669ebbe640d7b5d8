"""The shared kernel: configuration, logs, metrics, Kafka, the processor loop, storage."""
