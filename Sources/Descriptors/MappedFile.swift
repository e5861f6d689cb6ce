#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Unmapped when the last reference goes away,
/// so every matrix view over it keeps it alive.
///
/// `@unchecked Sendable`: the mapping is immutable (PROT_READ) for its whole life and
/// only unmapped in `deinit`, when no view can reference it any more.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The file's size in bytes.
    public let size: Int
    /// The first byte of the mapping; `nil` for an empty file.
    public let bytes: UnsafeRawPointer?

    /// Maps `path` read-only. Throws `.fileNotFound` or `.ioFailure` with errno's text, and
    /// `.invalidArgument` at once for anything but a regular file (a FIFO, a device, a socket,
    /// a directory), which is never opened in a way that could block.
    public init(path: String) throws {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else { throw Self.failure(errno, "cannot open for reading", path: path) }
        try Self.requireRegularFile(info, path: path)
        // Non-blocking: should the path become a FIFO after the check, open(2) still returns at once.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw Self.failure(errno, "cannot open for reading", path: path) }
        defer { close(fd) }
        guard fstat(fd, &info) == 0 else { throw Self.failure(errno, "cannot stat", path: path) }
        try Self.requireRegularFile(info, path: path)
        size = Int(info.st_size)
        if size == 0 {
            bytes = nil
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw DescriptorError(.ioFailure, "cannot memory-map \(size) bytes", path: path,
                                  underlying: SystemCallError(errno: errno))
        }
        bytes = UnsafeRawPointer(address)
    }

    private static func failure(_ err: Int32, _ message: String, path: String) -> DescriptorError {
        DescriptorError(err == ENOENT ? .fileNotFound : .ioFailure, message, path: path,
                        underlying: SystemCallError(errno: err))
    }

    /// Throws unless `info` (of `path`) is a regular file, naming what it is instead.
    public static func requireRegularFile(_ info: stat, path: String) throws {
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        case S_IFDIR: kind = "a directory"
        default: kind = "of an unknown file type"
        }
        throw DescriptorError(.invalidArgument, "is \(kind), not a regular file", path: path)
    }

    /// Tells the kernel that `range` (bytes) will be read sequentially soon.
    public func adviseSequential(_ range: Range<Int>) {
        guard let bytes, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        _ = madvise(UnsafeMutableRawPointer(mutating: bytes + start), range.upperBound - start,
                    MADV_SEQUENTIAL)
    }

    /// Tells the kernel that the pages of `range` (bytes) are no longer needed, so a scan
    /// of a corpus larger than memory does not keep it resident.
    public func adviseDone(_ range: Range<Int>) {
        guard let bytes, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: bytes + start), end - start, MADV_DONTNEED)
    }

    deinit {
        if let bytes { munmap(UnsafeMutableRawPointer(mutating: bytes), size) }
    }
}
