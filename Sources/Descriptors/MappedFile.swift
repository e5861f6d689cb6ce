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
    /// `.ioFailure` for anything but a regular file (opened without blocking, so a FIFO is
    /// refused instead of waiting for a writer).
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let err = errno
            throw DescriptorError(err == ENOENT ? .fileNotFound : .ioFailure,
                                  "cannot open for reading", path: path,
                                  underlying: String(cString: strerror(err)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw DescriptorError(.ioFailure, "cannot stat", path: path,
                                  underlying: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw DescriptorError(.ioFailure, "not a regular file", path: path)
        }
        size = Int(info.st_size)
        if size == 0 {
            bytes = nil
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw DescriptorError(.ioFailure, "cannot memory-map \(size) bytes", path: path,
                                  underlying: String(cString: strerror(errno)))
        }
        bytes = UnsafeRawPointer(address)
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
