#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written through a buffer under a temporary name in the target's directory, and
/// renamed over the target only by `commit()`, so the target is never seen half-written.
/// Dropped without `commit()`, the temporary file is removed.
public final class AtomicFileSink {
    /// Size of the write buffer: large enough that writing a gigabyte takes a thousand
    /// system calls, not millions.
    static let bufferSize = 1 << 20

    public let path: String
    let temporaryPath: String
    private var descriptor: Int32
    private let buffer: UnsafeMutableRawPointer
    private var buffered = 0
    /// Bytes already handed to the kernel (the file offset of the buffer's first byte).
    private var flushed = 0

    /// Creates the temporary file next to `path`.
    public init(path: String) throws {
        let (directory, prefix) = Self.temporaryPrefix(of: path)
        self.path = path
        temporaryPath = "\(directory)\(prefix)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let err = errno
            throw DescriptorError(err == ENOENT ? .fileNotFound : .ioFailure,
                                  "cannot create a temporary file to write", path: path,
                                  underlying: SystemCallError(errno: err))
        }
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    /// Appends `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if buffered + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try writeAll(source, count: bytes.count, at: flushed)
            flushed += bytes.count
        } else {
            (buffer + buffered).copyMemory(from: source, byteCount: bytes.count)
            buffered += bytes.count
        }
    }

    /// Appends `count` bytes written by `fill` straight into the buffer; `count` must not
    /// exceed `bufferSize`.
    @inline(__always)
    func append(count: Int, _ fill: (UnsafeMutableRawPointer) -> Void) throws {
        precondition(count <= Self.bufferSize)
        if buffered + count > Self.bufferSize { try flush() }
        fill(buffer + buffered)
        buffered += count
    }

    /// Appends `bytes`.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Replaces already written bytes at `offset` (for a header patched at the end).
    func overwrite(at offset: Int, _ bytes: [UInt8]) throws {
        try flush()
        try bytes.withUnsafeBytes { try writeAll($0.baseAddress!, count: $0.count, at: offset) }
    }

    /// Flushes, syncs and renames the file over `path`. On failure the temporary is removed.
    public func commit() throws {
        do {
            try flush()
            guard fsync(descriptor) == 0 else { throw failure("cannot sync \(temporaryPath)") }
            let result = close(descriptor)
            descriptor = -1
            guard result == 0 else { throw failure("cannot close \(temporaryPath)") }
            guard rename(temporaryPath, path) == 0 else { throw failure("cannot rename \(temporaryPath) to it") }
        } catch {
            abort()
            throw error
        }
    }

    /// Closes and removes the temporary file; the target is untouched. Idempotent.
    public func abort() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporaryPath)
    }

    private func flush() throws {
        guard buffered > 0 else { return }
        try writeAll(buffer, count: buffered, at: flushed)
        flushed += buffered
        buffered = 0
    }

    /// Writes in calls of at most `bufferSize` bytes: measured on Linux, one 16 MiB pwrite of
    /// encoded vectors cost several times the kernel time of sixteen 1 MiB ones.
    private func writeAll(_ source: UnsafeRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let result = pwrite(descriptor, source + done, min(count - done, Self.bufferSize), off_t(offset + done))
            if result < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write \(count - done) bytes at byte \(offset + done) of \(temporaryPath)")
            }
            done += result
        }
    }

    private func failure(_ message: String) -> DescriptorError {
        DescriptorError(.ioFailure, message, path: path, underlying: SystemCallError(errno: errno))
    }

    deinit {
        if descriptor >= 0 { abort() }
        buffer.deallocate()
    }
}
