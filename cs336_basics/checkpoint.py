"""Placeholder until implemented."""
save_checkpoint = load_checkpoint = None
