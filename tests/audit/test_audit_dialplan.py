from __future__ import annotations

from audit_plants import FIXTURES

from sipguard.audit.dialplan import check_dialplan, reachability
from sipguard.audit.loader import DirLoader, MemoryLoader
from sipguard.audit.parser import parse_tree
from sipguard.audit.patterns import is_paid, overlap, tokens

GUEST_SIP = b"[general]\ncontext=guests\n"


def reaches(dialplan: bytes, sip: bytes = GUEST_SIP, **extra: bytes):
    files = {"sip.conf": sip, "extensions.conf": dialplan, **extra}
    return reachability(parse_tree(MemoryLoader(files)))


def test_path_through_two_includes_and_a_goto_to_a_00_dial():
    found = reachability(parse_tree(DirLoader(FIXTURES / "chansip")))
    assert len(found) == 1
    reach = found[0]
    assert (reach.entry, reach.pattern, reach.file, reach.line) == (
        "public",
        "_00.",
        "extensions.conf",
        19,
    )
    path = " | ".join(reach.path)
    assert "include => guest-features" in path and "include => numbers" in path
    assert "Goto(outbound,${EXTEN},1)" in path and "Dial(SIP/provider/${EXTEN},60)" in path
    assert "chan_sip guest" in reach.why and "IAX2 guest" in reach.why
    assert reach.first == (("extensions.conf", 11),)  # the include that opens the path


def test_no_report_when_the_guest_context_only_reaches_local_extensions():
    assert reachability(parse_tree(DirLoader(FIXTURES / "pjsip"))) == []
    plan = (
        b"[guests]\ninclude => locals\nexten => _X.,1,Goto(locals,${EXTEN},1)\n"
        b"[locals]\nexten => _2XXX,1,Dial(SIP/${EXTEN},20)\n"
        b"[staff]\nexten => _00.,1,Dial(SIP/trunk/${EXTEN})\n"
    )
    assert reaches(plan) == []


def test_goto_only_follows_extensions_the_number_can_match():
    plan = (
        b"[guests]\nexten => _2XXX,1,Goto(mixed,${EXTEN},1)\n"
        b"[mixed]\nexten => _2XXX,1,Dial(SIP/${EXTEN})\nexten => _00.,1,Dial(SIP/t/${EXTEN})\n"
    )
    assert reaches(plan) == []
    paid = plan.replace(b"_2XXX,1,Goto", b"_0.,1,Goto")
    assert [r.pattern for r in reaches(paid)] == ["_0."]


def test_macro_gosub_gotoif_and_local_channels_are_followed():
    macro = b"exten => _X.,1,Macro(out,${EXTEN})\n[macro-out]\nexten => s,1,Dial(IAX2/t/${ARG1})"
    gosub = b"exten => _+.,1,Gosub(sub,s,1(${EXTEN}))\n[sub]\nexten => s,1,Dial(DAHDI/g0/${ARG1})"
    gotoif = (
        b"exten => _9.,1,GotoIf($[${LEN(${EXTEN})} > 3]?out,${EXTEN},1:hang,s,1)\n"
        b"[out]\nexten => _9.,1,Dial(PJSIP/${EXTEN:1}@trunk)"
    )
    local = (
        b"exten => _1NXXNXXXXXX,1,Dial(Local/${EXTEN}@out)\n"
        b"[out]\nexten => _X.,1,Dial(SIP/${EXTEN}@provider)"
    )
    cases = {macro: "Macro", gosub: "Gosub", gotoif: "GotoIf", local: "Local"}
    for body, label in cases.items():
        found = reaches(b"[guests]\n" + body + b"\n")
        assert len(found) == 1, label
        assert label in " ".join(found[0].path)


def test_local_peer_dials_are_not_trunks():
    assert (
        reaches(
            b"[guests]\nexten => _X.,1,Dial(SIP/${EXTEN},20)\nexten => _X.,2,Dial(PJSIP/${EXTEN})\n"
        )
        == []
    )


def test_entry_points_pjsip_anonymous_iax_guest_and_default():
    plan = b"[anon]\nexten => _00.,1,Dial(SIP/t/${EXTEN})\n"
    pjsip = b"[anonymous]\ntype=endpoint\ncontext=anon\n"
    assert [
        r.entry for r in reaches(plan, sip=b"[general]\nallowguest=no\n", **{"pjsip.conf": pjsip})
    ] == ["anon"]
    iax = b"[guest]\ntype=user\ncontext=anon\n"
    assert [r.entry for r in reaches(plan, sip=b"", **{"iax.conf": iax})] == ["anon"]
    default = b"[default]\ninclude => anon\n" + plan
    assert [r.entry for r in reaches(default, sip=b"[general]\nallowguest=no\n")] == ["default"]
    assert reaches(plan, sip=b"[general]\nallowguest=no\n") == []


def test_dialplan_cycles_terminate():
    plan = (
        b"[guests]\ninclude => a\n[a]\ninclude => b\nexten => _X.,1,Goto(guests,${EXTEN},1)\n"
        b"[b]\ninclude => a\ninclude => guests\n"
    )
    assert reaches(plan) == []


def test_call_limit_check_accepts_group_count():
    files = {
        "extensions.conf": b"[o]\nexten => _00.,1,Dial(SIP/t/${EXTEN})\n"
        b"[p]\nexten => _00.,1,Set(GROUP()=x)\nsame => n,Dial(SIP/t/${EXTEN})\n"
    }
    found = check_dialplan(parse_tree(MemoryLoader(files)))
    assert [(f.id, f.line) for f in found] == [("DP-CALLLIMIT", 2)]


def test_patterns():
    assert overlap(tokens("_00."), tokens("_X."))
    assert overlap(tokens("_9!"), tokens("9"))
    assert not overlap(tokens("_2XXX"), tokens("_00."))
    assert not overlap(tokens("_2XXX"), tokens("_2XX"))
    assert overlap(tokens("_[1-3]XX"), tokens("250"))
    assert not overlap(tokens("_[1-3]XX"), tokens("450"))
    assert overlap(tokens("s"), tokens("s")) and not overlap(tokens("s"), tokens("_X."))
    paid = ["_00.", "_011.", "_0X.", "_X.", "_9.", "_+.", "_1NXXNXXXXXX", "00441234567"]
    assert all(is_paid(tokens(p)) for p in paid)
    assert not any(is_paid(tokens(p)) for p in ["_2XXX", "s", "_*72X", "h", "1001"])


def test_search_limit_is_reported_not_silent(monkeypatch):
    from sipguard.audit import dialplan

    monkeypatch.setattr(dialplan, "MAX_STATES", 3)
    plan = b"".join(b"[c%d]\ninclude => c%d\n" % (i, i + 1) for i in range(10))
    files = {"sip.conf": b"[general]\ncontext=c0\n", "extensions.conf": plan}
    found = check_dialplan(parse_tree(MemoryLoader(files)))
    assert [(f.id, f.severity.label) for f in found] == [("DP-TRUNCATED", "medium")]
