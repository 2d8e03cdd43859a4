"""Placeholder until implemented."""
get_batch = None
