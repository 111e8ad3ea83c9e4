"""Towers, the retrieval model and its serializable layers."""
