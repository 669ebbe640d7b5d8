"""The contract: Avro schemas, their codec, the topic catalog and the JSON models."""
