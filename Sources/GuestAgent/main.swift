// guest-agent: answers the host's requests on the virtio-serial port `org.vmcloud.agent.0`.
// Built fully static (no Foundation/ICU) so it can run from a bare busybox initramfs.
import Glibc

let agentVersion = "0.1.0"

let usage = """
    usage: guest-agent [--port PATH] [--state-file PATH]

    Runs inside the VM and serves the vmcloud host over a virtio-serial channel.

      --port PATH        use PATH instead of discovering the virtio port named
                         \(AgentLoop.portName) under /sys/class/virtio-ports
      --state-file PATH  where the file-backed browser keeps {homepage, cookies}
                         (default /run/guest-agent/state.json)
      -h, --help         print this help
    """

/// Parsed command line; anything unknown is an error, not silently ignored.
struct Options {
    var port: String?
    var stateFile = "/run/guest-agent/state.json"

    static func parse(_ args: [String]) -> Options {
        var options = Options()
        var rest = args.dropFirst()
        while let arg = rest.popFirst() {
            switch arg {
            case "-h", "--help":
                print(usage)
                exit(0)
            case "--port", "--state-file":
                guard let value = rest.popFirst(), !value.isEmpty, !value.hasPrefix("-") else {
                    fail("\(arg) needs a path")
                }
                if arg == "--port" { options.port = value } else { options.stateFile = value }
            default:
                fail("unknown argument \(arg)")
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

let options = Options.parse(CommandLine.arguments)
// A write to a vanished peer must come back as an error, not kill the agent.
signal(SIGPIPE, SIG_IGN)
log("starting version \(agentVersion), state file \(options.stateFile)")
let handler = MessageHandler(browser: FileBrowser(path: options.stateFile))
AgentLoop(portOverride: options.port, handler: handler).run()
