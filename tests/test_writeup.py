"""Every `>>>` snippet in writeup.md runs here, so the writeup's claims stay true."""

import doctest
from pathlib import Path

WRITEUP = Path(__file__).resolve().parents[1] / "writeup.md"


def test_writeup_snippets_run():
    result = doctest.testfile(
        str(WRITEUP), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, "writeup.md has no >>> snippets"
    assert result.failed == 0
