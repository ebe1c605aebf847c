"""The man page and the bash completion, both generated from the argparse parser.

One walk over the parser (`commands`) feeds both, so every subcommand and option that `--help`
knows is in the page and completes in bash; nothing is written by hand twice. Built by
`scripts/build-docs DIR` (and by `packaging/build-deb`), not committed: the parser is the source.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass

from sipguard import __version__
from sipguard.cli.main import build_parser


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # () for `sipguard` itself, ("config", "check") for `config check`
    parser: argparse.ArgumentParser
    help: str
    subcommands: tuple[str, ...]


def commands(parser: argparse.ArgumentParser | None = None) -> Iterator[Command]:
    """Every command of the CLI, parents before their subcommands, in the parser's order."""
    root = parser or build_parser()
    stack: list[tuple[tuple[str, ...], argparse.ArgumentParser, str]] = [
        ((), root, root.description or "")
    ]
    while stack:
        path, p, text = stack.pop(0)
        subs: list[tuple[tuple[str, ...], argparse.ArgumentParser, str]] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help or "" for a in action._choices_actions}
                for name, child in action.choices.items():
                    subs.append(((*path, name), child, helps.get(name, "")))
        yield Command(path, p, text, tuple(s[0][-1] for s in subs))
        stack[0:0] = subs


def options(p: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in p._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            yield action


def positionals(p: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in p._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            yield action


def _roff(text: str) -> str:
    """Text safe in a roff line: backslashes and hyphens escaped, no line starting with . or '."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", out, flags=re.MULTILINE)


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        params = {**vars(action), "prog": "sipguard"}
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, params["choices"]))
        try:
            text = text % params
        except (KeyError, TypeError, ValueError):
            pass
    return text


def _option_head(action: argparse.Action) -> str:
    names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices is not None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return f"{names} \\fI{_roff(value)}\\fR"


def man_page(parser: argparse.ArgumentParser | None = None) -> str:
    root = parser or build_parser()
    lines = [
        '.TH SIPGUARD 1 "" "sipguard ' + __version__ + '" "User Commands"',
        ".SH NAME",
        "sipguard \\- " + _roff(root.description or ""),
        ".SH SYNOPSIS",
        ".B sipguard",
        "[\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        "One package, one CLI, one daemon: detection in Asterisk logs, AMI and the CDR, bans in",
        "the kernel (nftables), an NFQUEUE sensor, an audit of the Asterisk configuration and",
        "toll-fraud detection. Every command below also answers \\fB\\-h\\fR.",
        ".SH COMMANDS",
    ]
    for cmd in commands(root):
        if not cmd.path:
            continue
        name = "sipguard " + " ".join(cmd.path)
        lines.append(f'.SS "{_roff(name)}"')
        usage = cmd.parser.format_usage().removeprefix("usage: ").strip()
        lines += [".nf", _roff(" ".join(usage.split())), ".fi"]
        text = cmd.parser.description or cmd.help
        if text:
            lines += [".PP", _roff(text)]
        if cmd.subcommands:
            lines += [".PP", "Subcommands: " + _roff(", ".join(cmd.subcommands)) + "."]
        for action in positionals(cmd.parser):
            label = action.metavar if isinstance(action.metavar, str) else action.dest
            lines += [".TP", f"\\fI{_roff(label)}\\fR"]
            lines.append(_roff(_help_text(action)) or "argument")
        for action in options(cmd.parser):
            if action.option_strings == ["-h", "--help"]:
                continue
            lines += [".TP", _option_head(action), _roff(_help_text(action)) or "(no description)"]
    lines += [
        ".SH FILES",
        ".TP",
        "/etc/sipguard/sipguard.toml, /etc/sipguard/conf.d/*.toml",
        "The configuration, merged in name order; \\fB\\-\\-config\\fR takes the file or the",
        "directory.",
        ".TP",
        "/var/lib/sipguard",
        "State: the SQLite database of decisions and evidence (mode 0750, database 0600).",
        ".SH EXIT STATUS",
        "0 on success (for \\fBscan\\fR: no attack found), 1 when \\fBscan\\fR finds an attack or",
        "\\fBaudit \\-\\-fail\\-on\\fR a finding, 2 on an error (printed as one line).",
        ".SH SEE ALSO",
        "\\fBnft\\fR(8), \\fBasterisk\\fR(8), \\fBsystemctl\\fR(1)",
        "",
    ]
    return "\n".join(lines)


def _words(cmd: Command) -> list[str]:
    words = list(cmd.subcommands)
    for action in options(cmd.parser):
        words.extend(action.option_strings)
    return words


def bash_completion(parser: argparse.ArgumentParser | None = None) -> str:
    cmds = list(commands(parser))
    paths = "|".join(f'"{" ".join(c.path)}"' for c in cmds if c.path)
    value_cases: list[str] = []
    word_cases: list[str] = []
    for cmd in cmds:
        key = " ".join(cmd.path)
        for action in options(cmd.parser):
            if action.nargs == 0:
                continue
            pattern = "|".join(f'"{key}|{o}"' for o in action.option_strings)
            if action.choices is not None:
                choices = " ".join(str(c) for c in action.choices)
                value_cases.append(
                    f'        {pattern}) COMPREPLY=($(compgen -W "{choices}" -- "$cur")); return ;;'
                )
            else:
                value_cases.append(
                    f'        {pattern}) COMPREPLY=($(compgen -f -- "$cur")); return ;;'
                )
        word_cases.append(f'        "{key}") words="{" ".join(_words(cmd))}" ;;')
    return "\n".join(
        [
            "# bash completion for sipguard, generated from its argparse parser by",
            "# scripts/build-docs (sipguard " + __version__ + "); do not edit",
            "_sipguard() {",
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
            '    local path="" next w i words=""',
            "    for ((i = 1; i < COMP_CWORD; i++)); do",
            "        w=${COMP_WORDS[i]}",
            '        next="${path:+$path }$w"',
            '        case "$next" in',
            f'            {paths}) path="$next" ;;',
            "        esac",
            "    done",
            '    case "$path|$prev" in',
            *value_cases,
            "    esac",
            '    case "$path" in',
            *word_cases,
            "    esac",
            "    if [[ $cur == -* || -n $words && $words != -* ]]; then",
            '        COMPREPLY=($(compgen -W "$words" -- "$cur"))',
            "    fi",
            "    if [[ ${#COMPREPLY[@]} -eq 0 && $cur != -* ]]; then",
            '        COMPREPLY=($(compgen -f -- "$cur"))',
            "    fi",
            "}",
            "complete -o filenames -F _sipguard sipguard",
            "",
        ]
    )
