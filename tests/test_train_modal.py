"""The Modal app imports and is wired to the same Trainer; Modal itself cannot be reached from the tests."""

from __future__ import annotations

import inspect
import warnings

import modal


def test_modal_app_and_gpu_function_are_configured():
    from cs336_basics import train_modal

    assert isinstance(train_modal.app, modal.App)
    assert isinstance(train_modal.volume, modal.Volume)
    spec = train_modal.train_remote._spec_  # Modal's record of the decorator's arguments (no network needed)
    assert spec.gpus == train_modal.GPU
    assert list(spec.volumes) == [train_modal.VOLUME_DIR]
    assert spec.image is not None and spec.mounts  # the image and the package source travel with it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer Modal deprecates this listing; it still answers
        assert "main" in train_modal.app.registered_entrypoints
    # The remote function drives the same Trainer as the local CLI.
    source = inspect.getsource(train_modal)
    assert "Trainer.from_run" in source and "Trainer(resolve(" in source
