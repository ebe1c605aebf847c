"""`scan`'s text report: rich tables as wide as the terminal, a block per attacker below NARROW.

Over SSH a terminal is often 80 columns: eight table columns squeezed into 80 cut every cell, so
narrow terminals get one block per attacker whose lines wrap instead. Pipes and files get 160
columns (whole lines for grep) unless COLUMNS says otherwise. Attacker text is escaped
(`printable`) before it reaches the terminal, line by line, so a line break is always ours.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from sipguard.core.alerts import Decision
from sipguard.detect import format_duration
from sipguard.report.aggregate import AccountUnderAttack, Attacker, ScanReport, shown_action
from sipguard.report.render import printable, when

if TYPE_CHECKING:
    from rich.console import Console

Esc = Callable[[str], str]

#: below this many columns, blocks instead of wide tables (`rules list` uses it too)
NARROW = 120
PIPE_WIDTH = 160
MIN_WIDTH = 40
MAX_ATTACKERS = 500
MAX_ACCOUNTS = 200


def output_width(out: IO[str]) -> int:
    """The terminal's width when writing to one, else COLUMNS, else PIPE_WIDTH."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return max(MIN_WIDTH, int(columns))
    try:
        if out.isatty():
            return max(MIN_WIDTH, os.get_terminal_size(out.fileno()).columns)
    except (AttributeError, OSError, ValueError):
        pass
    return PIPE_WIDTH


def reason_lines(reason: str) -> list[str]:
    """A reason's lines, each terminal-safe: multi-line reasons print as lines, not as \\x0a."""
    return [printable(line) for line in reason.replace("\r\n", "\n").split("\n")]


def verdict(d: Decision) -> str:
    """`ban 10m (simulated)`: the decision as the daemon would take it, marked when simulated."""
    action, simulated = shown_action(d)
    return f"{action} {format_duration(d.duration)}" + (" (simulated)" if simulated else "")


def _short(items: list[str], n: int) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n})" if len(items) > n else "")


def render_text(report: ScanReport, out: IO[str], width: int | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=out, width=width or output_width(out), highlight=False, soft_wrap=False)
    narrow = console.width < NARROW

    def esc(text: str) -> str:
        return escape(printable(text))

    attackers = report.attackers()
    if attackers:
        if narrow:
            _attacker_blocks(console, attackers, esc)
        else:
            _attacker_table(console, attackers, esc)
        console.print("[bold]Why[/bold]")
        for a in attackers[:MAX_ATTACKERS]:
            d = a.decision
            if d is not None:
                first, *more = reason_lines(d.reason)
                console.print(f"  {esc(a.ip)}: {esc(d.rule)}: {escape(first)}")
                for line in more:  # indented under its source: no line can pass for another's
                    console.print(f"      {escape(line)}")
    else:
        console.print("No attacker crossed a rule threshold.")
    accounts = [a for a in report.accounts_under_attack() if len(a.sources) > 1 or a.alerts]
    if accounts:
        _accounts(console, accounts[:MAX_ACCOUNTS], esc, narrow)
    if report.timeline:
        _timeline(console, report)
    stats = report.to_dict()["stats"]
    assert isinstance(stats, dict)
    norm = stats.get("normalizer") or {}
    console.print(
        f"{len(report.sources)} sources with failures, {report.alerts} alerts, "
        f"{report.unattributed} events without an address; normalizer: "
        + esc(", ".join(f"{k}={v}" for k, v in dict(norm).items()))
    )


def _attacker_table(console: Console, attackers: list[Attacker], esc: Esc) -> None:
    from rich.table import Table

    t = Table(title=f"Attackers ({len(attackers)})", show_lines=False)
    for col in ("source", "first seen", "last seen", "events", "kinds", "accounts", "agents"):
        t.add_column(col, overflow="fold")
    t.add_column("would get", overflow="fold")
    for a in attackers[:MAX_ATTACKERS]:
        d = a.decision
        # escaped part by part: the line break between them is ours, not attacker text
        cell = f"{esc(verdict(d))}\n{esc(d.rule)}" if d else ""
        t.add_row(
            esc(a.ip),
            when(a.first),
            when(a.last),
            str(a.events),
            "\n".join(f"{k} {n}" for k, n in sorted(a.kinds.items())),
            esc(_short(sorted(a.accounts), 6)),
            esc(_short(sorted(a.user_agents), 3)),
            cell,
        )
    console.print(t)


def _attacker_blocks(console: Console, attackers: list[Attacker], esc: Esc) -> None:
    p = console.print
    p(f"[bold]Attackers ({len(attackers)})[/bold]")
    for a in attackers[:MAX_ATTACKERS]:
        d = a.decision
        head = f"{esc(verdict(d))} by {esc(d.rule)}" if d else "no decision"
        p(f"[bold]{esc(a.ip)}[/bold]  {head}")
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(a.kinds.items()))
        p(f"    {when(a.first)} to {when(a.last)}: {a.events} events ({kinds})")
        if a.accounts:
            p(f"    accounts: {esc(_short(sorted(a.accounts), 6))}")
        if a.user_agents:
            p(f"    agents: {esc(_short(sorted(a.user_agents), 3))}")


def _accounts(console: Console, accounts: list[AccountUnderAttack], esc: Esc, narrow: bool) -> None:
    p = console.print
    if narrow:
        p("[bold]Accounts under attack[/bold]")
        for acc in accounts:
            p(
                f"  {esc(acc.account)}: {acc.events} events from {len(acc.sources)} sources, "
                f"{when(acc.first)} to {when(acc.last)}"
            )
            if acc.alerts:
                for line in reason_lines(acc.alerts[0].reason):
                    p(f"      {line}", markup=False)
        return
    from rich.table import Table

    t = Table(title="Accounts under attack")
    for col in ("account", "events", "distinct sources", "first seen", "last seen", "alert"):
        t.add_column(col, overflow="fold")
    for acc in accounts:
        alert = acc.alerts[0].reason if acc.alerts else ""
        t.add_row(
            esc(acc.account),
            str(acc.events),
            str(len(acc.sources)),
            when(acc.first),
            when(acc.last),
            esc(alert),
        )
    p(t)


def _timeline(console: Console, report: ScanReport) -> None:
    from rich.table import Table

    t = Table(title="Timeline (attack events per minute, busiest 30)")
    t.add_column("minute (UTC)")
    t.add_column("events")
    t.add_column("kinds", overflow="fold")
    busiest = sorted(report.timeline.items(), key=lambda kv: -sum(kv[1].values()))[:30]
    for minute, counts in sorted(busiest):
        t.add_row(
            when(minute)[:16],
            str(sum(counts.values())),
            ", ".join(f"{k} {n}" for k, n in sorted(counts.items())),
        )
    console.print(t)
