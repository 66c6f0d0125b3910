import Foundation
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// `appliance install --root <tmp>` (what `make install DESTDIR=` runs): the layout, the modes,
/// a unit systemd accepts, and an edited config surviving a second install.
@Suite struct InstallTests {
    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func installLaysOutBinaryUnitConfigAndStateDirAndKeepsAnEditedConfig() async throws {
        let root = try makeTemporaryDirectory("install")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = InstallLayout(root: root)
        let installer = Installer(layout: layout, sourceBinary: CommandLine.arguments[0])
        _ = try installer.install()

        let binary = root + "/usr/local/bin/appliance"
        #expect(try mode(binary) == 0o755)
        for page in ["viewer.html", "audio.html", "openapi.yaml"] {
            #expect(FileManager.default.fileExists(atPath: root + "/usr/local/share/vmcloud/" + page))
        }
        let unit = root + "/etc/systemd/system/vmcloud-appliance.service"
        #expect(try mode(unit) == 0o644)
        let unitText = try String(contentsOfFile: unit, encoding: .utf8)
        for line in ["After=network-online.target libvirtd.service", "Restart=on-failure",
                     "ExecStart=/usr/local/bin/appliance serve --config /etc/vmcloud/appliance.json", "WantedBy=multi-user.target"] {
            #expect(unitText.contains(line + "\n"), "unit lacks \(line)")
        }
        let config = root + "/etc/vmcloud/appliance.json"
        #expect(try mode(config) == 0o644)
        var settings = ServeConfig()
        try settings.apply(file: config)   // serve accepts it
        #expect(settings.stateDir == "/var/lib/appliance")
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: root + "/var/lib/appliance", isDirectory: &isDir) && isDir.boolValue)
        #expect(try mode(root + "/var/lib/appliance") == 0o755)

        // An operator's edit survives a reinstall.
        try #"{"listen": "127.0.0.1:9090", "stateDir": "/srv/vmcloud"}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let second = try installer.install()
        #expect(second.contains { $0.hasPrefix("kept ") })
        #expect(try String(contentsOfFile: config, encoding: .utf8).contains("9090"))
        #expect(try mode(binary) == 0o755)
    }

    @Test func theUnitPassesSystemdAnalyzeVerify() async throws {
        let analyze = "/usr/bin/systemd-analyze"
        let root = try makeTemporaryDirectory("install-unit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = InstallLayout(root: root)
        _ = try Installer(layout: layout, sourceBinary: CommandLine.arguments[0]).install()
        var text = try String(contentsOfFile: layout.staged(layout.unit), encoding: .utf8)
        // scripts/setup.sh installs systemd (systemd-analyze): a missing one fails, never a silent pass.
        try #require(FileManager.default.isExecutableFile(atPath: analyze), "\(analyze) missing: run scripts/setup.sh")
        // verify checks that ExecStart exists: point it at the staged binary.
        text = text.replacingOccurrences(of: "ExecStart=" + layout.binary, with: "ExecStart=" + layout.staged(layout.binary))
        let unit = root + "/vmcloud-appliance.service"
        try text.write(toFile: unit, atomically: true, encoding: .utf8)
        let output = try await runTool(analyze, ["verify", unit])
        #expect(!output.contains("vmcloud-appliance.service:"), "systemd-analyze: \(output)")
    }
}
