import Foundation
import Glibc

/// Whole-file writes that are on disk when they return, and the directory fsync that makes a new name durable:
/// what the consumer state slots and the block sealer share.
enum SyncedFile {
    /// Writes `bytes` over the file at `path` (created when missing) and fsyncs it (`sync`: false leaves that to
    /// the kernel: the file then survives a crash of brokerd, not of the machine).
    static func write(_ bytes: [UInt8], to path: String, sync: Bool = true) throws(StoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io("open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        try writeAll(bytes, to: fd, path: path)
        guard !sync || fsync(fd) == 0 else { throw .io("fsync \(path): \(String(cString: strerror(errno)))") }
    }

    /// Writes `bytes` at the start of the file at `path` (created when missing) without truncating it, then
    /// `fdatasync`s it (`sync: false` leaves that to the kernel). What lay beyond stays, so the caller's record
    /// must carry its length. A rewrite of about the same size changes no metadata: no truncation to journal
    /// (opening with O_TRUNC took as long as the fsync itself), and the data alone is flushed.
    static func overwrite(_ bytes: [UInt8], at path: String, sync: Bool) throws(StoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io("open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        try writeAll(bytes, to: fd, path: path)
        guard !sync || fdatasync(fd) == 0 else { throw .io("fsync \(path): \(String(cString: strerror(errno)))") }
    }

    /// `bytes` from the start of the file (a new or truncated one, or one rewritten in place).
    private static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(done)) }
            guard n > 0 else { throw .io("write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// Replaces the file at `path` whole (a temporary `<path>.tmp` written and fsynced, renamed over it, the
    /// directory fsynced): a crash leaves the old or the new file, and the new one stays once this returns.
    /// `newDirectory`: the directory may have just been made, so its parent is fsynced too.
    static func replace(_ bytes: [UInt8], at path: String, newDirectory: Bool = true) throws(StoreError) {
        let temporary = path + ".tmp"
        try write(bytes, to: temporary)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .io("rename \(temporary): \(reason)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        syncDirectory(directory)
        if newDirectory { syncDirectory((directory as NSString).deletingLastPathComponent) }
    }

    /// fsyncs a file written earlier without waiting for the disk (nothing when it cannot be opened).
    static func syncFile(_ path: String) { syncDirectory(path) }

    /// fsyncs a directory, so a file created or renamed in it survives a crash.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            Glibc.close(fd)
        }
    }
}
