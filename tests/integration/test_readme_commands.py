"""The README's first two commands: set up + main job, set up + tests. The main job must be a real
prediction on the bundled default profile (a stable load), not an 'unstable' verdict."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from simulator.cli import simulate_main

README = Path(__file__).resolve().parents[2] / "README.md"


def _first_commands() -> list[str]:
    block = README.read_text(encoding="utf-8").split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_first_command_sets_up_and_runs_simulate_on_the_default_profile(capsys):
    main_job, tests = _first_commands()
    assert 'pip install -e ".[all]"' in main_job and 'pip install -e ".[all]"' in tests
    assert tests.endswith(".venv/bin/pytest")
    args = shlex.split(main_job.split("&&")[-1])
    assert args[0].endswith("simulate") and "--arrival-rate" in args
    assert simulate_main(args[1:]) == 0
    out = capsys.readouterr().out
    assert "unstable" not in out.lower()
    assert re.search(r"^p99\s+\d", out, re.MULTILINE), out
