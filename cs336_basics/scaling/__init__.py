"""Scaling studies: expression-valued hyperparameters, sweeps over configs, and compute-optimal fits.

expressions.py (the safe evaluator and its config hook), sweep.py (grid runner), fit.py (IsoFLOP and parametric
fits, plots). Kept free of heavy imports so that the config can use the evaluator without loading torch.
"""
