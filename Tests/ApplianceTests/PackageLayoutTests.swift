import Foundation
import Testing

/// The package's layering, checked on its manifest: the VMCloud library is the appliance without
/// its command line, so only the `appliance` executable may depend on ArgumentParser.
@Suite struct PackageLayoutTests {
    @Test func theLibraryHasNoCommandLineParser() throws {
        // Its own scratch path: `swift test` holds the lock on .build while this runs.
        let scratch = NSTemporaryDirectory() + "vmcloud-dump-package"
        let json = try runTool("/usr/bin/env", ["swift", "package", "--package-path", repositoryRoot, "--scratch-path", scratch, "dump-package"])
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let targets = try #require(manifest["targets"] as? [[String: Any]])
        func dependencies(_ name: String) throws -> String {
            let target = try #require(targets.first { $0["name"] as? String == name }, "no target \(name)")
            return String(decoding: try JSONSerialization.data(withJSONObject: target["dependencies"] ?? []), as: UTF8.self)
        }
        #expect(try !dependencies("VMCloud").contains("ArgumentParser"), "VMCloud depends on ArgumentParser")
        #expect(try dependencies("Appliance").contains("ArgumentParser"), "the check reads the manifest it means to")
        #expect(try dependencies("Appliance").contains("VMCloud"))
    }
}
