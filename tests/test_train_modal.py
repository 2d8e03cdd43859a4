"""The Modal app imports and is wired to the same Trainer; Modal itself cannot be reached from the tests."""

from __future__ import annotations

import inspect
import warnings

import modal
import pytest


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


def test_multi_gpu_option_builds_a_torchrun_launch(tmp_path):
    """--gpus N asks Modal for N GPUs and runs the train CLI under torchrun; checked by building, not running:
    torchrun's own parser and ours accept the command, and Modal accepts the GPU request."""
    from torch.distributed.run import get_args_parser

    from cs336_basics import train_modal
    from cs336_basics.train import build_parser

    assert train_modal.gpu_request(1) == train_modal.GPU and train_modal.gpu_request(4) == f"{train_modal.GPU}:4"
    assert train_modal.remote_function(1) is train_modal.train_remote
    assert isinstance(train_modal.remote_function(4), modal.Function)
    for resume in ("", "runs/NAME"):
        command = train_modal.torchrun_command(4, "tinystories", "/tmp/overrides.json", resume)
        assert command[0] == "torchrun"
        launch = get_args_parser().parse_args(command[1:])
        assert (launch.nproc_per_node, launch.standalone, launch.module) == ("4", True, True)
        assert launch.training_script == "cs336_basics.train"
        args = build_parser().parse_args(launch.training_script_args)
        assert args.config == "/tmp/overrides.json" and (args.resume or "") == resume
    with pytest.raises(ValueError, match="--gpus"):
        train_modal.gpu_request(0)
