import Foundation

/// The operator's image files (`<state-dir>/images/`): what generic VMs boot from by name, and
/// where their disks are saved to. Paths are validated by `MachineValidation.storePath` first.
package struct ImageStore: Sendable {
    package let root: String

    package init(root: String) {
        self.root = root
    }

    package func path(_ relative: String) -> String { root + "/" + relative }

    package func contains(_ relative: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path(relative), isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    /// The files in the store (relative paths), for `GET /v1/images`.
    package func list() -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        while let name = walker.nextObject() as? String {
            if contains(name) { files.append(name) }
        }
        return files.sorted()
    }
}
