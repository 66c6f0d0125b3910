#!/usr/bin/python3
"""Throws malformed WebSocket frames and RFB streams at the appliance's VNC bridge.

usage: ws_fuzz.py HOST PORT PATH_WITH_TOKEN SEED COUNT

Each case opens its own TCP connection: bad upgrade requests, then (after a good upgrade)
unmasked frames, reserved opcodes, oversized and truncated lengths, fragmented or oversized
control frames, bad close frames, text frames, continuation without a start, and well-framed
RFB garbage (bad versions, unknown message types, random bytes after a valid handshake).
Prints one JSON line: the cases asked for and run, and per kind how the server reacted (the
upgrade's status, 101+closed when it ended the connection within 2 s, 101+open when it did not,
reset, timeout). The caller checks those, and that the appliance still serves good sessions.
"""
import base64, json, os, random, socket, struct, sys, time

host, port, path, seed, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)


def frame(opcode, payload, fin=True, mask=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = bytes(rng.randrange(256) for _ in range(4))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_request(extra=b"", key=None, version=b"13"):
    key = key if key is not None else base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
            b"\r\nSec-WebSocket-Version: " + version + b"\r\nSec-WebSocket-Protocol: binary\r\n" + extra + b"\r\n")


def rfb_handshake():
    return b"RFB 003.008\n" + b"\x01" + b"\x01"


def random_bytes(n):
    return bytes(rng.randrange(256) for _ in range(n))


def case_payload(kind):
    """Bytes to send after the upgrade (or instead of it) for one case kind."""
    if kind == "garbage_after_upgrade":
        return random_bytes(rng.randrange(1, 300))
    if kind == "unmasked":
        return frame(2, rfb_handshake(), mask=False)
    if kind == "reserved_opcode":
        return frame(rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), random_bytes(10))
    if kind == "rsv_bits":
        return frame(2, rfb_handshake(), rsv=rng.randrange(1, 8))
    if kind == "huge_length":
        return frame(2, b"", length=rng.choice([2**63 - 1, 2**40, 2**31, 10**9]))[:14]
    if kind == "truncated":
        return frame(2, random_bytes(2000))[: rng.randrange(2, 1000)]
    if kind == "fragmented_control":
        return frame(9, b"ping", fin=False)
    if kind == "long_control":
        return frame(9, random_bytes(200))
    if kind == "bad_close":
        return frame(8, rng.choice([b"\x03", b"\x00\x00", b"\x03\xe8" + b"\xff\xfe", random_bytes(3)]))
    if kind == "text_frame":
        return frame(1, rng.choice([b"RFB 003.008\n", b"\xff\xfe\xfd"]))
    if kind == "lonely_continuation":
        return frame(0, random_bytes(20))
    if kind == "rfb_bad_version":
        return frame(2, b"RFB 003.00" + random_bytes(2) + b"\x01\x01")
    if kind == "rfb_unknown_message":
        return frame(2, rfb_handshake()) + frame(2, bytes([rng.choice([9, 42, 200, 255])]) + random_bytes(30))
    if kind == "rfb_random_messages":
        data = rfb_handshake() + random_bytes(rng.randrange(1, 500))
        out = b""
        while data:
            cut = rng.randrange(1, 64)
            out += frame(2, data[:cut])
            data = data[cut:]
        return out
    if kind == "rfb_huge_cut_text":
        return frame(2, rfb_handshake()) + frame(2, b"\x06\x00\x00\x00" + struct.pack("!I", 0xFFFFFFF0))
    if kind == "rfb_huge_encodings":
        return frame(2, rfb_handshake()) + frame(2, b"\x02\x00" + struct.pack("!H", 65535))
    raise ValueError(kind)


AFTER_UPGRADE = ["garbage_after_upgrade", "unmasked", "reserved_opcode", "rsv_bits", "huge_length", "truncated",
                 "fragmented_control", "long_control", "bad_close", "text_frame", "lonely_continuation",
                 "rfb_bad_version", "rfb_unknown_message", "rfb_random_messages", "rfb_huge_cut_text",
                 "rfb_huge_encodings"]
BAD_UPGRADES = {
    "no_key": lambda: upgrade_request(key=b""),
    "bad_version": lambda: upgrade_request(version=b"8"),
    "huge_header": lambda: upgrade_request(extra=b"X-Junk: " + b"a" * 100000 + b"\r\n"),
    "garbage_request": lambda: random_bytes(rng.randrange(1, 400)) + b"\r\n\r\n",
}

outcomes = {}
ran = 0
for i in range(count):
    if rng.random() < 0.15:
        kind = rng.choice(sorted(BAD_UPGRADES))
        first, rest = BAD_UPGRADES[kind](), b""
    else:
        kind = rng.choice(AFTER_UPGRADE)
        first, rest = upgrade_request(), case_payload(kind)
    result = "?"
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(first)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            status = head.split(b" ", 2)[1].decode(errors="replace") if head.startswith(b"HTTP/1.1 ") else "none"
            if status == "101" and rest:
                s.sendall(rest)
                # "closed" only when the server really ended the connection within 2 s; a
                # connection still open then (the bridge waits for more bytes) is "open".
                result = "101+open"
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        chunk = s.recv(65536)
                    except socket.timeout:
                        break
                    if not chunk:
                        result = "101+closed"
                        break
            else:
                result = status
    except socket.timeout:
        result = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        result = "reset"
    ran += 1
    key = kind + ":" + result
    outcomes[key] = outcomes.get(key, 0) + 1

print(json.dumps({"requested": count, "ran": ran, "outcomes": outcomes}, sort_keys=True))
