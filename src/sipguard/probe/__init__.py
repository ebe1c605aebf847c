"""`sipguard probe`: attack your own PBX before the attackers do.

Checks are logic over two small interfaces (`Transport` for SIP, `Net` for AMI/HTTP/IAX2/TLS);
every send is admitted and recorded by a `Ledger` that bounds total, rate and time.
"""

from sipguard.probe.context import Options, ProbeContext
from sipguard.probe.ids import AUDIT_IDS, confirmed
from sipguard.probe.ledger import Budget, BudgetSpent, Ledger, MeteredTransport, Sent
from sipguard.probe.model import CheckNote, Evidence, ProbeFinding
from sipguard.probe.runner import CHECK_NAMES, ProbeResult, run_probe
from sipguard.probe.session import Answer, SipClient, Target

__all__ = [
    "AUDIT_IDS",
    "CHECK_NAMES",
    "Answer",
    "Budget",
    "BudgetSpent",
    "CheckNote",
    "Evidence",
    "Ledger",
    "MeteredTransport",
    "Options",
    "ProbeContext",
    "ProbeFinding",
    "ProbeResult",
    "Sent",
    "SipClient",
    "Target",
    "confirmed",
    "run_probe",
]
