import Foundation
import VMCloudCore

/// Where `appliance install` puts things, under an optional root (DESTDIR) so that a test or a
/// package build can install into a scratch tree. Paths inside files are the host's, not the root's.
package struct InstallLayout {
    package init(root: String = "/", prefix: String = "/usr/local", stateDir: String = "/var/lib/appliance") {
        (self.root, self.prefix, self.stateDir) = (root, prefix, stateDir)
    }

    var root = "/"
    var prefix = "/usr/local"
    var stateDir = "/var/lib/appliance"
    var unitName = "vmcloud-appliance.service"

    var binary: String { prefix + "/bin/appliance" }
    /// InstalledFiles looks for the pages and the OpenAPI document here (beside ../bin).
    var shareDir: String { prefix + "/share/vmcloud" }
    var unit: String { "/etc/systemd/system/" + unitName }
    var config: String { "/etc/vmcloud/appliance.json" }

    /// A host path as it lies under `root`.
    func staged(_ path: String) -> String {
        root == "/" || root.isEmpty ? path : (root as NSString).appendingPathComponent(path)
    }
}
