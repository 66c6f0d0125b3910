import Foundation
import VMCloudCore

/// The config file the unit starts serve with: the defaults written out, so that an operator
/// sees what to edit. Keys are ServeConfig's file keys.
enum DefaultConfig {
    static func text(_ layout: InstallLayout) -> String {
        """
        {
          "listen": "0.0.0.0:8080",
          "stateDir": "\(layout.stateDir)",
          "libvirtURI": "qemu:///system",
          "accel": "auto",
          "network": "nat",
          "audio": true,
          "logLevel": "info"
        }

        """
    }
}
