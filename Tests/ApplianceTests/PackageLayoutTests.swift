import Foundation
import Testing

/// The package's layering, checked on its manifest and sources: the VMCloud library is the
/// appliance without its command line, so only the `appliance` executable may depend on
/// ArgumentParser; VMCloudCore is everything below the API (store, engine), so neither it nor
/// anything it depends on brings in Hummingbird, and none of its files imports it.
@Suite struct PackageLayoutTests {
    @Test func theManifestKeepsTheLayers() throws {
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

        // Below the API: no HTTP server framework, directly or through a local target.
        func closure(_ name: String) throws -> Set<String> {
            var seen: Set<String> = [], queue = [name]
            while let next = queue.popLast() {
                guard seen.insert(next).inserted, let target = targets.first(where: { $0["name"] as? String == next }) else { continue }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: target["dependencies"] ?? []), as: UTF8.self)
                // Local targets appear as "byName"; products as "product" with their package.
                for other in targets.compactMap({ $0["name"] as? String }) where json.contains("\"\(other)\"") { queue.append(other) }
                if json.contains("Hummingbird") || json.contains("hummingbird") { seen.insert("Hummingbird via \(next)") }
            }
            return seen
        }
        let core = try closure("VMCloudCore")
        #expect(core.contains("Libvirt") && core.contains("AudioRelay"), "the closure walks local targets: \(core.sorted())")
        #expect(!core.contains { $0.hasPrefix("Hummingbird") }, "VMCloudCore reaches Hummingbird: \(core.sorted())")
        #expect(!core.contains("VMCloud"), "VMCloudCore depends on the API layer")
        #expect(try closure("VMCloud").contains { $0.hasPrefix("Hummingbird") }, "the check can see Hummingbird where it is")
    }

    @Test func noFileBelowTheAPIImportsHummingbird() throws {
        let root = repositoryRoot + "/Sources/VMCloudCore"
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".swift") }
        #expect(files.count > 50, "the scan reads the core's sources: \(files.count)")
        for file in files {
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.range(of: #"^(@\w+ )*import (struct |class |enum |func )?Hummingbird"#, options: .regularExpression) != nil }
            #expect(imports.isEmpty, "\(file) imports \(imports)")
        }
    }
}
