"""Fixtures shared by several test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine thread hand-offs made
    decoding ~200x slower; modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`, and the
    thread count is restored afterwards for the other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
