"""`sipguard sensor --workers N` (cli/sensor.py): N processes, each judging its own NFQUEUE.

The parent installs the rules (`queue num Q-Q+N-1 bypass`, or iptables --queue-balance) once
every worker has bound its queue, and removes them at exit. The kernel picks the queue by a
symmetric hash of the address pair, so all packets of one source, both ways, meet the same
worker: per-source token buckets and dialogs stay exact. A worker that dies leaves its queue
unbound, and `bypass` lets that share of the traffic through (fail-open).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import time
from typing import Any

from sipguard.actions import FirewallError
from sipguard.config.errors import UserError
from sipguard.core.events import Event
from sipguard.sensor.config import SensorConfig
from sipguard.sensor.nfq import NfqSensor
from sipguard.sensor.queue_rules import QueueRules


def _worker(
    config: SensorConfig, queue: int, quiet: bool, max_len: int, ready: Any, batch: int = 64
) -> None:
    def emit(event: Event) -> None:
        if not quiet:
            sys.stdout.write(json.dumps(event.to_dict()) + "\n")
            sys.stdout.flush()

    sensor = NfqSensor(
        config, emit, max_len=max_len, install_table=False, queue=queue, verdict_batch=batch
    )
    signal.signal(signal.SIGTERM, lambda *_: sensor.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    sensor.run(on_ready=lambda s: ready.put(queue))
    stats = {"stats": sensor.stats(), "worker": queue}
    print(json.dumps(stats), file=sys.stderr, flush=True)


def run_workers(config: SensorConfig, args: argparse.Namespace) -> int:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Queue()
    first, last = config.queue, config.queue + config.workers - 1
    procs = [
        ctx.Process(target=_worker, args=(config, q, args.quiet, args.max_queue_len, ready,
                          getattr(args, "verdict_batch", 64)),
                    name=f"sipguard-sensor-{q}", daemon=True)
        for q in range(first, last + 1)
    ]  # fmt: skip
    stop = [False]

    def on_signal(signum: int, frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for proc in procs:
        proc.start()
    rules = QueueRules(config)
    try:
        bound: set[int] = set()
        deadline = time.monotonic() + 20
        while len(bound) < len(procs):
            if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                raise UserError(f"sensor: workers did not bind queues {first}-{last} (root?)")
            try:
                bound.add(ready.get(timeout=0.2))
            except Exception:  # queue.Empty
                continue
        try:
            mode = rules.install()
        except FirewallError as exc:
            raise UserError(f"sensor: installing the queue rules: {exc}") from exc
        print(f"sipguard sensor: running on queue {first}-{last} ({len(procs)} workers, rules "
              f"via {mode}), domains {', '.join(sorted(config.domains))}",
              file=sys.stderr, flush=True)  # fmt: skip
        while not stop[0] and any(p.is_alive() for p in procs):
            time.sleep(0.2)
    finally:
        try:
            rules.remove()
        except FirewallError as exc:
            print(f"sipguard sensor: removing the queue rules: {exc}", file=sys.stderr)
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()  # SIGTERM: the worker stops its loop and prints its stats
        for proc in procs:
            proc.join(timeout=10)
    return 0
