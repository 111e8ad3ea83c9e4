"""Models: serializable layers, the query and candidate towers, the TFRS retrieval model,
the factory that builds them from a configuration, and batched embedding."""
