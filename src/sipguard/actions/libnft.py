"""A thin ctypes binding to libnftables' JSON interface, with the `nft` command as fallback.

Only the six calls sipguard needs. Each `run()` is one nft transaction: the whole batch applies
or none of it does. With a network namespace set, the calling thread enters it for the duration
of the call (setns affects only that thread) and the library context is created inside it, so
its netlink socket belongs to that namespace.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sipguard.actions.base import FirewallError, run_tool

_NFT_CTX_OUTPUT_JSON = 1 << 4  # enum nft_output_flags: NFT_CTX_OUTPUT_JSON
_NFT_CTX_DEFAULT = 0
_CLONE_NEWNET = 0x40000000
_MAX_OUTPUT = 64 * 1024 * 1024  # refuse to parse absurd listings


class _Lib:
    """The loaded library with typed prototypes; one per process."""

    _instance: _Lib | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.restype = None
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.restype = None
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.restype = ctypes.c_int
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.restype = ctypes.c_int
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib

    @classmethod
    def get(cls) -> _Lib:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Lib()
            return cls._instance


def libnftables_available() -> bool:
    try:
        _Lib.get()
    except OSError:
        return False
    return True


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the body with this thread inside the named namespace (/run/netns/NAME)."""
    if not name:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        there = os.open(f"/run/netns/{name}", os.O_RDONLY)
    except OSError as exc:
        os.close(here)
        raise FirewallError(f"netns {name}: {exc.strerror}") from exc
    try:
        if libc.setns(there, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise FirewallError(f"setns {name}: {os.strerror(err)}")
        try:
            yield
        finally:
            if libc.setns(here, _CLONE_NEWNET) != 0:  # pragma: no cover - cannot really fail
                raise FirewallError("could not return to the original network namespace")
    finally:
        os.close(there)
        os.close(here)


class NftRunner:
    """Runs JSON nft batches: libnftables if it loads (unless prefer_cli), else `nft -j -f -`."""

    def __init__(self, netns: str | None = None, prefer_cli: bool = False) -> None:
        self.netns = netns
        self._lock = threading.Lock()
        self._ctx: int | None = None
        self._lib: _Lib | None = None
        if not prefer_cli:
            try:
                self._lib = _Lib.get()
            except OSError:
                self._lib = None
        self.via = "libnftables" if self._lib is not None else "nft"

    def run(self, commands: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply one batch ({"nftables": commands}); returns the parsed JSON output (or {})."""
        text = json.dumps({"nftables": commands})
        if self._lib is None:
            out = run_tool(["nft", "-j", "-f", "-"], self.netns, stdin=text)
        else:
            out = self._run_lib(text)
        return _parse(out)

    def run_text(self, script: str) -> None:
        """Apply one batch in nft's own syntax, also one transaction. For bulk element loads:
        libnftables parses 100,000 elements as text several times faster than as JSON."""
        if self._lib is None:
            run_tool(["nft", "-f", "-"], self.netns, stdin=script)
        else:
            self._run_lib(script)

    def _run_lib(self, text: str) -> str:
        assert self._lib is not None
        lib = self._lib.lib
        with self._lock, in_netns(self.netns):
            if self._ctx is None:
                ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
                if not ctx:
                    raise FirewallError("libnftables: nft_ctx_new failed")
                lib.nft_ctx_output_set_flags(ctx, _NFT_CTX_OUTPUT_JSON)
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                self._ctx = ctx
            rc = lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
            out = lib.nft_ctx_get_output_buffer(self._ctx) or b""
            err = lib.nft_ctx_get_error_buffer(self._ctx) or b""
        if rc != 0:
            msg = err.decode(errors="replace").strip().replace("\n", "; ")
            raise FirewallError(f"libnftables: {msg[:2000] or 'command failed'}")
        return str(out.decode(errors="replace"))

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None and self._lib is not None:
                self._lib.lib.nft_ctx_free(self._ctx)
            self._ctx = None


def _parse(out: str) -> dict[str, Any]:
    out = out.strip()
    if not out:
        return {}
    if len(out) > _MAX_OUTPUT:
        raise FirewallError("nft output too large to parse")
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise FirewallError(f"nft returned unparsable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FirewallError("nft returned JSON that is not an object")
    return data
