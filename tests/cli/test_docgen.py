"""The man page and bash completion are generated from the parser: nothing the CLI knows is
missing from them, and what they say works (groff renders the page, bash completes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sipguard.cli.docgen import bash_completion, commands, man_page, options
from sipguard.cli.main import COMMAND_MODULES

ROOT = Path(__file__).parents[2]


def test_every_subcommand_and_option_is_in_the_man_page() -> None:
    page = man_page()
    cmds = [c for c in commands() if c.path]
    assert {c.path[0] for c in cmds} == set(COMMAND_MODULES)  # every top-level command
    for cmd in cmds:
        name = "sipguard " + " ".join(cmd.path)
        section = page.split(f'.SS "{name.replace("-", chr(92) + "-")}"\n', 1)  # roff: \-
        assert len(section) == 2, name
        body = section[1].split(".SS ", 1)[0]
        for action in options(cmd.parser):
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    roff = opt.replace("-", "\\-")
                    assert "\\fB" + roff + "\\fR" in body, (name, opt)
    assert '.SS "sipguard config check"' in page and '.SS "sipguard fraud scan"' in page


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
def test_man_page_renders_without_warnings(tmp_path: Path) -> None:
    page = tmp_path / "sipguard.1"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts/build-docs"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    out = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stderr == ""
    text = re.sub(".\x08", "", out.stdout)  # grotty's overstrike bold
    assert "sipguard harden" in text and "EXIT STATUS" in text


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["sipguard", "sc"], ["scan"]),
        (["sipguard", "scan", "--format", ""], ["text", "json", "csv", "html"]),
        (["sipguard", "config", ""], ["check", "-h", "--help"]),
        (["sipguard", "rules", "l"], ["list"]),
        (["sipguard", "audit", "--fail-on", "h"], ["high"]),
    ],
)
def test_bash_completion(tmp_path: Path, words: list[str], expected: list[str]) -> None:
    script = tmp_path / "sipguard.bash"
    script.write_text(bash_completion())
    quoted = " ".join(f"'{w}'" for w in words)
    code = (
        f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        'COMPREPLY=(); _sipguard; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    res = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.split() == expected


def test_top_level_completion_lists_every_command(tmp_path: Path) -> None:
    script = tmp_path / "sipguard.bash"
    script.write_text(bash_completion())
    code = f"source {script}; COMP_WORDS=(sipguard ''); COMP_CWORD=1; _sipguard"
    code += '; echo "${COMPREPLY[@]}"'
    res = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30)
    assert set(COMMAND_MODULES) <= set(res.stdout.split())
