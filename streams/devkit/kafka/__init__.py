"""The local Kafka broker and cluster, in parts (``streams.devkit.broker`` is their front door)."""
