"""Pure folds of the session's events: no Kafka, no faust, no RocksDB, no clock (docs/engine.md).

Its hot modules run compiled when ``make compile`` built them (``projections.native``)."""

from projections.native import search_path

__path__ = search_path(__path__)
