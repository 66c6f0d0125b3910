// The browser's profile directory: wiped completely on reset (cookies, history, cache, local
// storage, service workers all live below it, HOME and XDG dirs included; see ChromiumProcess).
// The agent runs as root inside a directory the browser user can write, so it never follows a
// symlink while deleting: everything goes through openat/unlinkat relative to opened dirs.
import Glibc

enum ProfileDirectory {
    /// rm -rf `path` (absent is fine), then mkdir it owned by uid:gid, mode 0700.
    static func recreate(_ path: String, uid: uid_t, gid: gid_t) throws {
        guard path.hasPrefix("/"), path.split(separator: "/").count >= 2, !path.contains("/../"), !path.hasSuffix("/..") else {
            throw SystemError(description: "refusing to wipe profile directory \(path): needs an absolute path two levels deep")
        }
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let slash = trimmed.lastIndex(of: "/")!
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        let name = String(trimmed[trimmed.index(after: slash)...])
        try makeDirectories(parent)
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw SystemError.errno("open \(parent)") }
        defer { close(parentFD) }
        try removeEntry(name, in: parentFD, path: trimmed)
        guard mkdirat(parentFD, name, 0o700) == 0 else { throw SystemError.errno("mkdir \(trimmed)") }
        guard fchownat(parentFD, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 else { throw SystemError.errno("chown \(trimmed)") }
    }

    /// Removes `name` below the directory `dirFD`, recursively; symlinks are removed, not followed.
    private static func removeEntry(_ name: String, in dirFD: Int32, path: String) throws {
        var st = stat()
        if fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT { return }
            throw SystemError.errno("stat \(path)")
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError.errno("open \(path)") }
            guard let dir = fdopendir(fd) else { close(fd); throw SystemError.errno("fdopendir \(path)") }
            defer { closedir(dir) }  // closes fd too
            var children: [String] = []
            while let entry = readdir(dir) {
                let child = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if child != "." && child != ".." { children.append(child) }
            }
            for child in children { try removeEntry(child, in: fd, path: path + "/" + child) }
            guard unlinkat(dirFD, name, AT_REMOVEDIR) == 0 else { throw SystemError.errno("rmdir \(path)") }
        } else {
            guard unlinkat(dirFD, name, 0) == 0 || errno == ENOENT else { throw SystemError.errno("unlink \(path)") }
        }
    }
}
