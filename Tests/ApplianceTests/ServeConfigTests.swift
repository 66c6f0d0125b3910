import Foundation
import Testing
@testable import Appliance
@testable import VMCloud
@testable import VMCloudCore

/// Defaults, then the config file, then flags; bad values are clear errors, not ignored.
@Suite struct ServeConfigTests {
    let directory: String

    init() throws { directory = try makeTemporaryDirectory("config") }

    func writeConfig(_ json: String) throws -> String {
        let path = directory + "/\(UUID().uuidString).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func fileThenFlagsOverrideDefaults() throws {
        let file = try writeConfig(#"{"listen": "127.0.0.1:9000", "accel": "tcg", "memoryMiB": 512, "stateDir": "/srv/a"}"#)
        let command = try ServeCommand.parse(["--config", file, "--listen", "[::1]:9001", "--vcpus", "3"])
        let config = try command.resolvedConfig()
        #expect(config.listenHost == "::1" && config.listenPort == 9001, "the flag wins over the file")
        #expect(config.accel == .tcg && config.memoryMiB == 512 && config.vcpus == 3)
        #expect(config.imageDirectory == "/srv/a/image", "the default image lives in the state directory")
        #expect(try ServeCommand.parse([]).resolvedConfig() == ServeConfig())
        try FileManager.default.removeItem(atPath: directory)
    }

    @Test func audioIsOnUnlessTurnedOff() throws {
        #expect(try ServeCommand.parse([]).resolvedConfig().audio)
        let off = try writeConfig(#"{"audio": false}"#)
        #expect(try ServeCommand.parse(["--config", off]).resolvedConfig().audio == false)
        #expect(try ServeCommand.parse(["--config", off, "--audio"]).resolvedConfig().audio, "the flag wins over the file")
        #expect(try ServeCommand.parse(["--no-audio"]).resolvedConfig().audio == false)
        let bad = try writeConfig(#"{"audio": "yes"}"#)
        #expect { try ServeCommand.parse(["--config", bad]).resolvedConfig() } throws: { "\($0)".contains("'audio' must be") }
        try FileManager.default.removeItem(atPath: directory)
    }

    @Test func badConfigIsRefusedWithTheReason() throws {
        let cases: [(String, String)] = [
            (#"{"lisen": "0.0.0.0:1"}"#, "unknown key 'lisen'"),
            (#"{"memoryMiB": "lots"}"#, "'memoryMiB' must be a number"),
            (#"{"accel": "xen"}"#, "accel must be kvm, tcg or auto"),
            (#"{"listen": "nohostport"}"#, "HOST:PORT"),
            (#"[1, 2]"#, "not a JSON object"),
            (#"{"vcpus": 0}"#, "vcpus must be 1..256"),
            (#"{"vcpus": true}"#, "'vcpus' must be a number"),
            (#"{"image": 7}"#, "'image' must be a string"),
        ]
        for (json, reason) in cases {
            let command = try ServeCommand.parse(["--config", try writeConfig(json)])
            #expect { try command.resolvedConfig() } throws: { "\($0)".contains(reason) }
        }
        #expect { try ServeCommand.parse(["--listen", "1.2.3.4:99999"]).resolvedConfig() } throws: { "\($0)".contains("HOST:PORT") }
        #expect { try ServeCommand.parse(["--config", "/nonexistent.json"]).resolvedConfig() } throws: { "\($0)".contains("cannot read") }
        try FileManager.default.removeItem(atPath: directory)
    }
}
