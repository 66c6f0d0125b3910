// Command line of guest-agent; anything unknown is an error, not silently ignored.
import Glibc

let usage = """
    usage: guest-agent [--port PATH] [--browser file|chromium] [options]

    Runs inside the VM and serves the vmcloud host over a virtio-serial channel.

      --port PATH            use PATH instead of discovering the virtio port named
                             \(AgentLoop.portName) under /sys/class/virtio-ports
      --browser KIND         file (default): keep {homepage, cookies} in a state file and
                             load an http://IPv4 homepage after each configure, sent to
                             the host as a page with an MHTML capture and no screenshot;
                             chromium: drive Chromium through the DevTools protocol
    file browser:
      --state-file PATH      where it keeps its state (default /run/guest-agent/state.json)
    chromium browser (the agent runs as root and starts Chromium itself):
      --chromium PATH        the executable (default /usr/bin/chromium)
      --browser-user USER    runs Chromium as USER (default browser)
      --display DISPLAY      X display (default :0)
      --profile-dir PATH     profile, wiped on start and on every reset
                             (default /home/browser/profile)
      --devtools-port N      DevTools port on 127.0.0.1 (default 9222)
      --chromium-args ARGS   extra arguments, split on spaces
                             (e.g. "--headless=new --no-sandbox" to test on a host)
      --load-timeout SECONDS bound on each page load (default 30)
      -h, --help             print this help
    """

struct Options {
    enum BrowserKind: String { case file, chromium }

    var port: String?
    var browser = BrowserKind.file
    var stateFile = "/run/guest-agent/state.json"
    var chromium = ChromiumConfig()

    static func parse(_ args: [String]) -> Options {
        var options = Options()
        var rest = args.dropFirst()
        while let arg = rest.popFirst() {
            if arg == "-h" || arg == "--help" {
                print(usage)
                exit(0)
            }
            // --chromium-args takes values that start with "-"; the others must not.
            guard let value = rest.popFirst(), !value.isEmpty, arg == "--chromium-args" || !value.hasPrefix("-") else {
                fail(arg.hasPrefix("--") ? "\(arg) needs a value" : "unknown argument \(arg)")
            }
            switch arg {
            case "--port": options.port = value
            case "--state-file": options.stateFile = value
            case "--browser":
                guard let kind = BrowserKind(rawValue: value) else { fail("--browser is file or chromium") }
                options.browser = kind
            case "--chromium": options.chromium.executable = value
            case "--browser-user": options.chromium.user = value
            case "--display": options.chromium.display = value
            case "--profile-dir":
                guard value.hasPrefix("/") else { fail("--profile-dir needs an absolute path") }
                options.chromium.profileDir = value
            case "--devtools-port":
                guard let port = UInt16(value), port > 0 else { fail("--devtools-port needs a port number") }
                options.chromium.devtoolsPort = port
            case "--chromium-args": options.chromium.extraArgs = value.split(separator: " ").map(String.init)
            case "--load-timeout":
                guard let seconds = Double(value), seconds > 0, seconds <= 600 else { fail("--load-timeout needs 1...600 seconds") }
                options.chromium.loadTimeout = seconds
            default: fail("unknown argument \(arg)")
            }
        }
        return options
    }

    private static func fail(_ why: String) -> Never {
        log("error: \(why)")
        var text = Array((usage + "\n").utf8)
        _ = text.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }
}
