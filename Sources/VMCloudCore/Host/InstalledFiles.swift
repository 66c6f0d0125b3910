import Foundation

/// Files the appliance ships beside its binary (the OpenAPI document, the static pages): found
/// where `make install` puts them, or in the source tree the binary was built from.
package enum InstalledFiles {
    /// The first existing path of `relative` (e.g. "docs/openapi.yaml").
    package static func locate(_ relative: String) -> String? {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let name = (relative as NSString).lastPathComponent
        let bin = executable.deletingLastPathComponent()
        let candidates = [
            // `appliance install`: <prefix>/bin/appliance and <prefix>/share/vmcloud/
            bin.appendingPathComponent("../share/vmcloud/\(name)").standardizedFileURL.path,
            "/usr/share/vmcloud/\(name)",
            // .build/<triple>/<config>/appliance and .build/<config>/appliance
            bin.appendingPathComponent("../../\(relative)").standardizedFileURL.path,
            bin.appendingPathComponent("../../../\(relative)").standardizedFileURL.path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    package static func contents(_ relative: String) -> String? {
        locate(relative).flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
    }
}
