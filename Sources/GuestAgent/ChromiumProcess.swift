// Starting and stopping one Chromium process as the unprivileged browser user.
//
// fork() in a threaded program: the child may only make async-signal-safe calls, so argv, envp
// and the group list are built before the fork and the child does nothing but setpgid,
// setgroups/setgid/setuid, prctl, chdir, dup2 and execve.
import Glibc

struct ChromiumConfig: Sendable {
    var executable = "/usr/bin/chromium"
    var user = "browser"
    var display = ":0"
    var profileDir = "/home/browser/profile"
    var devtoolsPort: UInt16 = 9222
    var extraArgs: [String] = []
    /// Bound on every page load the agent waits for.
    var loadTimeout = 30.0
}

/// The browser user's identity, looked up once per launch (the account may be created late).
struct BrowserUser {
    var uid: uid_t
    var gid: gid_t
    var home: String
    var groups: [gid_t]

    static func lookup(_ name: String) throws -> BrowserUser {
        guard let pw = getpwnam(name) else { throw SystemError(description: "no user \(name) (create it or pass --browser-user)") }
        let uid = pw.pointee.pw_uid, gid = pw.pointee.pw_gid
        let home = String(cString: pw.pointee.pw_dir)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: 64)
        if getgrouplist(name, gid, &groups, &count) < 0 { count = 0 }
        return BrowserUser(uid: uid, gid: gid, home: home, groups: Array(groups.prefix(Int(count))))
    }
}

//// The process group of the Chromium started last, for the agent's SIGTERM handler: a stopped
/// agent must not leave a browser behind (systemd would kill the cgroup; a test would not).
nonisolated(unsafe) var runningChromiumGroup: pid_t = 0

/// On SIGTERM/SIGINT: kill the browser's group, then exit (async-signal-safe calls only).
func installTerminationHandler() {
    for sig in [SIGTERM, SIGINT] {
        signal(sig) { sig in
            if runningChromiumGroup > 0 { kill(-runningChromiumGroup, SIGKILL) }
            _exit(128 + sig)
        }
    }
}

/// A running Chromium; `waitForExit` is called by exactly one thread (the supervisor).
final class ChromiumProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = Lock()
    private var exitStatus: Int32?
    /// Set before the agent itself stops it, so the exit is not reported as a crash.
    private var stopping = false

    private init(pid: pid_t) { self.pid = pid }

    /// `kiosk`: one full-screen page without browser controls; otherwise the normal window
    /// (address bar, tabs, back/forward, downloads), sized to the screen by /etc/chromium.d.
    static func launch(_ config: ChromiumConfig, kiosk: Bool, startURL: String) throws -> ChromiumProcess {
        let user = try BrowserUser.lookup(config.user)
        let p = config.profileDir
        var args = [
            config.executable,
            "--user-data-dir=\(p)",
            "--disk-cache-dir=\(p)/cache",
            // Loopback only: DevTools gives full control of the browser.
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=\(config.devtoolsPort)",
            "--remote-allow-origins=http://127.0.0.1:\(config.devtoolsPort)",
            "--no-first-run", "--no-default-browser-check", "--noerrdialogs",
            "--hide-crash-restore-bubble",
            "--password-store=basic", "--disable-background-networking",
            // No crashpad handler: it leaves the process group, so stop() could not reap it.
            "--disable-breakpad", "--disable-crash-reporter",
            "--autoplay-policy=no-user-gesture-required",
        ]
        args += kiosk ? ["--kiosk", "--start-fullscreen"] : ["--start-maximized"]
        args += config.extraArgs
        args.append(startURL)
        // HOME and the XDG dirs inside the profile, so a reset wipes everything the browser wrote.
        var env = [
            "PATH=/usr/local/bin:/usr/bin:/bin", "DISPLAY=\(config.display)", "HOME=\(p)/home",
            "XDG_CONFIG_HOME=\(p)/config", "XDG_CACHE_HOME=\(p)/cache", "XDG_DATA_HOME=\(p)/data",
            "USER=\(config.user)", "LOGNAME=\(config.user)",
        ]
        if let auth = getenv("XAUTHORITY") {
            env.append("XAUTHORITY=\(String(cString: auth))")
        } else if access("\(user.home)/.Xauthority", F_OK) == 0 {
            env.append("XAUTHORITY=\(user.home)/.Xauthority")
        }
        // The user's session bus and audio server live here when a session runs.
        if access("/run/user/\(user.uid)", F_OK) == 0 { env.append("XDG_RUNTIME_DIR=/run/user/\(user.uid)") }
        if let lang = getenv("LANG") { env.append("LANG=\(String(cString: lang))") }

        let changeUser = user.uid != geteuid()
        let argv = cStrings(args), envp = cStrings(env)
        defer { freeCStrings(argv, args.count); freeCStrings(envp, env.count) }
        let groups = user.groups
        let (uid, gid) = (user.uid, user.gid)
        let workdir = strdup(p)!
        defer { free(workdir) }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }

        let pid = groups.withUnsafeBufferPointer { groupList -> pid_t in
            let pid = fork()
            guard pid == 0 else { return pid }
            // Child: async-signal-safe calls only.
            setpgid(0, 0)  // its own process group, so stop() reaches renderers and zygotes too
            if devnull >= 0 { dup2(devnull, 0) }
            if changeUser {
                if setgroups(groupList.count, groupList.baseAddress) != 0 || setgid(gid) != 0 || setuid(uid) != 0 { _exit(126) }
            }
            chdir(workdir)
            execve(argv[0]!, argv, envp)
            _exit(127)
        }
        guard pid > 0 else { throw SystemError.errno("fork") }
        runningChromiumGroup = pid
        log("started \(config.executable) pid \(pid) as \(config.user) (uid \(user.uid)), DevTools on 127.0.0.1:\(config.devtoolsPort)")
        return ChromiumProcess(pid: pid)
    }

    /// Blocks until the process exits (supervisor thread only); returns a description.
    func waitForExit() -> String {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { status = -1; break }
        }
        // Leftover renderers/zygotes of this browser go with it.
        kill(-pid, SIGKILL)
        lock.withLock { exitStatus = status; lock.broadcast() }
        if status == -1 { return "lost track of chromium pid \(pid)" }
        let signal = status & 0x7f
        if signal != 0 { return "chromium (pid \(pid)) was killed by signal \(signal)" }
        return "chromium (pid \(pid)) exited with status \((status >> 8) & 0xff)"
    }

    var wasStopped: Bool { lock.withLock { stopping } }
    var hasExited: Bool { lock.withLock { exitStatus != nil } }

    /// SIGTERM to the whole group, SIGKILL after `grace` seconds; waits for the supervisor to
    /// reap it (bounded too).
    func stop(grace: Double = 5) {
        lock.withLock { stopping = true }
        kill(-pid, SIGTERM)
        let exited = lock.withLock { lock.wait(until: Deadline(seconds: grace)) { exitStatus != nil } }
        if !exited {
            log("chromium pid \(pid) ignored SIGTERM for \(grace) s: SIGKILL")
            kill(-pid, SIGKILL)
            _ = lock.withLock { lock.wait(until: Deadline(seconds: 5)) { exitStatus != nil } }
        }
    }
}

private func cStrings(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
    let list = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
    for (i, s) in strings.enumerated() { list[i] = strdup(s) }
    list[strings.count] = nil
    return list
}

private func freeCStrings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, _ count: Int) {
    for i in 0..<count { free(list[i]) }
    list.deallocate()
}
