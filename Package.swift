// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "vmcloud",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "appliance", targets: ["Appliance"]),
        .executable(name: "guest-agent", targets: ["GuestAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // C system libraries.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPulse", pkgConfig: "libpulse", providers: [.apt(["libpulse-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        .systemLibrary(name: "COgg", pkgConfig: "ogg", providers: [.apt(["libogg-dev"])]),

        // Swift wrapper owning libvirt's C resources; no knowledge of the pool.
        .target(name: "Libvirt", dependencies: ["CLibvirt", .product(name: "Metrics", package: "swift-metrics")]),

        // Messages and framing shared by the host and the guest agent (Foundation-free so the
        // agent links statically and small).
        .target(name: "AgentProtocol"),

        // Screen images: PPM/PNG decoding, scaling and PNG encoding for screenshots and thumbnails.
        .target(name: "ScreenImage", dependencies: ["CZlib"]),

        // WebSocket <-> RFB relay to a VM's VNC unix socket, with view-only filtering.
        .target(
            name: "VNCBridge",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Opus encoding and Ogg/Opus pages for the audio streams.
        .target(name: "OggOpus", dependencies: ["COpus", "COgg"]),
        // PulseAudio capture per VM (libpulse), encoding once and the fan-out to listeners.
        // posix_spawn with a log file and an async exit: for pulseaudio, qemu-img and the tests'
        // helpers (Foundation's Process hangs in waitUntilExit after terminate on Linux).
        .target(name: "ChildProcess"),

        .target(
            name: "AudioRelay",
            dependencies: ["CPulse", "OggOpus", "ChildProcess", .product(name: "Logging", package: "swift-log")]
        ),

        // Below the API: the store (schema, records, checked state tables), the VM engine (pool,
        // machines, hypervisor, agents, crash watch), captures, the proxy's waker. No HTTP
        // server here: PackageLayoutTests keeps Hummingbird out of it.
        .target(
            name: "VMCloudCore",
            dependencies: [
                "Libvirt", "AgentProtocol", "AudioRelay", "ChildProcess", "ScreenImage",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The appliance's API and application over VMCloudCore: routes, access rules, viewers,
        // audio and proxy routes, the wiring (buildApplication), image builder, doctor,
        // installer. No command-line parsing here.
        .target(
            name: "VMCloud",
            dependencies: [
                "VMCloudCore", "Libvirt", "AgentProtocol", "VNCBridge", "AudioRelay", "ChildProcess", "ScreenImage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // `appliance`: the commands (serve, doctor, image, install, bench, ...) over VMCloud.
        .executableTarget(
            name: "Appliance",
            dependencies: [
                "VMCloud", "Libvirt", "AudioRelay", "VNCBridge",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "GuestAgent", dependencies: ["AgentProtocol"]),

        .testTarget(name: "AgentProtocolTests", dependencies: ["AgentProtocol"]),
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"]),
        .testTarget(name: "GuestAgentTests", dependencies: ["AgentProtocol"]),
        .testTarget(
            name: "VNCBridgeTests",
            dependencies: [
                "VNCBridge",
                .product(name: "WSClient", package: "swift-websocket"),
            ]
        ),
        .testTarget(name: "ScreenImageTests", dependencies: ["ScreenImage"]),
        // Decoding (opusdec), WAV parsing and tone analysis shared by the audio tests.
        .target(name: "AudioTestSupport", dependencies: ["AudioRelay", "ChildProcess"], path: "Tests/AudioTestSupport"),
        .testTarget(name: "OggOpusTests", dependencies: ["OggOpus", "AudioTestSupport"]),
        .testTarget(name: "AudioRelayTests", dependencies: ["AudioRelay", "ChildProcess", "OggOpus", "AudioTestSupport"]),
        .testTarget(
            name: "ApplianceTests",
            dependencies: [
                "VMCloud", "VMCloudCore", "Appliance", "Libvirt", "AgentProtocol", "AudioRelay", "ChildProcess", "OggOpus", "AudioTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "WSClient", package: "swift-websocket"),
            ],
            exclude: ["EndToEnd/screen_share.py", "EndToEnd/ws_fuzz.py", "EndToEnd/novnc_check.py", "EndToEnd/audio_listen.py", "EndToEnd/metrics_parse.py", "EndToEnd/monitor_check.py", "EndToEnd/clipboard_check.py", "EndToEnd/full_browser.py", "EndToEnd/viewer_driver.py", "EndToEnd/job_site.py"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
