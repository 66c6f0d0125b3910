import Foundation

/// Web pages for the browser in a VM, served from the host by Python's http.server: on the
/// host's address on libvirt's NAT network, or on loopback for user-mode networking (which shows
/// the host's loopback to the guest as 10.0.2.2). Its access log records who fetched what.
final class TestSite: @unchecked Sendable {
    let port: Int
    /// The site's host as the guests see it.
    let host: String
    private let directory: String
    private let process = Process()

    /// The address a guest uses.
    var guestBase: String { "http://\(host):\(port)" }

    /// The first page writes the value of the cookie `color` into its text and paints its
    /// background with it, so that both the captured MHTML and the VM's screen show it.
    static let index = """
        <!doctype html><html><head><title>Cookie page</title></head>
        <body style="margin:0;height:100vh">
        <p id="v">reading cookie</p>
        <p><a id="next" href="/second.html">to the second page</a></p>
        <script>
        var m = document.cookie.match(/(?:^|; )color=([0-9a-f]{6})/);
        document.getElementById("v").textContent = "cookie-value:" + (m ? m[1] : "none");
        document.body.style.background = m ? "#" + m[1] : "#ffffff";
        </script></body></html>
        """
    static let second = """
        <!doctype html><html><head><title>Second page</title></head>
        <body><p>second-page-text</p></body></html>
        """

    /// Pages a worker clicks through in the full browser: each is one link covering the whole
    /// page, so a click anywhere on it follows the link; the first opens a new tab.
    static let tabPages = [
        "tab-a.html": #"<!doctype html><html><head><title>Tab A</title></head><body style="margin:0"><a href="/tab-b.html" target="_blank" style="display:block;width:100vw;height:100vh;background:#3060c0;color:#fff">tab-a-text: opens B in a new tab</a></body></html>"#,
        "tab-b.html": #"<!doctype html><html><head><title>Tab B</title></head><body style="margin:0"><a href="/tab-c.html" style="display:block;width:100vw;height:100vh;background:#30a060;color:#fff">tab-b-text: to C in this tab</a></body></html>"#,
        "tab-c.html": #"<!doctype html><html><head><title>Tab C</title></head><body style="margin:0;background:#c06030"><p>tab-c-text</p></body></html>"#,
    ]

    /// Plays a continuous tone through Web Audio (the browser image starts Chromium with
    /// autoplay allowed), for the audio path from the guest's sound card to a listener: 1 kHz,
    /// or the frequency in `?f=`.
    static let tone = """
        <!doctype html><html><head><title>Tone page</title></head>
        <body><p id="s">starting tone</p>
        <script>
        var ctx = new AudioContext();
        var osc = ctx.createOscillator();
        var gain = ctx.createGain();
        osc.type = "sine"; gain.gain.value = 0.5;
        osc.frequency.value = +(new URLSearchParams(location.search).get("f") || 1000);
        osc.connect(gain); gain.connect(ctx.destination); osc.start();
        setInterval(function () {
          if (ctx.state !== "running") ctx.resume();
          document.getElementById("s").textContent = "tone-" + ctx.state;
        }, 500);
        </script></body></html>
        """

    /// For the viewer's clipboard (clipboard_check.py): a textarea over the whole page. A paste
    /// navigates to `?pasted=<text>` (a captured page the test reads); with `?copy=<text>` the
    /// text is selected on every click, and a copy puts exactly it on the clipboard.
    static let clipboard = """
        <!doctype html><html><head><title>Clipboard page</title>
        <style>html, body { margin: 0; height: 100%; }
        textarea { box-sizing: border-box; width: 100%; height: 100%; font: 40px sans-serif; }</style></head>
        <body><textarea id="t"></textarea>
        <script>
        var t = document.getElementById("t");
        var copy = new URLSearchParams(location.search).get("copy");
        if (copy) t.value = copy;
        function selectAll() { if (copy) t.select(); }
        t.addEventListener("mouseup", function () { setTimeout(selectAll, 0); });
        t.focus(); selectAll();
        document.addEventListener("copy", function (e) {
          if (!copy) return;
          e.clipboardData.setData("text/plain", copy); e.preventDefault();
        });
        document.addEventListener("paste", function (e) {
          e.preventDefault();
          location.href = "/clipboard.html?pasted=" + encodeURIComponent(e.clipboardData.getData("text/plain"));
        });
        </script></body></html>
        """

    init(network: ApplianceProcess.Network = .nat) throws {
        port = try ApplianceProcess.freePort()
        let bind = network == .nat ? try NATNetwork.hostAddress() : "127.0.0.1"
        host = network == .nat ? bind : "10.0.2.2"
        directory = try makeTemporaryDirectory("site")
        try Self.clipboard.write(toFile: directory + "/clipboard.html", atomically: true, encoding: .utf8)
        try Self.index.write(toFile: directory + "/index.html", atomically: true, encoding: .utf8)
        try Self.second.write(toFile: directory + "/second.html", atomically: true, encoding: .utf8)
        try Self.tone.write(toFile: directory + "/tone.html", atomically: true, encoding: .utf8)
        for (name, html) in Self.tabPages { try html.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8) }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-m", "http.server", String(port), "--bind", bind, "--directory", directory]
        process.standardOutput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: accessLog, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: accessLog))
        try process.run()
    }

    private var accessLog: String { directory + ".access.log" }

    /// The client addresses that fetched `path` (http.server's log lines:
    /// `192.168.122.57 - - [date] "GET /index.html HTTP/1.1" 200 -`).
    func clients(fetching path: String) -> Set<String> {
        let log = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
        return Set(log.split(separator: "\n").compactMap { line in
            guard line.contains("\"GET \(path) ") else { return nil }
            return line.split(separator: " ").first.map(String.init)
        })
    }

    /// Bounded: Foundation's waitUntilExit can spin forever on Linux once the child is gone.
    func stop() {
        process.terminate()
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: accessLog)
    }
}

/// Decodes quoted-printable (MHTML bodies): soft line breaks and =XX escapes.
func decodeQuotedPrintable(_ text: String) -> String {
    var bytes: [UInt8] = []
    let source = Array(text.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=\n", with: "").utf8)
    var i = 0
    while i < source.count {
        if source[i] == UInt8(ascii: "="), i + 2 < source.count,
           let value = UInt8(String(decoding: source[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
            bytes.append(value)
            i += 3
        } else {
            bytes.append(source[i])
            i += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The share of a VM screen's pixels (from `virsh screenshot`, PNG or PPM) close to a colour,
/// measured by screen_share.py beside this file.
func screenShare(domain: String, color: String, directory: String) throws -> Double {
    let path = directory + "/screen.img"
    try runTool("/usr/bin/virsh", ["-c", "qemu:///system", "screenshot", domain, path])
    let output = try runScript("screen_share.py", [path, color])
    guard let share = Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw ApplianceProcess.Failure("screen_share.py said: \(output)")
    }
    return share
}
