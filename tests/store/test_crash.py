"""A writer killed with SIGKILL mid-writes loses nothing it had acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from sipguard.store import Store

WRITER = textwrap.dedent(
    """
    import sys
    from ipaddress import ip_network
    from sipguard.core.alerts import Action, Decision
    from sipguard.store import Store
    st = Store.open(sys.argv[1])
    i = 0
    while True:
        net = ip_network(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}")
        with st.transaction():  # a decision and its offence history, atomically
            st.save_decision(Decision(net, Action.BAN, "r", "x", 1000.0 + i, 10**10))
            st.save_offences(str(net), [1000.0 + i])
        sys.stdout.write(f"{net}\\n")  # acknowledged only after the commit returned
        sys.stdout.flush()
        i += 1
    """
)


def test_kill9_keeps_every_acknowledged_decision(tmp_path):
    db = tmp_path / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    acked: list[str] = []
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while len(acked) < 150 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: the writer never pauses
        rest, _ = proc.communicate(timeout=10)
        acked += [x for x in rest.splitlines() if x]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(acked) >= 150, "writer did not get going"
    st = Store.open(db)
    try:
        stored = {str(d.network) for d in st.active_decisions(10.0**9)}
        offences = st.load_offences()
    finally:
        st.close()
    missing = [a for a in acked if a not in stored]
    assert missing == []
    # atomic pairs: every stored decision has its offence row, and vice versa
    assert set(offences) == stored
