import Glibc

/// What `stat` says about a file, to notice that it changed: a Kubernetes Secret or ConfigMap volume
/// replaces its files by an atomic symlink swap (new inode), an editor in place (new size or time).
/// Used by everything that follows a mounted file (TLS certificates, the encryption policy, credentials).
public struct FileStamp: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modified: Int64
    public var modifiedNanos: Int64

    /// The stamp of `path` (symlinks followed), nil when it cannot be read.
    public static func of(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileStamp(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                         modified: Int64(st.st_mtim.tv_sec), modifiedNanos: Int64(st.st_mtim.tv_nsec))
    }
}
