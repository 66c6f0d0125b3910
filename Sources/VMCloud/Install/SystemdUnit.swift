import VMCloudCore
/// The service unit: after libvirtd (serve waits a minute for it anyway), restarted when it
/// crashes. Stopping it leaves the VMs running; the next start adopts them.
enum SystemdUnit {
    static func text(_ layout: InstallLayout) -> String {
        """
        [Unit]
        Description=vmcloud appliance: a pool of browser VMs served over a REST API
        Documentation=https://github.com/vmcloud/vmcloud
        After=network-online.target libvirtd.service
        Wants=network-online.target libvirtd.service

        [Service]
        Type=simple
        ExecStart=\(layout.binary) serve --config \(layout.config)
        Restart=on-failure
        RestartSec=5
        # serve makes the state directory reachable by libvirt-qemu (o+x) itself.
        ReadWritePaths=\(layout.stateDir)
        LimitNOFILE=65536

        [Install]
        WantedBy=multi-user.target

        """
    }
}
