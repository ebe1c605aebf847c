"""`sipguard scan --format html`: one self-contained page (styles, the vendored chart library and
the data inline; nothing fetched from anywhere), for the admin who mails it to a customer.

Tables are written here, escaped, so the page reads without JavaScript; the charts (attack
events per minute by kind, top sources, countries) are drawn by the inlined Chart.js from the
report's data, embedded as JSON with `<`, `>` and `&` escaped so no attacker text can end the
script element.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from html import escape
from typing import IO, Any

from sipguard.report.aggregate import ScanReport
from sipguard.report.assets import asset, chart_library

MAX_ROWS = 500  # attackers listed in the table (all are counted in the totals)
TOP = 15


@lru_cache(maxsize=65536)
def country(address: str) -> str:
    """Two-letter country of an address or network ("" when unknown: private, documentation)."""
    import iptocc

    try:
        code = iptocc.country_code(address.split("/")[0])
    except ValueError:
        return ""
    return str(code) if code else ""


def _script_json(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _row(cells: list[object]) -> str:
    return "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"


def _table(title: str, head: list[str], rows: list[str]) -> str:
    if not rows:
        return f"<h2>{escape(title)}</h2><p>None.</p>"
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(rows)
    return (
        f"<h2>{escape(title)}</h2><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    )


def report_data(report: ScanReport) -> dict[str, Any]:
    """What the charts draw: the timeline by kind, the top sources, their countries."""
    attackers = report.attackers()
    timeline = sorted(report.timeline.items())
    kinds = sorted({k for _, c in timeline for k in c})
    countries = Counter(country(a.ip) or "??" for a in attackers)
    return {
        "minutes": [m for m, _ in timeline],
        "kinds": {k: [c.get(k, 0) for _, c in timeline] for k in kinds},
        "top": [[a.ip, a.events] for a in attackers[:TOP]],
        "countries": countries.most_common(TOP),
    }


_CSS = """
body{margin:0;font:15px/1.4 system-ui,sans-serif;color:#1d2330;background:#f4f5f7}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}
.panel{background:#fff;border-radius:6px;padding:.75rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.wide{grid-column:1/-1}canvas{max-height:280px}
table{width:100%;border-collapse:collapse;font-size:.85rem;display:block;overflow-x:auto;background:#fff}
th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #e3e6ec;vertical-align:top}
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{background:#fff;padding:.75rem;border-radius:6px}
.big{font-size:1.6rem;font-weight:600}
"""


def render_html(report: ScanReport, out: IO[str]) -> None:
    attackers = report.attackers()
    accounts = report.accounts_under_attack()
    stats = report.stats
    banned = sum(1 for a in attackers if a.decision is not None)
    rows = []
    for a in attackers[:MAX_ROWS]:
        d = a.decision
        rows.append(
            _row(
                [
                    a.ip,
                    country(a.ip) or "-",
                    a.events,
                    ", ".join(f"{k} {n}" for k, n in sorted(a.kinds.items())),
                    ", ".join(sorted(a.accounts)[:6]),
                    f"{d.action.value} ({d.rule})" if d else "",
                ]
            )
        )
    account_rows = [
        _row([acc.account, acc.events, len(acc.sources), ", ".join(x.rule for x in acc.alerts)])
        for acc in accounts[:MAX_ROWS]
    ]
    out.write(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>sipguard scan report</title><link rel="icon" href="data:,">'
        f"<style>{_CSS}</style></head><body><main>"
        "<h1>sipguard scan report</h1>"
        '<div class="cards">'
        f'<div class="card"><div class="big">{len(attackers)}</div>attackers</div>'
        f'<div class="card"><div class="big">{banned}</div>would be banned or alerted</div>'
        f'<div class="card"><div class="big">{len(accounts)}</div>accounts under attack</div>'
        f'<div class="card"><div class="big">{escape(str(stats.get("lines", "-")))}</div>'
        "lines read</div></div>"
        '<div class="grid">'
        '<div class="panel wide"><h2>Attack events per minute by kind</h2>'
        '<canvas id="c-timeline"></canvas></div>'
        '<div class="panel"><h2>Top sources</h2><canvas id="c-top"></canvas></div>'
        '<div class="panel"><h2>Sources by country</h2><canvas id="c-countries"></canvas></div>'
        "</div>"
    )
    out.write(
        _table(
            f"Attackers ({len(attackers)})",
            ["source", "country", "events", "kinds", "accounts", "verdict"],
            rows,
        )
    )
    out.write(
        _table("Accounts under attack", ["account", "events", "sources", "alerts"], account_rows)
    )
    out.write(
        f'<script type="application/json" id="report-data">{_script_json(report_data(report))}'
        f"</script><script>{chart_library()}</script>"
        f"<script>{asset('report-charts.js')}</script>"
        "</main></body></html>\n"
    )
