"""Call events as Asterisk 20 sends them over AMI, for tests that drive the live fraud path."""

from __future__ import annotations

from sipguard.testing.ami_server import AmiServer


def channel_fields(
    prefix: str, channel: str, uid: str, exten: str, num: str
) -> list[tuple[str, str]]:
    """A channel snapshot in manager_channels.c's field order (`prefix` "Dest" for the callee)."""
    return [
        (f"{prefix}Channel", channel),
        (f"{prefix}ChannelState", "4"),
        (f"{prefix}ChannelStateDesc", "Ring"),
        (f"{prefix}CallerIDNum", num),
        (f"{prefix}CallerIDName", f"Ext {num}"),
        (f"{prefix}ConnectedLineNum", "<unknown>"),
        (f"{prefix}ConnectedLineName", "<unknown>"),
        (f"{prefix}Language", "en"),
        (f"{prefix}AccountCode", ""),
        (f"{prefix}Context", "from-internal"),
        (f"{prefix}Exten", exten),
        (f"{prefix}Priority", "1"),
        (f"{prefix}Uniqueid", uid),
        (f"{prefix}Linkedid", uid),
    ]


async def dial(server: AmiServer, account: str, seq: int, exten: str) -> tuple[str, str]:
    """Newchannel then DialBegin of one outbound call through `trunk`; returns (channel, uid)."""
    channel, uid = f"PJSIP/{account}-{seq:08x}", f"1763780000.{seq}"
    await server.push_event(
        [("Event", "Newchannel"), *channel_fields("", channel, uid, exten, account)], "call"
    )
    dest = channel_fields(
        "Dest", f"PJSIP/trunk-{seq + 1:08x}", f"1763780000.{seq + 1}", exten, exten
    )
    await server.push_event(
        [
            ("Event", "DialBegin"),
            *channel_fields("", channel, uid, exten, account),
            *dest,
            ("DialString", f"{exten}@trunk"),
        ],
        "call",
    )
    return channel, uid


async def registered(server: AmiServer, account: str, ip: str, session: str) -> None:
    """A PJSIP SuccessfulAuth security event: `account` registered from `ip` (IPv4, UDP)."""
    await server.push_security(
        "SuccessfulAuth",
        AccountID=account,
        SessionID=session,
        LocalAddress="IPV4/UDP/10.0.0.1/5060",
        RemoteAddress=f"IPV4/UDP/{ip}/5060",
        UsingPassword="1",
    )
