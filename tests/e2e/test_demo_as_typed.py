"""The commands the demo banner, the README and docs/DEMO.md give, run as typed in a shell from
the folder a user cloned into (``.venv/bin/airgate`` there), against a running demo."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import AIRGATE
from tests.e2e.test_demo import _sandbox_env, _wait_for

ROOT = Path(__file__).resolve().parents[2]
BANNER_END = "Ctrl-C stops the demo"
DOC_SANDBOX = "http://127.0.0.1:8090"  # the documented default; the test's sandbox has a free port


def _banner(process: subprocess.Popen[str], deadline_s: float = 60) -> list[str]:
    """The banner's lines, read as the demo prints them: from the pipe itself, since ``select``
    cannot see lines a buffered ``readline`` has already taken in with the one it returned."""
    assert process.stdout is not None
    pipe = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + deadline_s
    while BANNER_END.encode() not in seen:
        assert process.poll() is None and time.monotonic() < deadline, seen.decode(errors="replace")
        if select.select([pipe], [], [], 0.5)[0]:
            seen += os.read(pipe, 65536)
    return seen.decode("utf-8").splitlines(keepends=True)


def test_the_banner_is_read_whole_when_it_arrives_in_one_write() -> None:
    """A loaded machine reads the banner late, several lines in one read (CI, 2026-12-03)."""
    printer = f"import sys, time; sys.stdout.write('seeding\\nTry  x\\n{BANNER_END}\\n'); "
    printer += "sys.stdout.flush(); time.sleep(30)"
    process = subprocess.Popen([sys.executable, "-c", printer], stdout=subprocess.PIPE, text=True)
    try:
        assert _banner(process, deadline_s=10)[-1] == f"{BANNER_END}\n"
    finally:
        process.kill()
        process.communicate()


def _commands_in_banner(lines: list[str]) -> list[str]:
    """The lines from "Try" on that start with a command (the label column is 10 wide)."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Try"))
    found = [line[10:].strip() for line in lines[start:]]
    return [c for c in found if c.startswith((".venv/bin/airgate", "curl"))]


def _commands_in_doc(path: Path, after: str) -> list[str]:
    """The ``sh`` block that follows ``after`` in a Markdown file, one command a line."""
    text = path.read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text[text.index(after) :], re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """A user's folder: ``.venv/bin/airgate`` is this test run's own command."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "airgate").symlink_to(AIRGATE)
    yield tmp_path


def _run_as_typed(command: str, *, env: dict[str, str], cwd: Path, sandbox: str) -> None:
    typed = command.replace(DOC_SANDBOX, sandbox)
    # stdin: the PIN a prompt asks for (`topup send`), then the end of input (`phone` quits).
    done = subprocess.run(
        ["bash", "-c", typed],
        input="1234\n",
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (typed, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_the_demos_commands_work_as_typed(cli_env: dict[str, str], clone: Path) -> None:
    sandbox = _sandbox_env(cli_env)
    # The banner and both docs send the same top-up: the repeat guard would refuse the second.
    cli_env["AIRGATE_TOPUP_REPEAT_WINDOW_S"] = "0"
    env = {**cli_env, "PYTHONUNBUFFERED": "1"}  # the banner as it is printed, through a pipe
    process = subprocess.Popen(
        [".venv/bin/airgate", "demo", "--retailers", "2"],
        env=env,
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = _commands_in_banner(_banner(process))
        _wait_for(f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}/health", process)
        readme = _commands_in_doc(ROOT / "README.md", "In another terminal")
        demo_md = _commands_in_doc(ROOT / "docs" / "DEMO.md", "From a second terminal")
        phone_md = _commands_in_doc(ROOT / "docs" / "DEMO.md", "## Dialling in")
        assert len(banner) >= 4 and len(readme) >= 6 and demo_md and phone_md
        for command in banner + readme + demo_md + phone_md:
            assert command.startswith((".venv/bin/airgate ", "curl ")), command
            _run_as_typed(command, env=cli_env, cwd=clone, sandbox=sandbox)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _stop_quietly(process)
    assert not (clone / "var" / "redis" / "redis.pid").exists()


def _stop_quietly(process: subprocess.Popen[str]) -> None:
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == 0


def test_the_docs_link_only_to_files_a_clone_has() -> None:
    """README.md and docs/*.md: every relative link and every path in backquotes that names a
    Markdown file is inside the repository (no `../shared/…`)."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        targets = re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text)
        targets += re.findall(r"`([\w./-]+\.md)`", text)
        for target in targets:
            if target.startswith("http"):
                continue
            inside = [
                found
                for found in ((doc.parent / target).resolve(), (ROOT / target).resolve())
                if ROOT in found.parents and found.is_file()
            ]
            assert inside, f"{doc.name} points at {target}, which a clone does not have"
