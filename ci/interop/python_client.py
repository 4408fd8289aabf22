#!/usr/bin/env python3
"""Interop check: the Python `websockets` client (pinned in requirements.txt) against our
echo server (autobahn-server). Usage: python_client.py --url ws://127.0.0.1:PORT/

Prints one line per check ("ok ..." or "FAIL ...") and exits non-zero if any check failed.
Every network step is bounded by STEP_TIMEOUT seconds.
"""

import argparse
import asyncio
import contextlib
import os
import random
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


async def main(url):
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

    print(f"websockets {websockets.__version__} -> {url}", flush=True)
    try:
        ws = await asyncio.wait_for(connect(url, max_size=4 * MIB, open_timeout=STEP_TIMEOUT), STEP_TIMEOUT)
    except Exception as e:  # noqa: BLE001 - any failure to connect is a failed check
        fail("connect", explain(e))
        return
    ok("connect", f"HTTP {ws.response.status_code}")

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
    args = parser.parse_args()
    asyncio.run(main(args.url))
    print(f"python client: {'all checks passed' if failures == 0 else f'{failures} check(s) failed'}", flush=True)
    sys.exit(1 if failures else 0)
