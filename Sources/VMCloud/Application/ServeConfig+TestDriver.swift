import Foundation

extension ServeConfig {
    /// The appliance on libvirt's test driver in `directory` (state and image), user networking,
    /// no audio: for the reconcile bench and the API tests, which boot no guest, so an empty disk
    /// file stands in for the guest image (created here).
    package static func onTestDriver(directory: String) -> ServeConfig {
        _ = FileManager.default.createFile(atPath: directory + "/disk.qcow2", contents: Data())
        var config = ServeConfig()
        config.stateDir = directory
        config.image = directory
        config.libvirtURI = "test:///default"
        config.accel = .tcg
        config.network = .user
        config.audio = false
        return config
    }
}
