#!/usr/bin/python3
"""Audio relay benchmark: `appliance audio-relay` (the appliance's real relay: libpulse capture of a
null sink's monitor, Opus once per sink, fan-out to listeners) against the plain ways to stream a
PulseAudio sink: `parec | opusenc` (default flags and tuned for latency) and ffmpeg (libopus, tuned),
all in one run, on one private PulseAudio daemon started for the run.

A QEMU-like feeder plays into each null sink (48 kHz stereo s16le) in real time: `pacat
--latency-msec=46` (QEMU's PulseAudio default) fed through a pipe.
  * latency: the listeners connect to an idle sink, then the feeder starts: low noise (-60 dBFS)
    and, after 4 s, a 10 ms full-scale 1 kHz click every 300-500 ms (random, so the clicks'
    spacing identifies them), paced to real time; each click's write time (wall clock, when its
    bytes went into pacat's pipe) is logged. Each method's listener decodes the Opus packets
    (libopus through ctypes) and finds each click's onset (|sample| over a threshold after >= 100
    ms below it); latency = wall time the packet (Ogg page, WebSocket message, PCM read) carrying
    the onset arrived - the click's write time. p50 / p99 over --clicks clicks. Also: playback
    start -> first real audio at the listener, and how much of the sound's start never arrives.
    Relay: WebSocket and HTTP Ogg listeners on one sink together (they share the sink's capture
    and encoder, as listeners do in the appliance); every other method has a sink of its own.
    The raw capture floor is `parec --latency-msec=10` PCM. `parec | opusenc` with default flags
    runs for --default-cap seconds (clicks during its first two thirds) and reports what arrived.
  * CPU: --streams sinks, each with a feeder playing continuous music-like audio (chords and
    noise) and one listener; CPU of the relay process (or of each parec + opusenc, each ffmpeg)
    from /proc/PID/stat (utime+stime) over --window seconds after a warm-up, as % of one core per
    stream; the PulseAudio daemon, the feeders and this script (the listeners) separately. Then 1
    sink with 1 and with 1 + --extra-listeners WebSocket listeners: relay CPU per extra listener.
    A run with more than 0.3 cores busy elsewhere (another tenant's build) is measured again once.
  * capacity: 100 % / (CPU per stream) streams per core, and real runs of the relay at --scale
    sinks and of tuned `parec | opusenc` at 30 sinks (the most whose two PulseAudio clients each
    fit the daemon's 64-client limit) and at the largest --scale: packets per second per stream,
    sequence gaps, and for the relay the delay capture stamp -> arrival and its drift across the
    window, i.e. whether every stream stays real-time.

Builds the appliance with `swift build -c release --product appliance` (incremental; the default
.build folder of this clone), unless --skip-build.

Usage: /usr/bin/python3 bench/audio/audio_bench.py [--quick] [--skip-build] [--clicks 100]
           [--streams 8] [--window 10] [--extra-listeners 50] [--scale 16,32,48] [--phases latency,cpu,scale]
Writes bench/audio/RESULTS.md and bench/audio/results.json and prints the table. ffmpeg is optional
(`apt-get install -y --no-install-recommends ffmpeg`); without it its column is skipped.
"""
import argparse, array, base64, ctypes, datetime, fcntl, json, math, os, platform, random, selectors, shutil, signal, socket, statistics, struct, subprocess, sys, tempfile, termios, threading, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SWIFT = "/opt/swift/usr/bin/swift"
APPLIANCE = ROOT / ".build" / "release" / "appliance"
TICK = os.sysconf("SC_CLK_TCK")
RATE, CHANNELS, CHUNK_FRAMES = 48000, 2, 480  # the sinks' format; the feeder writes 10 ms chunks
CHUNK_BYTES = CHUNK_FRAMES * CHANNELS * 2
THRESHOLD = 8000  # |sample| above this is the click (full scale 32767; the click is 0.9 FS)
QUIET_FRAMES = RATE // 10  # an onset needs 100 ms below the threshold before it
FEED_LATENCY_MS = 46  # QEMU's default PulseAudio playback latency
LEAD_S = 4.0  # latency runs: the feeder plays noise this long before the first click
FEEDER_LEAD_S = 2.5  # CPU runs: feeders play this long before the listeners connect
PULSE_MAX_CLIENTS = 64  # PulseAudio's native protocol: MAX_CONNECTIONS
# Between starting two PulseAudio clients: the daemon's socket has a listen backlog of 5, and a
# burst of clients connecting at once gets "Connection refused" (VMs do not all start at once).
STAGGER_S = 0.03
DISTURBED = 0.3  # cores busy with something else than the run's processes: measure again
PCM_ARGS = ["--raw", "--format=s16le", f"--rate={RATE}", f"--channels={CHANNELS}"]


def log(msg):
    print(f"[audio-bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout.strip()


# ------------------------------------------------------------------------------- feeder (child)

def feeder_main(argv):
    """`audio_bench.py _feed SEED CHUNKS LEAD CLICKS_UNTIL LOG`: writes s16le stereo to stdout in
    10 ms chunks paced to real time: silence with a click every 300-500 ms (random, seeded) from
    chunk LEAD until chunk CLICKS_UNTIL; logs `frame_position wall_time` per click. In its first
    1.5 s it drops a chunk while the pipe to pacat still holds one: pacat connecting late would
    otherwise leave a permanent queue in front of the player (QEMU's buffer has a fixed size).
    After that it writes strictly in real time, as the sink consumes. Between clicks it plays low
    noise, not digital silence."""
    seed, chunks, lead, until, path = int(argv[0]), int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    settle = min(lead, int(os.environ.get("FEED_SETTLE_CHUNKS", 150)))
    rng = random.Random(seed)
    click = array.array("h")
    for k in range(CHUNK_FRAMES):
        v = int(0.9 * 32767 * math.sin(2 * math.pi * 1000 * k / RATE))
        click.extend((v, v))
    click = click.tobytes()
    # The "silence" around the clicks is low noise (about -60 dBFS), so that a listener can tell
    # the sink's audio from digital silence a relay makes up.
    noise = [array.array("h", (int(rng.gauss(0, 30)) for _ in range(CHUNK_FRAMES * CHANNELS))).tobytes() for _ in range(50)]
    clicks, k = set(), lead
    while k < until:
        clicks.add(k)
        k += rng.randint(30, 50)
    out = open(path, "w", buffering=1)
    written = dropped = 0
    probe = bytearray(4)
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for k in range(chunks):
            delay = t0 + k * 0.01 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            is_click = k in clicks
            if k < settle:  # only while something is still queued for pacat
                fcntl.ioctl(1, termios.FIONREAD, probe)
                if struct.unpack("i", probe)[0] >= CHUNK_BYTES:
                    dropped += 1
                    continue
            t = time.time()
            os.write(1, click if is_click else noise[k % len(noise)])  # < PIPE_BUF: all or nothing
            if written == 0:
                out.write(f"# start {t:.6f}\n")
            if is_click:
                out.write(f"{written} {t:.6f}\n")
            written += CHUNK_FRAMES
    except BrokenPipeError:
        pass
    out.write(f"# dropped {dropped}\n")
    out.close()


def music(seconds):
    """Continuous music-like stereo s16le: a chord per 250 ms (three partials each with decay) over
    low noise; a 5 s pattern repeated. Opus spends about as much on it as on music."""
    rng = random.Random(7)
    pattern = array.array("h")
    notes = [110 * 2 ** (s / 12) for s in range(0, 36, 2)]
    for step in range(20):
        chord = rng.sample(notes, 3)
        pans = [rng.random() for _ in chord]
        for n in range(RATE // 4):
            env = math.exp(-n / 6000)
            t = (step * RATE // 4 + n) / RATE
            left = right = 0.0
            for f, p in zip(chord, pans):
                s = math.sin(2 * math.pi * f * t) * env
                left += s * p
                right += s * (1 - p)
            pattern.append(int(9000 * left + rng.gauss(0, 300)))
            pattern.append(int(9000 * right + rng.gauss(0, 300)))
    data = pattern.tobytes()
    return data * (int(seconds / 5) + 1)


# -------------------------------------------------------------------------------- Opus / Ogg

class OpusDecoder:
    lib = None

    def __init__(self):
        if OpusDecoder.lib is None:
            lib = ctypes.CDLL("libopus.so.0")
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                        ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
            lib.opus_get_version_string.restype = ctypes.c_char_p
            OpusDecoder.lib = lib
        err = ctypes.c_int()
        self.st = self.lib.opus_decoder_create(RATE, CHANNELS, ctypes.byref(err))
        if err.value != 0 or not self.st:
            raise RuntimeError(f"opus_decoder_create: {err.value}")
        self.buf = (ctypes.c_int16 * (5760 * CHANNELS))()

    def decode(self, packet):
        """Interleaved int16 samples (memoryview) of one packet."""
        n = self.lib.opus_decode(self.st, packet, len(packet), self.buf, 5760, 0)
        if n < 0:
            raise RuntimeError(f"opus_decode: {n}")
        return memoryview(self.buf).cast("B").cast("h")[:n * CHANNELS]

    def __del__(self):
        if self.st and self.lib:
            self.lib.opus_decoder_destroy(self.st)
            self.st = None


class OggPackets:
    """Incremental Ogg page parser (one logical stream): bytes in, completed packets out."""

    def __init__(self):
        self.buf, self.partial = bytearray(), bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 27:
            if self.buf[:4] != b"OggS":
                i = self.buf.find(b"OggS")
                del self.buf[:i if i >= 0 else len(self.buf) - 3]
                continue
            nseg = self.buf[26]
            if len(self.buf) < 27 + nseg:
                break
            lacing = self.buf[27:27 + nseg]
            end = 27 + nseg + sum(lacing)
            if len(self.buf) < end:
                break
            pos = 27 + nseg
            for length in lacing:
                self.partial += self.buf[pos:pos + length]
                pos += length
                if length < 255:
                    out.append(bytes(self.partial))
                    self.partial.clear()
            del self.buf[:end]
        return out


class Onsets:
    """Finds click onsets in a stream of decoded PCM: (frame position, arrival wall time). Also
    notes digital silence per 10 ms block: the feeder never plays it, so silence between the
    first and the last block of real audio is audio the listener did not get."""

    def __init__(self):
        self.pos, self.last_above, self.events, self.blocks = 0, -10 ** 12, [], []

    def silent_ms(self, skip_s=0.0):
        """Digital silence between the first and last real audio, ms; with `skip_s`, only what
        comes later than that after the first real audio."""
        live = [p for p, n, silent, t in self.blocks if not silent]
        if not live:
            return None
        start = live[0] + skip_s * RATE
        return sum(n for p, n, silent, t in self.blocks if silent and start < p < live[-1]) * 1000 / RATE

    def first_audio(self):
        """Arrival time of the first block of real (not digitally silent) audio."""
        return next((t for p, n, silent, t in self.blocks if not silent), None)

    def feed(self, pcm, t, pos=None):
        if pos is not None:
            self.pos = pos
        step = CHUNK_FRAMES * CHANNELS
        for k in range(0, len(pcm), step):
            block = pcm[k:k + step]
            self.blocks.append((self.pos + k // CHANNELS, len(block) // CHANNELS, max(block) < 4 and min(block) > -4, t))
        if len(pcm) and (max(pcm) > THRESHOLD or min(pcm) < -THRESHOLD):
            first = last = None
            for i, v in enumerate(pcm):
                if v > THRESHOLD or v < -THRESHOLD:
                    if first is None:
                        first = i
                    last = i
            p = self.pos + first // CHANNELS
            if p - self.last_above > QUIET_FRAMES:
                self.events.append((p, t))
            self.last_above = self.pos + last // CHANNELS
        self.pos += len(pcm) // CHANNELS


# --------------------------------------------------------------------------------- listeners

class Stream:
    """One listener's connection or pipe, read by the Collector thread."""

    def __init__(self, name, fd_owner, decode):
        self.name, self.owner = name, fd_owner
        self.packets = self.gaps = self.bytes = 0
        self.eof = False
        self.lags = []  # (arrival, arrival - capture stamp) for relay WebSocket packets
        self.stamps = []  # (sequence, stamp, arrival) of WebSocket packets, when decoding
        self.decoder = OpusDecoder() if decode else None
        self.onsets = Onsets() if decode else None

    def fileno(self):
        return self.owner.fileno()

    def read(self):
        return os.read(self.owner.fileno(), 65536)

    def close(self):
        try:
            self.owner.close()
        except OSError:
            pass


class PcmStream(Stream):
    def __init__(self, name, pipe, decode=True):
        super().__init__(name, pipe, decode)
        self.rest = b""

    def feed(self, data, t):
        data = self.rest + data
        n = len(data) - len(data) % 4
        self.rest = data[n:]
        self.packets += n // CHUNK_BYTES
        if self.onsets:
            self.onsets.feed(memoryview(data[:n]).cast("h"), t)


class OggStream(Stream):
    """Ogg/Opus from a pipe or (http=True) an HTTP response with chunked transfer encoding."""

    def __init__(self, name, owner, decode, http=False):
        super().__init__(name, owner, decode)
        self.ogg, self.http = OggPackets(), http
        self.head, self.headers_done, self.chunked, self.chunk_left, self.cbuf = b"", not http, False, 0, bytearray()
        self.seen = 0

    def read(self):
        return self.owner.recv(65536) if self.http else os.read(self.owner.fileno(), 65536)

    def dechunk(self, data):
        if not self.headers_done:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return b""
            head, data = self.head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin1").split("\r\n")
            if " 200 " not in lines[0] + " ":
                raise RuntimeError(f"{self.name}: HTTP {lines[0]}")
            self.chunked = any(l.lower().replace(" ", "") == "transfer-encoding:chunked" for l in lines)
            self.headers_done = True
        if not self.chunked:
            return data
        self.cbuf += data
        out = bytearray()
        while True:
            if self.chunk_left > 0:
                take = min(self.chunk_left, len(self.cbuf))
                if take == 0:
                    break
                out += self.cbuf[:take]
                del self.cbuf[:take]
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_left = -2  # the CRLF after the chunk
                continue
            if self.chunk_left == -2:
                if len(self.cbuf) < 2:
                    break
                del self.cbuf[:2]
                self.chunk_left = 0
                continue
            i = self.cbuf.find(b"\r\n")
            if i < 0:
                break
            size = int(bytes(self.cbuf[:i]).split(b";")[0], 16)
            del self.cbuf[:i + 2]
            self.chunk_left = size if size else -3
            if size == 0:
                break
        return bytes(out)

    def feed(self, data, t):
        if self.http:
            data = self.dechunk(data)
        for pkt in self.ogg.feed(data):
            self.seen += 1
            if self.seen <= 2:  # OpusHead, OpusTags
                continue
            self.packets += 1
            if self.decoder:
                self.onsets.feed(self.decoder.decode(pkt), t)


class WsStream(Stream):
    """The relay's WebSocket: text hello, then binary: seq (u64 BE), capture µs (i64 BE), Opus."""

    def __init__(self, name, port, path, decode):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = sock.recv(4096)
            if not d:
                raise RuntimeError(f"{name}: connection closed during the WebSocket handshake: {head!r}")
            head += d
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0] + b" ":
            raise RuntimeError(f"{name}: no WebSocket upgrade: {head[:200]!r}")
        sock.settimeout(None)
        super().__init__(name, sock, decode)
        self.buf = bytearray(self.buf)
        self.hello, self.last_seq, self.first_seq = None, None, None

    def read(self):
        return self.owner.recv(65536)

    def feed(self, data, t):
        self.buf += data
        b = self.buf
        while len(b) >= 2:
            opcode, ln, off = b[0] & 0x0F, b[1] & 0x7F, 2
            if ln == 126:
                if len(b) < 4:
                    break
                ln, off = int.from_bytes(b[2:4], "big"), 4
            elif ln == 127:
                if len(b) < 10:
                    break
                ln, off = int.from_bytes(b[2:10], "big"), 10
            if b[1] & 0x80:
                off += 4  # servers do not mask; tolerate it anyway (key ignored: never sent)
            if len(b) < off + ln:
                break
            payload = bytes(b[off:off + ln])
            del b[:off + ln]
            if opcode == 1:
                self.hello = json.loads(payload)
            elif opcode == 2:
                self.packet(payload, t)
            elif opcode == 9:  # ping -> pong (client frames are masked)
                mask = os.urandom(4)
                self.owner.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
            elif opcode == 8:
                self.eof = True

    def packet(self, payload, t):
        seq, stamp = struct.unpack(">Qq", payload[:16])
        if self.last_seq is not None and seq != self.last_seq + 1:
            self.gaps += max(0, seq - self.last_seq - 1)
        if self.first_seq is None:
            self.first_seq = seq
        self.last_seq = seq
        self.packets += 1
        self.lags.append((t, t - stamp / 1e6))
        if self.decoder:
            self.stamps.append((seq, stamp, t))
            self.onsets.feed(self.decoder.decode(payload[16:]), t, pos=(seq - self.first_seq) * CHUNK_FRAMES)


class Collector(threading.Thread):
    """Reads every listener (sockets, pipes) in one thread; timestamps each read. Streams are added
    and removed through the thread itself (never touched by two threads at once)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        self.requests, self.lock, self.stopping, self.error = [], threading.Lock(), False, None
        self.start()

    def _request(self, op, streams):
        done = threading.Event()
        with self.lock:
            self.requests.append((op, streams, done))
        os.write(self.wake_w, b"x")
        if not done.wait(10) and self.error is None:
            raise RuntimeError("listener thread does not answer")

    def add(self, stream):
        self._request("add", [stream])
        return stream

    def remove(self, streams):
        """Stops reading `streams` and closes them."""
        self._request("remove", list(streams))

    def run(self):
        registered = set()
        try:
            while not self.stopping:
                for key, _ in self.sel.select(0.5):
                    s = key.data
                    if s is None:
                        os.read(self.wake_r, 4096)
                        with self.lock:
                            requests, self.requests = self.requests, []
                        for op, streams, done in requests:
                            for st in streams:
                                if op == "add":
                                    self.sel.register(st.fileno(), selectors.EVENT_READ, st)
                                    registered.add(st)
                                else:
                                    if st in registered:
                                        self.sel.unregister(st.fileno())
                                        registered.discard(st)
                                    st.close()
                            done.set()
                        break  # the ready list may name streams just removed
                    if s not in registered:
                        continue
                    try:
                        data = s.read()
                    except (ConnectionError, OSError):
                        data = b""
                    t = time.time()
                    if not data:
                        s.eof = True
                        self.sel.unregister(s.fileno())
                        registered.discard(s)
                        continue
                    s.bytes += len(data)
                    s.feed(data, t)
        except BaseException as e:  # reported by the main thread
            self.error = e
            with self.lock:
                for _, _, done in self.requests:
                    done.set()

    def stop(self):
        self.stopping = True
        os.write(self.wake_w, b"x")
        self.join(5)


# ---------------------------------------------------------------------------------- processes

def cpu_s(pid):
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def threads_cpu_s(pid):
    """{tid: (thread name, utime+stime seconds)} of one process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            f = raw.rsplit(")", 1)[1].split()
            out[tid] = (name, (int(f[11]) + int(f[12])) / TICK)
        except (OSError, ValueError, IndexError):
            pass
    return out


def machine_busy_s():
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TICK


class Procs:
    """Every process the run starts, each in its own session; `stop` ends some, `close` all."""

    def __init__(self, tmp, env):
        self.tmp, self.env, self.procs, self.n = tmp, env, [], 0

    def start(self, name, cmd, stdin=subprocess.DEVNULL, stdout=None):
        self.n += 1
        path = self.tmp / f"{self.n:03d}-{name}.log"
        err = open(path, "w")
        p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout if stdout is not None else err, stderr=err,
                             start_new_session=True, env=self.env)
        p.name, p.log = name, path
        self.procs.append(p)
        return p

    def stop(self, ps):
        for p in ps:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in ps:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
            for f in (p.stdout, p.stdin):
                if f:
                    try:
                        f.close()
                    except OSError:
                        pass
            if p in self.procs:
                self.procs.remove(p)

    def close(self):
        """Stops everything: the relay first (it starts a daemon of its own when it loses the
        daemon, so it must not see this run's daemon go), the daemon last; then anything left in
        their process groups or naming this run's folder (a daemon the relay started, say)."""
        groups = [p.pid for p in self.procs]
        first = [p for p in self.procs if p.name == "relay"]
        last = [p for p in self.procs if p.name == "pulseaudio"]
        self.stop(first)
        self.stop([p for p in reversed(self.procs) if p not in last])
        self.stop(last)
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        me = str(self.tmp).encode()
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():
                try:
                    if me in Path(f"/proc/{d}/cmdline").read_bytes():
                        os.kill(int(d), signal.SIGKILL)
                except (OSError, ProcessLookupError):
                    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_connectable(addr, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} at start")
        fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        with socket.socket(fam) as s:
            try:
                s.connect(addr)
                return
            except OSError:
                time.sleep(0.05)
    raise SystemExit(f"{what} not reachable after {timeout}s")


# ------------------------------------------------------------------------------------- bench

def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    lo = int(k)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (k - lo)


def match(clicks, onsets):
    """Pairs onsets with clicks by stream position: the offset stream - feeder position is constant
    while the stream has no jumps, so the most common offset (over all click/onset pairs with the
    click written before the onset arrived) identifies the pairs; repeated for what is left so a
    jump (e.g. a lost stretch) only starts a new segment. Returns [(click index, latency s)]."""
    pairs, free_c, free_o = [], set(range(len(clicks))), set(range(len(onsets)))
    while free_o and free_c:
        votes = {}
        for j in free_o:
            p, a = onsets[j]
            for i in free_c:
                q, w = clicks[i]
                if w < a:
                    key = round((p - q) / 240)
                    votes[key] = votes.get(key, 0) + 1
        if not votes:
            break
        key, n = max(votes.items(), key=lambda kv: kv[1])
        if n < 3 and pairs:
            break
        off = key * 240
        got = 0
        for j in sorted(free_o):
            p, a = onsets[j]
            best = [i for i in free_c if abs(p - off - clicks[i][0]) <= 480 and clicks[i][1] < a]
            if best:
                i = min(best, key=lambda i: abs(p - off - clicks[i][0]))
                pairs.append((i, a - clicks[i][1], j))
                free_c.discard(i)
                free_o.discard(j)
                got += 1
        if not got:
            break
    pairs.sort()
    return pairs


class Bench:
    def __init__(self, a, tmp, procs, env):
        self.a, self.tmp, self.procs, self.env = a, tmp, procs, env
        self.sock = str(tmp / "pulse.sock")
        self.modules, self.modules_made = {}, []
        self.have_ffmpeg = shutil.which("ffmpeg") is not None
        self.collector = Collector()
        self.music = tmp / "music.raw"

    # -------------------------------------------------------------------- daemon, sinks, relay

    def start_daemon(self):
        d = self.tmp / "pulse"
        for sub in ("run", "state", "config"):
            (d / sub).mkdir(parents=True)
        (d / "daemon.conf").write_text("rlimit-nofile = 4096\n")
        env = dict(self.env, HOME=str(d), PULSE_CONFIG=str(d / "daemon.conf"), PULSE_RUNTIME_PATH=str(d / "run"),
                   PULSE_STATE_PATH=str(d / "state"), XDG_CONFIG_HOME=str(d / "config"))
        env.pop("PULSE_SERVER", None)
        p = subprocess.Popen(["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
                              "--log-target=stderr", "--no-cpu-limit=yes",
                              f"--load=module-native-protocol-unix socket={self.sock} auth-anonymous=1"],
                             stdin=subprocess.DEVNULL, stdout=open(d / "pulseaudio.log", "w"), stderr=subprocess.STDOUT,
                             start_new_session=True, env=env)
        p.name = "pulseaudio"
        self.procs.procs.insert(0, p)  # stopped last
        wait_connectable(self.sock, p, "pulseaudio")
        self.daemon = p
        lim = [l for l in Path(f"/proc/{p.pid}/limits").read_text().splitlines() if l.startswith("Max open files")]
        log(f"pulseaudio pid {p.pid}: {lim[0] if lim else '?'}")

    def start_relay(self):
        self.port = free_port()
        self.relay = self.procs.start("relay", [str(APPLIANCE), "audio-relay", "--pulse-socket", self.sock,
                                                "--listen", f"127.0.0.1:{self.port}",
                                                "--runtime-directory", str(self.tmp / "relay-rt")])
        wait_connectable(("127.0.0.1", self.port), self.relay, "appliance audio-relay")
        log(f"appliance audio-relay pid {self.relay.pid} on port {self.port}")

    def pactl(self, *args):
        return run(["pactl", "--server", f"unix:{self.sock}"] + list(args), env=self.env)

    def sink(self, name):
        self.modules[name] = self.pactl("load-module", "module-null-sink", f"sink_name={name}", f"rate={RATE}",
                                        f"channels={CHANNELS}", "format=s16le")
        self.modules_made.append(name)
        return name

    def drop_sinks(self, names):
        for n in names:
            if n in self.modules:
                try:
                    self.pactl("unload-module", self.modules.pop(n))
                except subprocess.CalledProcessError as e:
                    log(f"unload {n}: {e.stderr.strip()}")

    def check_alive(self):
        if self.daemon.poll() is not None:
            raise RuntimeError(f"pulseaudio exited ({self.daemon.returncode})")
        if self.relay.poll() is not None:
            raise RuntimeError(f"appliance audio-relay exited ({self.relay.returncode})")
        if self.collector.error:
            raise self.collector.error

    # ------------------------------------------------------------------------ capture methods

    def pulse_cmd(self, tool, sink, *args):
        return [tool, f"--server=unix:{self.sock}", "-d", sink] + PCM_ARGS + list(args)

    def opusenc_cmd(self, tuned):
        if tuned:  # the relay's codec settings (64 kbit/s, 10 ms, complexity 10) + the latency fixes
            return ["stdbuf", "-o0", "opusenc", "--quiet", "--raw", "--raw-rate", str(RATE), "--raw-chan", str(CHANNELS),
                    "--bitrate", "64", "--framesize", "10", "--set-ctl-int", "14000=0", "--max-delay", "1", "-", "-"]
        return ["opusenc", "--quiet", "--raw", "--raw-rate", str(RATE), "--raw-chan", str(CHANNELS), "-", "-"]

    def ffmpeg_cmd(self, sink):
        return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "pulse", "-server", f"unix:{self.sock}",
                "-fragment_size", str(CHUNK_BYTES), "-sample_rate", str(RATE), "-channels", str(CHANNELS),
                "-i", f"{sink}.monitor", "-c:a", "libopus", "-b:a", "64k", "-application", "lowdelay",
                "-frame_duration", "10", "-page_duration", str(self.a.ffmpeg_page_us), "-flush_packets", "1",
                "-f", "ogg", "-"]

    def listen(self, method, sink, decode, tag=""):
        """Starts one listener of `method` on `sink`: (streams, processes)."""
        name = f"{method}{tag}:{sink}"
        if method == "relay":
            return [self.collector.add(WsStream(name, self.port, f"/audio/{sink}/ws", decode))], []
        if method == "relay-http":
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(f"GET /audio/{sink} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
            s.settimeout(None)
            return [self.collector.add(OggStream(name, s, decode, http=True))], []
        if method == "floor":
            p = self.procs.start(f"parec-{sink}", self.pulse_cmd("parec", f"{sink}.monitor", "--latency-msec=10"),
                                 stdout=subprocess.PIPE)
            return [self.collector.add(PcmStream(name, p.stdout, decode))], [p]
        if method in ("opusenc", "opusenc-default"):
            tuned = method == "opusenc"
            rec = self.procs.start(f"parec-{sink}", self.pulse_cmd("parec", f"{sink}.monitor", *(["--latency-msec=10"] if tuned else [])),
                                   stdout=subprocess.PIPE)
            enc = self.procs.start(f"opusenc-{sink}", self.opusenc_cmd(tuned), stdin=rec.stdout, stdout=subprocess.PIPE)
            rec.stdout.close()
            rec.stdout = None
            return [self.collector.add(OggStream(name, enc.stdout, decode))], [rec, enc]
        if method == "ffmpeg":
            p = self.procs.start(f"ffmpeg-{sink}", self.ffmpeg_cmd(sink), stdout=subprocess.PIPE)
            return [self.collector.add(OggStream(name, p.stdout, decode))], [p]
        raise ValueError(method)

    def stop_listeners(self, streams, ps):
        self.collector.remove(streams)
        self.procs.stop(ps)

    def pacat(self, sink, stdin):
        p = self.procs.start(f"pacat-{sink}", self.pulse_cmd("pacat", sink, f"--latency-msec={FEED_LATENCY_MS}"),
                             stdin=stdin)
        stdin.close()  # the child has it
        return p

    # ------------------------------------------------------------------------------- latency

    def latency(self, methods, seconds, clicks_until, seed):
        """One latency run: a click feeder into one sink, `methods` listening to it."""
        sink = self.sink(f"lat{seed}-{methods[0]}")
        streams, ps = [], []
        for m in methods:
            s, p = self.listen(m, sink, decode=True)
            streams += s
            ps += p
        time.sleep(1.0)  # capture up (ffmpeg takes a moment)
        clicklog = self.tmp / f"clicks-{seed}.txt"
        chunks = int(seconds * 100)
        feeder = self.procs.start(f"feeder-{sink}", [sys.executable, str(Path(__file__).resolve()), "_feed", str(seed),
                                                      str(chunks), str(int(LEAD_S * 100)), str(int(clicks_until * 100)), str(clicklog)],
                                  stdout=subprocess.PIPE)
        player = self.pacat(sink, feeder.stdout)
        feeder.stdout = None
        involved = [self.relay.pid, self.daemon.pid, feeder.pid, player.pid, os.getpid()] + [p.pid for p in ps]
        w0, b0, c0 = time.time(), machine_busy_s(), sum(cpu_s(p) for p in involved)
        t_end = time.time() + seconds + 0.1
        while time.time() < t_end:
            time.sleep(0.2)
            self.check_alive()
            if player.poll() is not None and feeder.poll() is None:
                raise RuntimeError(f"pacat on {sink} exited ({player.returncode})")
        time.sleep(1.0)  # the last click's packets
        w1, b1, c1 = time.time(), machine_busy_s(), sum(cpu_s(p) for p in involved)
        other = ((b1 - b0) - (c1 - c0)) / (w1 - w0)  # cores busy with something else (another tenant's build)
        self.procs.stop([feeder, player])
        self.stop_listeners(streams, ps)
        lines = clicklog.read_text().splitlines()
        clicks = [(int(l.split()[0]), float(l.split()[1])) for l in lines if not l.startswith("#")]
        start = next(float(l.split()[-1]) for l in lines if l.startswith("# start"))
        dropped = int(lines[-1].split()[-1]) if lines and lines[-1].startswith("# dropped") else None
        self.drop_sinks([sink])
        out = {}
        for m, s in zip(methods, streams):
            pairs = match(clicks, s.onsets.events)
            lat = [x[1] * 1000 for x in pairs]
            r = {"clicks": len(clicks), "onsets": len(s.onsets.events), "matched": len(pairs),
                 "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "min_ms": min(lat, default=None),
                 "max_ms": max(lat, default=None), "mean_ms": statistics.mean(lat) if lat else None,
                 "latencies_ms": [round(x, 2) for x in lat], "packets": s.packets, "feeder_dropped_chunks": dropped,
                 "silent_ms": s.onsets.silent_ms(), "silent_ms_after_first_3s": s.onsets.silent_ms(3.0),
                 "first_audio_ms": (s.onsets.first_audio() - start) * 1000 if s.onsets.first_audio() else None,
                 "other_cores": round(other, 3)}
            # Audio lost at the start: the stream position of the first real audio, mapped to the
            # feeder's position with the clicks' steady offset (stream - feeder position). Audio
            # PulseAudio only delays maps to about 0; audio a method drops, to how much it dropped.
            offsets = sorted(s.onsets.events[j][0] - clicks[i][0] for i, _, j in pairs)
            live = next((p for p, n, silent, t in s.onsets.blocks if not silent), None)
            r["lost_at_start_ms"] = (live - offsets[len(offsets) // 2]) * 1000 / RATE if offsets and live is not None else None
            if m == "relay":
                # The relay's own capture stamp of the click (packet stamp + the onset's offset in
                # the packet) against the write: what the stamp claims as "entered the sink".
                by_seq = {seq: (stamp, t) for seq, stamp, t in s.stamps}
                est = []
                for i, _, j in pairs:
                    p, _a = s.onsets.events[j]
                    seq = s.first_seq + p // CHUNK_FRAMES
                    if seq in by_seq:
                        est.append((by_seq[seq][0] / 1e6 + (p % CHUNK_FRAMES) / RATE - clicks[i][1]) * 1000)
                r["stamp_minus_write_p50_ms"] = pct(est, 0.5)
                r["stamp_minus_write_p99_ms"] = pct(est, 0.99)
                lags = [x[1] * 1000 for x in s.lags]
                r["arrival_minus_stamp_p50_ms"], r["arrival_minus_stamp_p99_ms"] = pct(lags, 0.5), pct(lags, 0.99)
                r["gaps"] = s.gaps
                steps = [b[1] - a[1] for a, b in zip(s.stamps, s.stamps[1:])]
                r["stamp_steps_not_10ms"] = sum(1 for d in steps if abs(d - 10000) > 1000)
            out[m] = r
            log(f"  {m}: {len(pairs)}/{len(clicks)} clicks, p50 {fmt_ms(r['p50_ms'])} ms, p99 {fmt_ms(r['p99_ms'])} ms"
                + (f", packets {s.packets}" if s.packets else "") + f", digital silence {fmt_ms(r['silent_ms'])} ms (after the first 3 s {fmt_ms(r['silent_ms_after_first_3s'])} ms)"
                + f", first audio {fmt_ms(r['first_audio_ms'])} ms after playback started, {fmt_ms(r['lost_at_start_ms'])} ms of it lost")
        return out

    # ---------------------------------------------------------------------------------- CPU

    def load_run(self, method, nsinks, listeners, window, warmup, tag, tries=2):
        """`load_run_once` until the machine was quiet during it (other tenants of this machine
        run builds at times), at most `tries` times; keeps the least disturbed attempt."""
        best = None
        for attempt in range(1, tries + 1):
            r = self.load_run_once(method, nsinks, listeners, window, warmup, f"{tag}-{attempt}")
            r["attempt"] = attempt
            if best is None or r["cpu_share"]["other"] < best["cpu_share"]["other"]:
                best = r
            if r["cpu_share"]["other"] <= DISTURBED:
                break
            log(f"  {r['cpu_share']['other']:.2f} cores busy elsewhere during the run, measuring again")
        return best

    def load_run_once(self, method, nsinks, listeners, window, warmup, tag):
        """`nsinks` sinks with a music feeder each and `listeners` listeners per sink of `method`;
        CPU and stream health over `window` seconds after `warmup`."""
        sinks = [self.sink(f"{tag}-{i}") for i in range(nsinks)]
        feeders = []
        for s in sinks:
            feeders.append(self.pacat(s, open(self.music, "rb")))
            time.sleep(STAGGER_S)
        # The VMs are already playing when their listeners come (a playback start while the relay
        # captures is measured by the latency runs: "playback start -> first audio").
        time.sleep(FEEDER_LEAD_S)
        streams, ps = [], []
        for s in sinks:
            for k in range(listeners):
                st, p = self.listen(method, s, decode=False, tag=f"#{k}")
                streams += st
                ps += p
                if p:
                    time.sleep(STAGGER_S)
        time.sleep(warmup)
        self.check_alive()
        pids = {"method": ([self.relay.pid] if method == "relay" else [p.pid for p in ps]),
                "pulseaudio": [self.daemon.pid], "feeders": [f.pid for f in feeders], "listeners": [os.getpid()]}
        def snap():
            return time.time(), machine_busy_s(), {k: sum(cpu_s(p) for p in v) for k, v in pids.items()}, \
                [(s.packets, s.gaps) for s in streams]
        th0 = threads_cpu_s(self.relay.pid) if method == "relay" else {}
        t0, b0, c0, n0 = snap()
        time.sleep(window)
        t1, b1, c1, n1 = snap()
        th1 = threads_cpu_s(self.relay.pid) if method == "relay" else {}
        self.check_alive()
        dead = [p.name for p in ps + feeders if p.poll() is not None]
        dead_logs = {p.name: f"exit {p.returncode}: " + " | ".join(p.log.read_text(errors="replace").splitlines()[-3:])
                     for p in ps + feeders if p.poll() is not None}
        self.stop_listeners(streams, ps)
        self.procs.stop(feeders)
        self.drop_sinks(sinks)
        dt = t1 - t0
        share = {k: (c1[k] - c0[k]) / dt for k in c0}
        share["other"] = (b1 - b0) / dt - sum(share.values())
        rates = [(b[0] - a[0]) / dt for a, b in zip(n0, n1)]
        gaps = sum(b[1] - a[1] for a, b in zip(n0, n1))
        r = {"method": method, "sinks": nsinks, "listeners_per_sink": listeners, "window_s": round(dt, 2),
             "cpu_share": {k: round(v, 4) for k, v in share.items()},
             "machine_busy_cores": round((b1 - b0) / dt, 3),
             "method_pct_per_stream": 100 * share["method"] / nsinks,
             "pulseaudio_pct_per_stream": 100 * share["pulseaudio"] / nsinks,
             "feeder_pct_per_stream": 100 * share["feeders"] / nsinks,
             "pkts_per_s_min": min(rates), "pkts_per_s_max": max(rates), "pkts_per_s_mean": statistics.mean(rates),
             "gaps": gaps, "dead_processes": dead, "dead_process_logs": dict(list(dead_logs.items())[:6])}
        if method == "relay":
            # Delay from the packet's capture stamp to its arrival, per stream: at the window's
            # start and end (a stream falling behind real time shows as growth) and overall.
            lags, growth = [], []
            for s in streams:
                w = [(t, l) for t, l in s.lags if t0 <= t <= t1]
                lags += [l * 1000 for _, l in w]
                first = [l for t, l in w if t < t0 + 1]
                last = [l for t, l in w if t > t1 - 1]
                if first and last:
                    growth.append((statistics.median(last) - statistics.median(first)) * 1000)
            r.update(lag_p50_ms=pct(lags, 0.5), lag_p99_ms=pct(lags, 0.99), lag_max_ms=max(lags, default=None),
                     lag_growth_max_ms=max(growth, default=None))
        if th1:
            busy = sorted(((th1[t][1] - th0.get(t, ("", 0))[1]) / dt, th1[t][0]) for t in th1)[::-1]
            r["relay_busiest_threads"] = [(name, round(share, 3)) for share, name in busy[:3]]
        ok = (not dead and gaps == 0 and r["pkts_per_s_min"] >= 97 and r["pkts_per_s_max"] <= 103
              and (method != "relay" or (r["lag_growth_max_ms"] or 0) < 50))
        r["realtime"] = ok
        log(f"  {method} x{nsinks} ({listeners} listener(s) each): {r['method_pct_per_stream']:.2f} % of a core per stream, "
            f"pulseaudio {r['pulseaudio_pct_per_stream']:.2f} %/stream, machine {r['machine_busy_cores']:.2f} cores, "
            f"pkts/s {r['pkts_per_s_min']:.1f}-{r['pkts_per_s_max']:.1f}, gaps {gaps}"
            + (f", lag p50/p99 {fmt_ms(r['lag_p50_ms'])}/{fmt_ms(r['lag_p99_ms'])} ms, growth {fmt_ms(r['lag_growth_max_ms'])} ms, "
               f"busiest relay threads {r.get('relay_busiest_threads')}" if method == "relay" else "") + ("" if ok else "  ** NOT REAL-TIME **"))
        return r

    def relay_idle(self, seconds=3.0):
        """The relay's CPU share with no listener (leftovers of earlier sinks would show here)."""
        time.sleep(0.5)
        c0, t0 = cpu_s(self.relay.pid), time.time()
        time.sleep(seconds)
        return round((cpu_s(self.relay.pid) - c0) / (time.time() - t0), 4)

    def run(self):
        a, res = self.a, {"latency": {}, "cpu": {}, "listeners": {}, "scale": []}
        self.start_daemon()
        self.start_relay()
        res["relay_idle_start"] = self.relay_idle()
        phases = set(a.phases.split(","))
        methods = ["relay", "opusenc"] + (["ffmpeg"] if self.have_ffmpeg else [])
        if "latency" in phases:
            secs = LEAD_S + a.clicks * 0.4 + 0.5
            for i, group in enumerate([["floor"], ["relay", "relay-http"], ["opusenc"]]
                                      + ([["ffmpeg"]] if self.have_ffmpeg else [])):
                log(f"latency: {' + '.join(group)}, {a.clicks} clicks (~{secs:.0f} s)")
                res["latency"].update(self.latency(group, secs, secs - 0.5, seed=11 + i))
            log(f"latency: opusenc-default, capped at {a.default_cap:g} s (clicks in the first {a.default_cap * 2 / 3:.0f} s)")
            res["latency"].update(self.latency(["opusenc-default"], a.default_cap, a.default_cap * 2 / 3, seed=21))
        if phases & {"cpu", "scale"}:
            self.music.write_bytes(music(FEEDER_LEAD_S + a.warmup + a.window + 15))
        if "cpu" in phases:
            for m in methods:
                log(f"cpu: {m}, {a.streams} sinks, 1 listener each")
                res["cpu"][m] = self.load_run(m, a.streams, 1, a.window, a.warmup, f"cpu-{m}")
            for n in (1, 1 + a.extra_listeners):
                log(f"cpu: relay, 1 sink, {n} listener(s)")
                res["listeners"][str(n)] = self.load_run("relay", 1, n, a.window, a.warmup, f"lis{n}")
        if "scale" in phases:
            for n in a.scale:
                log(f"scale: relay, {n} sinks")
                res["scale"].append(self.load_run("relay", n, 1, a.window, a.warmup, f"scale{n}"))
            if not a.quick:
                # parec | opusenc costs a PulseAudio client per listener besides the VM's own, and the
                # daemon's native protocol takes at most 64 clients: the largest count that fits,
                # then the largest of --scale (which may not).
                for n in sorted({min(max(a.scale), PULSE_MAX_CLIENTS // 2 - 2), max(a.scale)}):
                    log(f"scale: opusenc (tuned), {n} sinks")
                    res["scale"].append(self.load_run("opusenc", n, 1, a.window, a.warmup, f"scale{n}-opusenc"))
        res["relay_log_tail"] = [l for f in self.tmp.glob("*-relay.log") for l in f.read_text(errors="replace").splitlines()][-20:]
        res["relay_idle_end"] = self.relay_idle()
        res["relay_channels_end"] = len(self.modules_made)
        log(f"relay idle CPU: {100 * res['relay_idle_start']:.2f} % of a core at the start, {100 * res['relay_idle_end']:.2f} % "
            f"at the end (after {len(self.modules_made)} sinks came and went)")
        res["pulseaudio_too_many_connections"] = sum(1 for l in (self.tmp / "pulse" / "pulseaudio.log").read_text(errors="replace")
                                                     .splitlines() if "Too many connections" in l)
        res["pulseaudio_log_errors"] = [l for l in (self.tmp / "pulse" / "pulseaudio.log").read_text(errors="replace").splitlines()
                                        if l.startswith("E:")][-20:]
        return res


def fmt_ms(v):
    return "–" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


# ---------------------------------------------------------------------------------------- main

def build(skip):
    note = None
    if not skip:
        log("swift build -c release --product appliance (incremental; the first build takes a while)")
        b = subprocess.run([SWIFT, "build", "-c", "release", "--product", "appliance"], cwd=ROOT, text=True,
                           capture_output=True, timeout=3600)
        if b.returncode != 0:
            errors = [l for l in b.stdout.splitlines() + b.stderr.splitlines() if "error:" in l][:5]
            if not APPLIANCE.exists():
                raise SystemExit("swift build failed:\n" + "\n".join(errors))
            note = "swift build failed (work in progress in the tree?); benchmarked the previous binary"
            log(note + ":\n  " + "\n  ".join(errors))
    if not APPLIANCE.exists():
        raise SystemExit(f"{APPLIANCE} missing (run without --skip-build)")
    return note


def versions():
    def tryrun(cmd):
        try:
            return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True).stdout.strip() or "?"
        except OSError:
            return "?"
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    OpusDecoder()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "swift": tryrun([SWIFT, "--version"]).splitlines()[0],
        "pulseaudio": tryrun(["dpkg-query", "-W", "-f", "${Version}", "pulseaudio"]),
        "opus_tools": tryrun(["opusenc", "--version"]).splitlines()[0],
        "libopus": OpusDecoder.lib.opus_get_version_string().decode(),
        "ffmpeg": " ".join(tryrun(["ffmpeg", "-version"]).split()[:3]) if shutil.which("ffmpeg") else None,
        "python": tryrun(["/usr/bin/python3", "--version"]),
        "git_head": tryrun(["git", "rev-parse", "--short", "HEAD"]),
        "tree_dirty": bool(tryrun(["git", "status", "--porcelain", "--", "Sources"]).strip("?")),
        "appliance_binary_mtime": datetime.datetime.fromtimestamp(APPLIANCE.stat().st_mtime, datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
    }


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_feed":
        return feeder_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=100, help="clicks per latency run")
    ap.add_argument("--default-cap", type=float, default=30, help="seconds of the default `parec | opusenc` run")
    ap.add_argument("--streams", type=int, default=8, help="sinks in the CPU runs")
    ap.add_argument("--extra-listeners", type=int, default=50)
    ap.add_argument("--window", type=float, default=10, help="CPU measurement window, seconds")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--scale", default="16,32,48", help="sink counts of the real-time capacity runs")
    ap.add_argument("--ffmpeg-page-us", type=int, default=10000, help="ffmpeg -page_duration (µs)")
    ap.add_argument("--phases", default="latency,cpu,scale")
    ap.add_argument("--quick", action="store_true", help="30 clicks, short windows, fewer sinks (smoke test)")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--out", default=str(HERE))
    a = ap.parse_args()
    if a.quick:
        a.clicks, a.default_cap, a.streams, a.extra_listeners, a.window, a.warmup = 30, 15, 4, 20, 4, 2
        a.scale = "8,16" if a.scale == "16,32,48" else a.scale
    a.scale = [int(x) for x in str(a.scale).split(",") if x]
    if not (5 <= a.clicks <= 1000 and 5 <= a.default_cap <= 300 and 1 <= a.streams <= 128 and 0 < a.window <= 120
            and 0 <= a.extra_listeners <= 500 and all(1 <= n <= 128 for n in a.scale)):
        raise SystemExit("argument out of range")
    for tool in ("pulseaudio", "pacat", "parec", "pactl", "opusenc", "stdbuf"):
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` missing: apt-get install -y pulseaudio pulseaudio-utils opus-tools")
    if not shutil.which("ffmpeg"):
        log("ffmpeg not found: its column is skipped (apt-get install -y --no-install-recommends ffmpeg)")

    tmp = Path(tempfile.mkdtemp(prefix="audio-bench-"))
    # Clients (pacat, parec, pactl, ffmpeg, the relay's libpulse) keep their cookie and config
    # out of /root; the server is always named explicitly.
    env = dict(os.environ, HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "home" / ".config"))
    env.pop("PULSE_SERVER", None)
    (tmp / "home").mkdir()
    procs = Procs(tmp, env)

    def on_signal(sig, frame):
        raise SystemExit(f"signal {sig}")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    started = time.time()
    bench = None
    try:
        build_note = build(a.skip_build)
        info = versions()
        bench = Bench(a, tmp, procs, env)
        results = bench.run()
    except BaseException:
        for log_file in sorted(tmp.glob("*.log")) + [tmp / "pulse" / "pulseaudio.log"]:
            try:
                tail = [l for l in log_file.read_text(errors="replace").splitlines() if "D-Bus" not in l and "cookie" not in l][-5:]
            except OSError:
                continue
            if tail:
                log(f"{log_file.name}:\n    " + "\n    ".join(tail))
        raise
    finally:
        if bench:
            bench.collector.stop()
        procs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    results["info"] = info
    results["info"]["build_note"] = build_note
    results["info"]["run_seconds"] = round(time.time() - started)
    results["params"] = vars(a)
    report(results, Path(a.out))


# -------------------------------------------------------------------------------------- report

COLS = [("relay", "relay WebSocket"), ("relay-http", "relay HTTP Ogg"), ("opusenc", "parec \\| opusenc tuned"),
        ("ffmpeg", "ffmpeg tuned"), ("opusenc-default", "parec \\| opusenc default"), ("floor", "raw capture floor (PCM)")]
RATIOS = [("opusenc", "relay / opusenc tuned"), ("ffmpeg", "relay / ffmpeg tuned"), ("opusenc-default", "relay / opusenc default")]


def summarize(res):
    lat, cpu, lis = res["latency"], res["cpu"], res["listeners"]
    s = {c: {} for c, _ in COLS}
    for c in s:
        if c in lat:
            s[c].update(p50=lat[c]["p50_ms"], p99=lat[c]["p99_ms"], matched=lat[c]["matched"], clicks=lat[c]["clicks"],
                        first_audio=lat[c]["first_audio_ms"], silent=lat[c]["silent_ms"], lost_start=lat[c].get("lost_at_start_ms"))
        if c in cpu:
            s[c].update(cpu=cpu[c]["method_pct_per_stream"], pulse=cpu[c]["pulseaudio_pct_per_stream"],
                        per_core=100 / cpu[c]["method_pct_per_stream"] if cpu[c]["method_pct_per_stream"] else None,
                        per_core_with_daemon=100 / (cpu[c]["method_pct_per_stream"] + cpu[c]["pulseaudio_pct_per_stream"]))
    if len(lis) == 2:
        (n1, r1), (n2, r2) = sorted(lis.items(), key=lambda kv: int(kv[0]))
        extra = int(n2) - int(n1)
        s["relay"]["per_listener"] = 100 * (r2["cpu_share"]["method"] - r1["cpu_share"]["method"]) / extra
        s["relay"]["one_listener_cpu"] = 100 * r1["cpu_share"]["method"]
        s["relay"]["many_listener_cpu"] = 100 * r2["cpu_share"]["method"]
        s["relay"]["listener_counts"] = (int(n1), int(n2))
        s["relay"]["listener_gaps"] = r2["gaps"]
        for c in ("opusenc", "ffmpeg"):  # the plain way: another pipeline per listener
            if "cpu" in s[c]:
                s[c]["per_listener"] = s[c]["cpu"]
    warnings = []
    for c, r in lat.items():
        if r["matched"] < r["clicks"] and c != "opusenc-default":
            warnings.append(f"{c}: only {r['matched']} of {r['clicks']} clicks detected")
        if r.get("gaps"):
            warnings.append(f"{c}: {r['gaps']} sequence gaps during the latency run")
    fl, rl = lat.get("floor", {}).get("first_audio_ms"), lat.get("relay", {}).get("first_audio_ms")
    lost = lat.get("relay", {}).get("lost_at_start_ms")
    if fl is not None and rl is not None and rl - fl > 300:
        warnings.append(f"relay: the first sound after playback starts reaches its listeners {rl:,.0f} ms after the feeder's "
                        f"first write, {rl - fl:,.0f} ms later than the raw capture's ({fl:,.0f} ms)"
                        + (f"; {lost:,.0f} ms of the sound's start never arrive (made-up silence instead)" if lost and lost > 100 else ""))
    for c, r in lat.items():
        if (r.get("other_cores") or 0) > DISTURBED and c != "relay-http":
            warnings.append(f"{c} latency run: {r['other_cores']:.2f} cores busy elsewhere (disturbed run)")
        if (r.get("silent_ms") or 0) > 50:
            warnings.append(f"{c}: {r['silent_ms']:,.0f} ms of digital silence between real audio (the feeder never plays any)")
    for r in list(cpu.values()) + list(lis.values()) + res["scale"]:
        if r["cpu_share"]["other"] > DISTURBED:
            warnings.append(f"{r['method']} x{r['sinks']}: {r['cpu_share']['other']:.2f} cores busy elsewhere (disturbed run)")
        if not r["realtime"]:
            warnings.append(f"{r['method']} x{r['sinks']} ({r['listeners_per_sink']} listener(s) each) was not real-time: "
                            f"{r['pkts_per_s_min']:.1f}-{r['pkts_per_s_max']:.1f} packets/s per stream, {r['gaps']} gaps"
                            + (f", delay growth {fmt_ms(r.get('lag_growth_max_ms'))} ms" if r.get("lag_growth_max_ms") is not None else "")
                            + (f", {len(r['dead_processes'])} processes exited, e.g. {next(iter(r['dead_process_logs'].items()))}"
                               if r["dead_processes"] else ""))
    return s, warnings


def report(results, out):
    s, warnings = summarize(results)
    results["summary"], results["warnings"] = s, warnings
    i, p, lat = results["info"], results["params"], results["latency"]
    cols = [(c, label) for c, label in COLS if s[c] or c in ("ffmpeg",)]

    def row(label, key, fmt, ratio=True):
        vals = {c: s[c].get(key) for c, _ in cols}
        cells = ["–" if v is None else fmt(v) for v in vals.values()]
        rs = []
        for other, _ in RATIOS:
            x, y = vals.get("relay"), vals.get(other)
            rs.append(f"{x / y:.2f}" if ratio and isinstance(x, (int, float)) and isinstance(y, (int, float)) and y else "")
        return "| " + " | ".join([label] + cells + rs) + " |"

    f1 = lambda v: fmt_ms(v)
    f2 = lambda v: f"{v:.2f}"
    f0 = lambda v: f"{v:,.0f}"
    n = p["streams"]
    nl = s["relay"].get("listener_counts", (1, 1 + p["extra_listeners"]))
    for c in s:
        if "matched" in s[c]:
            s[c]["delivered"] = f"{s[c]['matched']} / {s[c]['clicks']}"
    ffmpeg_note = "" if i.get("ffmpeg") else " · ffmpeg not installed (`apt-get install -y --no-install-recommends ffmpeg`): its column is empty"
    lines = [
        "# Audio relay benchmark",
        "",
        f"{i['date']} · {i['nproc']} CPUs ({i['cpu']}) · Linux {i['kernel']} · {i['swift']} · PulseAudio {i['pulseaudio']} · "
        f"{i['opus_tools']} · {i['libopus']} · {i['ffmpeg'] or 'no ffmpeg'} · {i['python']} · "
        f"git {i['git_head']}{' + uncommitted Sources/' if i['tree_dirty'] else ''} · appliance built {i['appliance_binary_mtime']}"
        f" · run took {i['run_seconds']} s{ffmpeg_note}",
        "",
        "One private PulseAudio daemon (rlimit-nofile 4096), 48 kHz stereo s16le null sinks, each fed like QEMU does: "
        f"`pacat --latency-msec={FEED_LATENCY_MS}` in real time. relay = `appliance audio-relay` (release build; libpulse "
        "record stream with 10 ms fragments, Opus 64 kbit/s, 10 ms frames, restricted low delay, complexity 10); "
        "WebSocket = one message per packet, HTTP = Ogg/Opus, a page per packet. opusenc tuned = `parec --latency-msec=10 | "
        "stdbuf -o0 opusenc --bitrate 64 --framesize 10 --set-ctl-int 14000=0 --max-delay 1` (the relay's codec settings; "
        "no 2 s decision delay, a page per packet, unbuffered stdout); opusenc default = `parec | opusenc` with no options "
        f"(96 kbit/s, 20 ms frames), run for {p['default_cap']:g} s; ffmpeg tuned = `ffmpeg -f pulse -fragment_size {CHUNK_BYTES} "
        f"-i SINK.monitor -c:a libopus -b:a 64k -application lowdelay -frame_duration 10 -page_duration {p['ffmpeg_page_us']} "
        "-flush_packets 1 -f ogg -`; raw capture floor = `parec --latency-msec=10` PCM, no encoding.",
        "",
        f"Latency: a 10 ms full-scale 1 kHz click every 300-500 ms ({p['clicks']} per run) into low noise (-60 dBFS); from the "
        "click's write into pacat's pipe to the arrival (wall clock) of the packet / Ogg page / PCM read whose decoded audio "
        f"carries its onset. The listeners connect 1 s before the feeder starts (an idle VM, then a sound); clicks start "
        f"{LEAD_S:g} s into the playback. Playback start -> first audio: from the feeder's first write to the first decoded "
        "block that is not digital silence (includes PulseAudio starting the new playback stream, the same for every method). "
        f"CPU: {n} sinks playing continuous music-like audio (feeders started {FEEDER_LEAD_S:g} s before the listeners), one "
        f"listener each, {p['window']:g} s after {p['warmup']:g} s warm-up; % of one core per stream from utime+stime of the "
        f"relay process (of parec + opusenc, of ffmpeg); per listener: 1 sink with {nl[0]} vs {nl[1]} WebSocket listeners.",
        "",
        "| | " + " | ".join(label for _, label in cols) + " | " + " | ".join(l for _, l in RATIOS) + " |",
        "|---|" + "---:|" * (len(cols) + len(RATIOS)),
        row("click -> listener latency p50, ms", "p50", f1),
        row("click -> listener latency p99, ms", "p99", f1),
        row("clicks detected / written", "delivered", str, ratio=False),
        row("playback start -> first audio at the listener, ms", "first_audio", f1),
        row("of which audio lost (never delivered), ms", "lost_start", f1, ratio=False),
        row("digital silence amid the audio after that (lost), ms", "silent", f1, ratio=False),
        row(f"CPU per stream, % of a core ({n} streams)", "cpu", f2),
        row("PulseAudio daemon CPU per stream, % (feeder + capture)", "pulse", f2),
        row("streams per core, derived (100 % / CPU per stream)", "per_core", f0),
        row("streams per core counting the daemon's share", "per_core_with_daemon", f0),
        row(f"CPU per extra listener, % of a core (relay: {nl[0]} -> {nl[1]} listeners on a sink; others: a pipeline each)",
            "per_listener", lambda v: f"{v:.3f}"),
    ]
    rl = lat.get("relay", {})
    if rl:
        lines += ["", "Relay internals in the latency run: capture stamp of the click (packet stamp + onset offset) - write "
                  f"p50 {fmt_ms(rl.get('stamp_minus_write_p50_ms'))} ms / p99 {fmt_ms(rl.get('stamp_minus_write_p99_ms'))} ms; "
                  f"arrival - capture stamp over all packets p50 {fmt_ms(rl.get('arrival_minus_stamp_p50_ms'))} ms / p99 "
                  f"{fmt_ms(rl.get('arrival_minus_stamp_p99_ms'))} ms; {rl.get('gaps', 0)} sequence gaps; "
                  f"{rl.get('stamp_steps_not_10ms', 0)} stamp steps that are not 10 ms (silence filler or capture jumps)."]
    if "relay_idle_start" in results:
        lines += ["", f"Relay process with no listener: {100 * results['relay_idle_start']:.2f} % of a core at the start of the run, "
                  f"{100 * results['relay_idle_end']:.2f} % at its end, after {results['relay_channels_end']} sinks came and went."]
    sc = [results["cpu"].get("relay")] + results["scale"]
    sc = [r for r in sc if r]
    if sc:
        lines += ["", "Real-time capacity (each sink with a music feeder and one listener; 2 cores shared by relay, daemon, "
                  "feeders and this script's listeners):", "",
                  "| method | sinks | method CPU, cores | daemon CPU, cores | feeders, cores | listeners (script), cores | "
                  "machine busy, cores | packets/s per stream min-max | gaps | arrival - capture stamp p50 / p99 ms | "
                  "its drift over the window, ms | relay's busiest thread, cores | real-time |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        extra = [results["cpu"].get("opusenc"), results["cpu"].get("ffmpeg")]
        for r in sorted(sc, key=lambda r: (r["method"] != "relay", r["sinks"])) + [r for r in extra if r]:
            cs = r["cpu_share"]
            lines.append(f"| {r['method']} | {r['sinks']} | {cs['method']:.3f} | {cs['pulseaudio']:.3f} | {cs['feeders']:.3f} | "
                         f"{cs['listeners']:.3f} | {r['machine_busy_cores']:.2f} | {r['pkts_per_s_min']:.1f}-{r['pkts_per_s_max']:.1f} | "
                         f"{r['gaps']} | " + (f"{fmt_ms(r['lag_p50_ms'])} / {fmt_ms(r['lag_p99_ms'])} | {fmt_ms(r['lag_growth_max_ms'])}"
                                               if r["method"] == "relay" else "– | –")
                         + " | " + (f"{r['relay_busiest_threads'][0][1]:.2f} ({r['relay_busiest_threads'][0][0]})"
                                    if r.get("relay_busiest_threads") else "–")
                         + f" | {'yes' if r['realtime'] else '**no**'} |")
    lines += ["", "Latency runs, all clicks, ms: " + "; ".join(
        f"{c} " + ", ".join(f"{x:.0f}" for x in lat[c]["latencies_ms"][:12]) + (" ..." if len(lat[c]["latencies_ms"]) > 12 else "")
        for c, _ in COLS if c in lat) + "."]
    dropped = {c: lat[c].get("feeder_dropped_chunks") for c, _ in COLS if c in lat and c != "relay-http"}
    if dropped:
        lines += ["", "10 ms noise chunks the feeder dropped in its first 1.5 s because pacat had not taken the previous one "
                  "yet (PulseAudio starts a new playback stream only after a few hundred ms; without this the backlog would "
                  "stay in front of the sink and add to every latency): " + ", ".join(f"{c} {v}" for c, v in dropped.items()) + "."]
    lines += ["", f"Notes: {i['nproc']} cores shared by everything (relay, daemon, feeders, encoders, this script's listeners and "
              "decoders); nothing is pinned. Latency includes the feeder's playback buffer in the daemon (pacat asks for "
              f"{FEED_LATENCY_MS} ms, as QEMU does) and the capture, which every method pays alike: the raw capture floor shows "
              "that part; the encoding methods add framing, encoder delay and transport. The relay's WebSocket and HTTP listeners "
              "measure the same clicks on one sink (one capture and encoder, two listeners); every other method has a sink and "
              "a run of its own. Clicks are matched to onsets by stream position (the random spacing makes the offset unique), "
              "so a method seconds late still gets its clicks right; \"detected\" below \"written\" means clicks that never "
              "arrived within the run (opusenc default: its encoder holds 2 s and Ogg pages up to 1 s, so clicks from the end "
              "of its run are still inside it when it is stopped). CPU is utime+stime from /proc/PID/stat of the relay process "
              "alone (the daemon is not its child here: the bench starts the daemon and the relay reuses it), of every parec "
              "and opusenc, of every ffmpeg; the daemon's CPU (feeder playback + the capture stream per sink) is common to all "
              "methods and reported on its own row. Streams per core (derived) = 100 % / CPU per stream; the real runs above "
              "check whether all streams stay real-time: 100 packets/s each, no sequence gaps, and no growing delay between "
              "a packet's capture stamp and its arrival. The relay captures and encodes every sink on libpulse's one mainloop "
              "thread (\"threaded-ml\"), so that thread's share (column \"relay's busiest thread\") is what bounds its "
              "streams, whatever the number of cores; the WebSocket and HTTP writes run on the NIO threads. A listener is "
              "this Python script (one thread for all), so its "
              "CPU is listed apart and is not charged to any method."]
    if results.get("pulseaudio_too_many_connections"):
        lines += ["", f"PulseAudio refused {results['pulseaudio_too_many_connections']} connections in this run (\"Too many "
                  f"connections ({PULSE_MAX_CLIENTS}), dropping incoming connection\": its native protocol takes at most "
                  f"{PULSE_MAX_CLIENTS} clients). `parec | opusenc` and ffmpeg need a client per listener besides each VM's "
                  "own, so one daemon cannot serve more than about 31 VMs with one listener each that way; the relay is one "
                  "client for all its sinks and listeners."]
    if i.get("build_note"):
        lines += ["", f"**{i['build_note']}**"]
    for w in warnings:
        lines += ["", f"**Warning: {w}**"]
    md = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "RESULTS.md").write_text(md)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(md)


if __name__ == "__main__":
    main()
