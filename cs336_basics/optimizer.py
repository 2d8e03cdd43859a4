"""Placeholder until implemented."""
AdamW = get_lr_cosine_schedule = None
