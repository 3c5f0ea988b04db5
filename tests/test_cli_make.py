"""What `make serve` and `make test` install into a fresh checkout (read from `make -n`, nothing runs).

A Raspberry Pi pays for every package: serving installs the node alone, testing adds `.[dev]` and
the client (`client/`, whose tests run too).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def planned(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run in a checkout whose venv does not exist yet."""
    # Run from `make test`, the outer make's flags and variables must not leak into this one.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [c for c in commands if " -m pip install " in c and "--upgrade" not in c]


def test_serve_on_a_fresh_checkout_installs_only_the_node(tmp_path: Path) -> None:
    commands = planned("serve", tmp_path / "venv")
    assert any(c.endswith(f"-m venv {tmp_path / 'venv'}") for c in commands)
    assert installs(commands) == [f"{tmp_path / 'venv'}/bin/python -m pip install --quiet -c constraints.txt -e ."]
    assert commands[-1].split() == [f"{tmp_path / 'venv'}/bin/vault", "serve"]
    assert installs(planned("install", tmp_path / "venv")) == installs(commands)


def test_test_on_a_fresh_checkout_installs_the_dev_tools(tmp_path: Path) -> None:
    commands = planned("test", tmp_path / "venv")
    assert installs(commands) == [
        f"{tmp_path / 'venv'}/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e client"
    ]
    # The whole suite, each test once: the reliability checks and everything else.
    pytest = f"{tmp_path / 'venv'}/bin/pytest"
    runs = [c.strip() for c in commands if c.strip().startswith(pytest)]
    assert [shlex.split(r)[1:3] for r in runs] == [["-m", "not reliability"], ["-m", "reliability"]]
