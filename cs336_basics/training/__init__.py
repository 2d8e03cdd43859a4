"""The training stack: one config tree, data, the optimizer, checkpoints, and the Trainer that ties them together.

    config.py       dataclasses (model, data, optimizer, schedule, run), presets, command-line overrides
    config_help.py  one help line per config field (`train --help`)
    corpus.py       a run's text -> train/valid split -> tokenizer -> token files (cached)
    data.py         memory-mapped token files, random batches, fixed evaluation windows
    optimizer.py    SGD and AdamW, the cosine schedule with warmup (clipping: cs336_basics/nn_utils.py)
    checkpoint.py   save/load (model, optimizer, config, RNG, step) with weights_only, atomic writes, pruning
    trainer.py      Trainer: train(), evaluate(), save()/resume()

Nothing is imported here, so `train --help` (which reads config.py) loads no torch.
"""
