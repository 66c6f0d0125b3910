import ArgumentParser
import Foundation
import VMCloud

struct InstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install this binary as a systemd service: binary, unit, default config, state directory.",
        discussion: """
            Idempotent: the binary, pages and unit are rewritten, an existing config file is \
            kept. Runs `systemctl daemon-reload` and `enable` only when systemd runs and --root is /.
            """
    )

    @Option(help: "Install into this tree instead of / (like make's DESTDIR).")
    var root = "/"

    @Option(help: "Prefix for bin/appliance and share/vmcloud.")
    var prefix = "/usr/local"

    @Option(help: "The state directory the config names and the unit may write.")
    var stateDir = "/var/lib/appliance"

    func run() async throws {
        let layout = InstallLayout(root: root, prefix: prefix, stateDir: stateDir)
        let installer = Installer(layout: layout, sourceBinary: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path)
        for line in try installer.install() { print(line) }
        for line in installer.activate() { print(line) }
    }
}
