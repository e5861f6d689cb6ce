import Foundation
import Synchronization
import TestSupport
import Testing
@testable import Descriptors

/// Runs `body` while a thread tries, every 20 ms, to open each of `fifos` for writing without
/// blocking. That succeeds only while a reader has the FIFO open, that is, is blocked in
/// open(2) or reading it: the watchdog records it as an issue and, by opening, unblocks the
/// reader, so a reader that blocks fails the test instead of hanging it.
func withFifoWatchdog(_ fifos: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) rethrows {
    let stop = Atomic<Bool>(false)
    let opened = Mutex<[String]>([])
    let done = DispatchSemaphore(value: 0)
    Thread {
        while !stop.load(ordering: .relaxed) {
            for path in fifos {
                let fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                if fd >= 0 {
                    opened.withLock { $0.append(path) }
                    close(fd)
                }
            }
            usleep(20_000)
        }
        done.signal()
    }.start()
    defer {
        stop.store(true, ordering: .relaxed)
        done.wait()
        for path in opened.withLock({ $0 }) {
            Issue.record("a reader opened the FIFO \(path) (and blocked in open(2))", sourceLocation: sourceLocation)
        }
    }
    try body()
}

/// Files a careless or hostile user can name: headers built to exhaust the stack, files that
/// are not regular files, files that are not descriptor files at all.
@Suite struct HostileFileTests {
    static let dictStart = "{'descr': '<f4', 'fortran_order': False, 'shape': "

    /// 30,000 `(` (version 1) or 400,000 `[` (version 3) used to overflow the parser's stack
    /// (SIGSEGV). The error names the file and the byte of the first bracket too deep.
    @Test(arguments: [(UInt8(1), "(", 30_000), (3, "[", 400_000)])
    func deeplyNestedHeadersAreRejectedAtTheByteTooDeep(version: UInt8, bracket: String, count: Int) throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("deep.npy", npy(version: version, dict: Self.dictStart + String(repeating: bracket, count: count), data: []))
        let preamble = version == 1 ? 10 : 12
        // The dict is level 1, so the 32nd bracket would be level 33.
        let byte = preamble + Self.dictStart.utf8.count + 31
        expectError(.malformed, path, "byte \(byte)", "nested deeper than 32") { _ = try DescriptorMatrix.open(path: path) }
    }

    @Test func nestingUpToTheLimitIsRead() throws {
        let dir = try TemporaryDirectory()
        let deep = String(repeating: "[", count: 31) + String(repeating: "]", count: 31)
        let path = dir.write("ok.npy", npy(dict: Self.dictStart + "(1, 2), 'extra': \(deep)}", data: bytes(floats: [1, 2])))
        #expect(try DescriptorMatrix.open(path: path).toArray() == [1, 2])
    }

    @Test func aHeaderLongerThanAMebibyteIsRejected() throws {
        let dir = try TemporaryDirectory()
        let path = dir.write("long.npy", npy(version: 2, dict: Self.dictStart + "(1, 2), }" + String(repeating: " ", count: 1 << 20),
                                             data: bytes(floats: [1, 2])))
        expectError(.unsupportedFormat, path, "byte 8", "exceeds the 1048576 bytes this reader accepts") { _ = try DescriptorMatrix.open(path: path) }
    }

    /// A FIFO used to block open(2) forever (`codebook train` hung; a coordinator's I/O thread
    /// with it). Every reader refuses it at once, naming it, without opening it.
    @Test func aFifoIsRefusedAtOnceByEveryReader() throws {
        let dir = try TemporaryDirectory()
        let corpus = dir.write("corpus.npy", npy(dict: Self.dictStart + "(2, 1), }", data: bytes(floats: [1, 2])))
        let index = dir.write("index.tsv", text: "a\t0\t1\n")
        let fifo = dir.file("fifo.npy"), fifoIndex = dir.file("fifo.tsv"), fifoVectors = dir.file("fifo.fvecs")
        for path in [fifo, fifoIndex, fifoVectors] { #expect(mkfifo(path, 0o600) == 0) }
        try FileManager.default.createDirectory(atPath: dir.file("images"), withIntermediateDirectories: false)
        #expect(mkfifo(dir.file("images/x.npy"), 0o600) == 0)
        let cases: [(String, () throws -> Void)] = [
            (fifo, { _ = try DescriptorMatrix.open(path: fifo) }),
            (fifoVectors, { _ = try DescriptorMatrix.open(path: fifoVectors) }),
            (fifo, { _ = try NpyFile.readFloat32(path: fifo) }),
            (fifoIndex, { _ = try ImageCollection(index: fifoIndex, descriptors: corpus) }),
            (fifo, { _ = try ImageCollection(index: index, descriptors: fifo) }),
            (dir.file("images/x.npy"), { _ = try ImageCollection(directory: dir.file("images")) }),
        ]
        withFifoWatchdog([fifo, fifoIndex, fifoVectors, dir.file("images/x.npy")]) {
            for (path, body) in cases { expectError(.invalidArgument, path, "is a FIFO, not a regular file") { try body() } }
            // A FIFO given as a directory of images fails as "not a directory", also at once.
            expectError(.ioFailure, fifo, "cannot list directory") { _ = try ImageCollection(directory: fifo) }
        }
    }

    @Test func directoriesDevicesAndSocketsAreRefused() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("x.npy"), withIntermediateDirectories: false)
        expectError(.invalidArgument, dir.file("x.npy"), "is a directory, not a regular file") {
            _ = try DescriptorMatrix.open(path: dir.file("x.npy"))
        }
        expectError(.invalidArgument, "/dev/null", "is a character device, not a regular file") {
            _ = try DescriptorMatrix.open(path: "/dev/null", format: .npy)
        }
        #if os(Linux)
        let socketPath = dir.file("socket.npy")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: socketPath.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        expectError(.invalidArgument, socketPath, "is a socket, not a regular file") { _ = try DescriptorMatrix.open(path: socketPath) }
        #endif
    }

    /// An index that is not an index at all (any tab-separated file its reader can open):
    /// errors name the file, the line and what is wrong, never the file's text.
    @Test func indexErrorsDoNotQuoteTheFile() throws {
        let dir = try TemporaryDirectory()
        let corpus = dir.write("corpus.npy", npy(dict: Self.dictStart + "(2, 1), }", data: bytes(floats: [1, 2])))
        for text in ["root\tSECRET-x1\t0\n", "root\t0\tSECRET-x2\n", "SECRET-key\t0\t1\nSECRET-key\t1\t1\n",
                     "SECRET\t0\t1\tSECRET-4\n", "SECRET-key\t1\t9\n"] {
            let index = dir.write("not-an-index.tsv", text: text)
            do {
                _ = try ImageCollection(index: index, descriptors: corpus)
                Issue.record("expected an error for \(text)")
            } catch let error as DescriptorError {
                #expect(error.path == index && error.location?.hasPrefix("line ") == true, "\(error)")
                #expect(!error.description.contains("SECRET"), "\(error)")
            }
        }
    }

    @Test func npyErrorsDoNotQuoteTheHeader() throws {
        let dir = try TemporaryDirectory()
        let cases = [
            ("{'descr': 'SECRET-dtype', 'fortran_order': False, 'shape': (1, 1), }", DescriptorError.Code.unsupportedFormat),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), SECRET}", .malformed),
            ("{'descr': '<f4', 'fortran_order': SECRET, 'shape': (1, 1), }", .malformed),
        ]
        for (dict, code) in cases {
            let path = dir.write("h.npy", npy(dict: dict, data: bytes(floats: [1])))
            expectError(code, path, "byte ") { _ = try DescriptorMatrix.open(path: path) }
            #expect(throws: DescriptorError.self) {
                do { _ = try DescriptorMatrix.open(path: path) } catch { #expect(!"\(error)".contains("SECRET"), "\(error)"); throw error }
            }
        }
        // A NumPy type code is quoted, as it helps and cannot be anything else.
        let f8 = dir.write("f8.npy", npy(dict: "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", data: bytes(floats: [1, 1])))
        expectError(.unsupportedFormat, f8, "unsupported dtype '<f8'") { _ = try DescriptorMatrix.open(path: f8) }
    }

    @Test func texmexErrorsDoNotQuoteTheFile() throws {
        let dir = try TemporaryDirectory()
        // "SECRET!!" read as a first dimension, and as the header of a last row.
        let first = dir.write("a.fvecs", Array("SECRET!!".utf8) + [UInt8](repeating: 0, count: 56))
        let last = dir.write("b.bvecs", bvecs([[1, 2], [3, 4]]) + Array("SECR".utf8) + [5, 6])
        for path in [first, last] {
            do {
                _ = try DescriptorMatrix.open(path: path)
                Issue.record("expected an error for \(path)")
            } catch let error as DescriptorError {
                for value in ["SECRET", "\(Int32(littleEndian: Array("SECR".utf8).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))"] {
                    #expect(!error.description.contains(value), "\(error)")
                }
            }
        }
    }
}
