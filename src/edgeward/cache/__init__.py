"""The response cache: RFC 9111 rules, the in-process tier, fleet invalidation over Redis
Streams, prewarming (docs/cache.md)."""
