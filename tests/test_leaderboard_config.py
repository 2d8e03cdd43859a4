"""The leaderboard submission config (writeup section 14) resolves, and its training FLOPs fit the 1.5 H100-hour
budget at a plausible utilization, by the accounting module's count and the H100 datasheet figure."""

from pathlib import Path

from cs336_basics.accounting import training_flops_per_token
from cs336_basics.mfu import table_peak
from cs336_basics.training.config import resolve

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "leaderboard_owt.json"


def test_leaderboard_config_fits_the_budget():
    config = resolve("tinystories", config_file=CONFIG)
    assert config.data.train_path.endswith("owt_train.txt") and config.run.dtype == "bfloat16"
    tokens = config.total_steps * config.tokens_per_step
    flops = tokens * training_flops_per_token(config.model)
    hours_at_35_percent = flops / (table_peak("NVIDIA H100 80GB HBM3", "bfloat16") * 0.35) / 3600
    assert 0.7 < hours_at_35_percent < 1.0  # leaves room for evaluation, checkpoints and a lower MFU
