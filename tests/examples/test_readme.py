"""The README's tour is code a user copies: it must run as written (with fewer epochs)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_tour_runs():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "range(10)" in code
    import ember.distributed as dist

    scope = {}
    try:
        exec(compile(code.replace("range(10)", "range(1)"), "README tour", "exec"), scope)
    finally:
        dist.destroy_process_group()
    assert scope["loss"].item() < 2.4  # below chance (ln 10) after one epoch
