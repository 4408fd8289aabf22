#!/usr/bin/env python3
"""Interop check: the Python `websockets` client (pinned in requirements.txt) against our
echo servers. Usage: python_client.py --url ws://127.0.0.1:PORT/ [--profile echo-class]
[--ca CA.pem] [--expect-refused] [--no-deflate]

--profile full (default): autobahn-server's echo, every check below (1 MiB, fragments, a Close
  with code 4001 and a reason echoed back).
--profile echo-class: the demo's echo class (MyApp.MyWebSocketServer), which reads at most
  32656 bytes at a time: text, binary, 20000-byte messages (over one TLS record), fragments,
  ping/pong and a Close whose code comes back.
Both profiles offer permessage-deflate (websockets' default) and check the 101 agreed to it,
then echo 100 KB compressible messages (JSON text and binary) through it. --no-deflate: offer
nothing, and check the 101 carries no Sec-WebSocket-Extensions (the same messages go plain).
--ca: for wss://, trust only this CA (PEM). --expect-refused: pass only if the TLS handshake
  fails certificate verification (a client trusting another CA).

Prints one line per check ("ok ..." or "FAIL ...") and exits non-zero if any check failed.
Every network step is bounded by STEP_TIMEOUT seconds.
"""

import argparse
import asyncio
import contextlib
import os
import random
import ssl
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.protocol import State

STEP_TIMEOUT = 10.0
MIB = 1 << 20
CLOSE_CODE = 4001
CLOSE_REASON = "bye from python ✓"

failures = 0


def ok(name, detail=""):
    print(f"ok   {name}" + (f" ({detail})" if detail else ""), flush=True)


def fail(name, detail):
    global failures
    failures += 1
    print(f"FAIL {name}: {detail}", flush=True)


def describe(value, limit=60):
    """Short description of a message: its type, length and a prefix."""
    kind = "text" if isinstance(value, str) else "binary" if isinstance(value, bytes) else type(value).__name__
    if not isinstance(value, (str, bytes)):
        return f"{kind} {value!r}"
    size = f"{len(value)} chars, {len(value.encode())} bytes" if isinstance(value, str) else f"{len(value)} bytes"
    shown = value if len(value) <= limit else value[:limit]
    more = "" if len(value) <= limit else "..."
    return f"{kind} {size} {shown!r}{more}"


def explain(e):
    if isinstance(e, TimeoutError) and not str(e):
        return f"timed out after {STEP_TIMEOUT:g} s"
    return f"{type(e).__name__}: {e}"


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def random_text(size_bytes, rng):
    """Random text whose UTF-8 encoding is exactly size_bytes long, with 1- to 4-byte characters."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,éüß€中😀"
    parts, n = [], 0
    while n < size_bytes - 4:
        c = rng.choice(alphabet)
        parts.append(c)
        n += len(c.encode())
    parts.append("x" * (size_bytes - n))
    text = "".join(parts)
    assert len(text.encode()) == size_bytes
    return text


async def echo(ws, name, message, expected=None):
    """Send `message` (a str, bytes, or an iterable of fragments) and check the echo is `expected`."""
    if expected is None:
        expected = message
    await asyncio.wait_for(ws.send(message), STEP_TIMEOUT)
    got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    if type(got) is not type(expected):
        fail(name, f"sent {describe(expected)}, got back {describe(got)} (wrong message type)")
    elif got != expected:
        i = first_difference(got, expected)
        fail(name, f"sent {describe(expected)}, got back {describe(got)}; first difference at index {i}")
    else:
        ok(name, describe(expected, limit=20))


async def check_ping(ws):
    payload = b"ping payload \x00\xff"
    pong_waiter = await asyncio.wait_for(ws.ping(payload), STEP_TIMEOUT)
    # websockets resolves the waiter only for a Pong carrying this exact payload.
    latency = await asyncio.wait_for(pong_waiter, STEP_TIMEOUT)
    ok("ping/pong", f"payload {payload!r}, {latency * 1000:.1f} ms")


async def check_close(ws):
    await asyncio.wait_for(ws.close(CLOSE_CODE, CLOSE_REASON), STEP_TIMEOUT)
    # close_code/close_reason report the Close frame RECEIVED from the server
    # (websockets: protocol.close_rcvd); close_sent is ours.
    rcvd = ws.protocol.close_rcvd
    sent = ws.protocol.close_sent
    if rcvd is None:
        fail("close", f"sent Close {sent}, but no Close frame came back (close_code={ws.close_code})")
        return
    if ws.close_code != CLOSE_CODE or ws.close_reason != CLOSE_REASON:
        fail(
            "close",
            f"sent Close code={CLOSE_CODE} reason={CLOSE_REASON!r}, "
            f"got back code={ws.close_code} reason={ws.close_reason!r}",
        )
    else:
        ok("close", f"server echoed code={rcvd.code} reason={rcvd.reason!r}")


async def check_close_code(ws):
    """The peer answers our Close with the same code (RFC 6455 section 5.5.1)."""
    await asyncio.wait_for(ws.close(1000, "bye"), STEP_TIMEOUT)
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        fail("close", f"sent Close 1000, but no Close frame came back (close_code={ws.close_code})")
    elif rcvd.code != 1000:
        fail("close", f"sent Close 1000, got back code={rcvd.code} reason={rcvd.reason!r}")
    else:
        ok("close", f"server answered code={rcvd.code}")


def compressible_json(size):
    """About `size` bytes of JSON text that deflate packs well: one chat line repeated."""
    line = '{"type":"message","room":"default","user":"alice","text":"hello, hello, world"}'
    lines = [line] * (size // (len(line) + 1))
    return "[" + ",".join(lines) + "]"


async def echo_gathered(ws, name, message):
    """Send `message` and check the echo: the echo class reads at most 32656 bytes at a time,
    so it may come back in several messages of the same type, which must join into `message`."""
    await asyncio.wait_for(ws.send(message), STEP_TIMEOUT)
    parts, size = [], 0
    while size < len(message):
        got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        if type(got) is not type(message):
            fail(name, f"sent {describe(message)}, got back {describe(got)} (wrong message type)")
            return
        parts.append(got)
        size += len(got)
    joined = "".join(parts) if isinstance(message, str) else b"".join(parts)
    if joined != message:
        i = first_difference(joined, message)
        fail(name, f"sent {describe(message)}, got back {describe(joined)}; first difference at index {i}")
    else:
        ok(name, f"{describe(message, limit=20)}, back in {len(parts)} message(s)")


def check_extensions(deflate):
    """The 101's Sec-WebSocket-Extensions: permessage-deflate agreed if offered, else none."""

    async def check(ws):
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        agreed = [e.name for e in ws.protocol.extensions]
        if deflate and (header is None or not header.startswith("permessage-deflate") or agreed != ["permessage-deflate"]):
            fail("permessage-deflate agreed", f"offered it; 101 Sec-WebSocket-Extensions={header!r}, in use: {agreed}")
        elif not deflate and (header is not None or agreed):
            fail("no extension", f"offered none; 101 Sec-WebSocket-Extensions={header!r}, in use: {agreed}")
        else:
            ok("permessage-deflate agreed" if deflate else "no extension", f"Sec-WebSocket-Extensions: {header}")

    return check


def deflate_checks(deflate):
    """The extension header, then 100 KB messages deflate packs well, through it (or plain)."""
    how = "compressed" if deflate else "plain"
    big_json = compressible_json(100_000)
    big_binary = bytes(range(256)) * 400
    return [
        ("extensions", check_extensions(deflate)),
        (f"{how} text", lambda ws: echo(ws, f"{how} text", "héllo wörld €")),
        (f"{how} binary", lambda ws: echo(ws, f"{how} binary", bytes(range(256)))),
        (f"{how} JSON 100 KB", lambda ws: echo_gathered(ws, f"{how} JSON 100 KB", big_json)),
        (f"{how} binary 100 KB", lambda ws: echo_gathered(ws, f"{how} binary 100 KB", big_binary)),
    ]


def echo_class_checks(rng):
    """What the demo's echo class can echo whole: messages under its read length (32656)."""
    mid_binary = rng.randbytes(20000)
    mid_text = random_text(20000, rng)
    return [
        ("text", lambda ws: echo(ws, "text", "héllo wörld €")),
        ("binary 0..255", lambda ws: echo(ws, "binary 0..255", bytes(range(256)))),
        ("binary 20000 bytes", lambda ws: echo(ws, "binary 20000 bytes", mid_binary)),
        ("text 20000 bytes", lambda ws: echo(ws, "text 20000 bytes", mid_text)),
        (
            "fragmented text",
            lambda ws: echo(ws, "fragmented text", ["héllo ", "fragmented ", "wörld €"], "héllo fragmented wörld €"),
        ),
        ("ping/pong", check_ping),
        ("close", check_close_code),
    ]


def ssl_context(url, ca):
    if not url.startswith("wss://"):
        return None
    # Verification on (the default context checks the chain and the host name), trusting only `ca`.
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


async def expect_refused(url, ca):
    """Passes only if the handshake fails certificate verification."""
    try:
        ws = await asyncio.wait_for(
            connect(url, ssl=ssl_context(url, ca), open_timeout=STEP_TIMEOUT), STEP_TIMEOUT
        )
    except ssl.SSLCertVerificationError as e:
        ok("refused", f"certificate not trusted: {e.verify_message}")
        return
    except Exception as e:  # noqa: BLE001 - refused, but not for the reason under test
        fail("refused", f"expected a certificate verification error, got {explain(e)}")
        return
    fail("refused", f"connected (HTTP {ws.response.status_code}) although the CA {ca} signed nothing here")
    await ws.close()


async def main(url, profile, ca, deflate):
    rng = random.Random(int.from_bytes(os.urandom(8), "big"))
    big_binary = rng.randbytes(MIB)
    big_text = random_text(MIB, rng)

    async def fragments():
        for part in (b"\x00\x01fragment-", b"\xfe\xff" * 1000, b"-end"):
            yield part

    checks = [
        ("text", lambda ws: echo(ws, "text", "héllo wörld €")),
        ("empty text", lambda ws: echo(ws, "empty text", "")),
        ("binary 0..255", lambda ws: echo(ws, "binary 0..255", bytes(range(256)))),
        ("empty binary", lambda ws: echo(ws, "empty binary", b"")),
        ("binary 1 MiB", lambda ws: echo(ws, "binary 1 MiB", big_binary)),
        ("text 1 MiB", lambda ws: echo(ws, "text 1 MiB", big_text)),
        (
            "fragmented text",
            lambda ws: echo(
                ws, "fragmented text", ["héllo ", "fragmented ", "", "wörld €"], "héllo fragmented wörld €"
            ),
        ),
        (
            "fragmented binary",
            lambda ws: echo(ws, "fragmented binary", fragments(), b"\x00\x01fragment-" + b"\xfe\xff" * 1000 + b"-end"),
        ),
        ("ping/pong", check_ping),
        ("close", check_close),
    ]
    if profile == "echo-class":
        checks = echo_class_checks(rng)
    # Before the Close at the end.
    checks = deflate_checks(deflate) + checks

    offer = "offering permessage-deflate" if deflate else "offering no extension"
    print(f"websockets {websockets.__version__} -> {url} ({profile}, {offer})", flush=True)
    try:
        ws = await asyncio.wait_for(
            connect(
                url,
                max_size=4 * MIB,
                open_timeout=STEP_TIMEOUT,
                ssl=ssl_context(url, ca),
                compression="deflate" if deflate else None,
            ),
            STEP_TIMEOUT,
        )
    except Exception as e:  # noqa: BLE001 - any failure to connect is a failed check
        fail("connect", explain(e))
        return
    tls = ""
    if url.startswith("wss://"):
        ssl_object = ws.transport.get_extra_info("ssl_object")
        tls = f", {ssl_object.version()}, ALPN {ssl_object.selected_alpn_protocol()}"
    ok("connect", f"HTTP {ws.response.status_code}{tls}")

    for name, check in checks:
        try:
            await check(ws)
        except Exception as e:  # noqa: BLE001 - report and go on while the connection is usable
            fail(name, explain(e))
            if ws.state is not State.OPEN:
                fail(
                    "remaining checks",
                    f"skipped: connection is {ws.state.name} "
                    f"(close_code={ws.close_code}, close_reason={ws.close_reason!r})",
                )
                break
    if ws.state is not State.CLOSED:
        with contextlib.suppress(Exception):  # already failed; just don't leak the connection
            await asyncio.wait_for(ws.close(), STEP_TIMEOUT)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--profile", choices=["full", "echo-class"], default="full")
    parser.add_argument("--ca", help="for wss://: the only CA to trust (PEM file)")
    parser.add_argument("--expect-refused", action="store_true")
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    args = parser.parse_args()
    if args.expect_refused:
        asyncio.run(expect_refused(args.url, args.ca))
    else:
        asyncio.run(main(args.url, args.profile, args.ca, not args.no_deflate))
    print(f"python client: {'all checks passed' if failures == 0 else f'{failures} check(s) failed'}", flush=True)
    sys.exit(1 if failures else 0)
