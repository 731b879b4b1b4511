"""The data plane: the fold loop on confluent-kafka and rocksdict (docs/engine.md)."""
