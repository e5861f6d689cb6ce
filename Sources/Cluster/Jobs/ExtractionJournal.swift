import ClusterProtocol
import Descriptors
import Features
import Foundation

/// An extraction job's descriptors as its shards come in, in a file next to its descriptor
/// file (`.<name>.extract-<job>`), so that a restarted coordinator extracts only the images
/// not in it. The file: 16 bytes of header (`CBXJRNL1`, then the job's fingerprint, u64
/// little-endian), then one piece per shard: its metadata's and its values' byte counts and a
/// checksum of both (3 × u64 LE), the metadata (JSON `Piece`), the values (float32 LE, the
/// pieces' images' descriptors in order). Read back as hostile: pieces are kept up to the
/// first that fails a check (torn by a crash, or tampered with), and the file is cut there.
/// Locked (`flock`) while open, so two processes never write one. Each piece is synced to
/// disk before `append` returns (and the directory when the file is created): a piece that
/// counts as done survives a crash of the operating system, not only of the process.
final class ExtractionJournal {
    /// What a piece holds: images (by position in the job's list, increasing), their
    /// descriptor counts (−1: the image could not be read) and, in order, why for each −1.
    struct Piece: Codable, Equatable {
        var images: [Int]
        var counts: [Int]
        var reasons: [String]
    }

    static let magic = Array("CBXJRNL1".utf8)
    static let headerBytes = 16, pieceHeaderBytes = 24
    /// The most metadata bytes of a piece read back.
    static let maximumPieceMetadataBytes = 64 << 20

    let path: String
    /// What an earlier run of the job wrote, read back when opened to resume: each piece
    /// with the file offset of its values.
    private(set) var recovered: [(piece: Piece, values: Int)] = []
    private var descriptor: Int32
    /// Bytes of the file that hold checked pieces (where the next piece goes).
    private var size = 0
    /// Flushes a file descriptor's data to disk (`fdatasync`); 0 or −1 with `errno`, as it.
    typealias Sync = (Int32) -> Int32
    private let sync: Sync

    /// The journal's path for job `job` writing `descriptors`.
    static func path(job: UInt64, descriptors: String) -> String {
        let slash = descriptors.lastIndex(of: "/")
        let directory = slash.map { String(descriptors[...$0]) } ?? ""
        let name = slash.map { String(descriptors[descriptors.index(after: $0)...]) } ?? descriptors
        return "\(directory).\(name).extract-\(job)"
    }

    /// Opens (creating) job `job`'s journal. `resuming`: keeps the pieces an earlier run of the
    /// same job wrote that pass every check (see `recover`) as `recovered`; otherwise, or for
    /// a file of another job, starts it empty. `sync` makes what was written durable (tests
    /// count its calls).
    init(job: UInt64, extraction: ExtractionJob, resuming: Bool, sync: @escaping Sync = { fdatasync($0) }) throws {
        path = Self.path(job: job, descriptors: extraction.descriptors)
        self.sync = sync
        // Not through a link, and only a regular file: a FIFO planted at the path would make
        // reading it back wait for ever.
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard descriptor >= 0 else {
            throw DescriptorError(.ioFailure, "cannot open the extraction's journal", path: path, underlying: SystemCallError(errno: errno))
        }
        var info = stat()
        do {
            guard fstat(descriptor, &info) == 0 else {
                throw DescriptorError(.ioFailure, "cannot stat the extraction's journal", path: path, underlying: SystemCallError(errno: errno))
            }
            try MappedFile.requireRegularFile(info, path: path)
            // Next to the output, in a directory others may write (a sticky one, say): a file
            // another user made there could be read and changed by them while the job runs.
            guard info.st_uid == geteuid() else {
                throw DescriptorError(.ioFailure, "the extraction's journal belongs to user \(info.st_uid), "
                                      + "not to this process's user \(geteuid()); remove it", path: path)
            }
        } catch {
            close(descriptor)
            throw error
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = SystemCallError(errno: errno)
            close(descriptor)
            throw DescriptorError(.ioFailure, "the extraction's journal is in use by another process", path: path, underlying: error)
        }
        do {
            var header = Self.magic
            withUnsafeBytes(of: Self.fingerprint(job: job, extraction: extraction).littleEndian) { header += $0 }
            if resuming { (recovered, size) = recover(header: header, images: extraction.images.count, strict: extraction.strict) }
            if size == 0 {
                try header.withUnsafeBytes { try Self.writeAll(descriptor, $0, at: 0) }
                size = header.count
            }
            guard ftruncate(descriptor, off_t(size)) == 0 else {
                throw DescriptorError(.ioFailure, "cannot cut the extraction's journal", path: path, underlying: SystemCallError(errno: errno))
            }
            try syncFile()
            // A new file's name is durable once its directory is synced.
            if info.st_size == 0 { try syncDirectory() }
        } catch {
            end(removing: true)
            throw error
        }
    }

    deinit { end(removing: false) }

    /// Closes the file, and with `removing` deletes it (the job has ended).
    func end(removing: Bool) {
        guard descriptor >= 0 else { return }
        if removing { unlink(path) }
        close(descriptor)
        descriptor = -1
    }

    /// Deletes job `job`'s journal, unless a process has it open.
    static func remove(job: UInt64, descriptors: String) {
        let path = path(job: job, descriptors: descriptors)
        let descriptor = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { return }
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
        close(descriptor)
    }

    /// Appends a piece; returns the file offset of its values.
    func append(_ piece: Piece, values: [Float]) throws -> Int {
        let metadata = try JSONEncoder().encode(piece)
        var hash = FNV1a()
        var header = [UInt8]()
        for field in [UInt64(metadata.count), UInt64(values.count * 4)] { withUnsafeBytes(of: field.littleEndian) { header += $0 } }
        header.withUnsafeBytes { hash.add($0) }
        metadata.withUnsafeBytes { hash.add($0) }
        values.withUnsafeBytes { hash.add($0) }
        withUnsafeBytes(of: hash.value.littleEndian) { header += $0 }
        let start = size
        try header.withUnsafeBytes { try Self.writeAll(descriptor, $0, at: start) }
        try metadata.withUnsafeBytes { try Self.writeAll(descriptor, $0, at: start + header.count) }
        let valuesOffset = start + header.count + metadata.count
        try values.withUnsafeBytes { try Self.writeAll(descriptor, $0, at: valuesOffset) }
        try syncFile()
        size = valuesOffset + values.count * 4
        return valuesOffset
    }

    private func syncFile() throws {
        guard sync(descriptor) == 0 else {
            throw DescriptorError(.ioFailure, "cannot sync the extraction's journal to disk", path: path, underlying: SystemCallError(errno: errno))
        }
    }

    private func syncDirectory() throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let handle = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if handle >= 0 { close(handle) } }
        guard handle >= 0, sync(handle) == 0 else {
            throw DescriptorError(.ioFailure, "cannot sync the directory of the extraction's journal to disk", path: directory,
                                  underlying: SystemCallError(errno: errno))
        }
    }

    /// Reads `bytes.count` bytes at `offset` (a piece's values).
    func read(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        try Self.untilDone(bytes.count, "read") { done in pread(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
    }

    /// The pieces of the file that pass every check, in order, and the bytes they end at (0:
    /// the header is not `header`, the file is another job's or none). A piece is kept if its
    /// byte counts fit the file and the limit, its checksum matches, its metadata decodes, its
    /// images are increasing positions below `images` that no earlier piece holds, with one
    /// count ≥ −1 each, one reason (≤ `ExtractedDescriptors.maximumErrorBytes`) per −1 (none
    /// if `strict`), and 128 values per descriptor counted.
    private func recover(header: [UInt8], images: Int, strict: Bool) -> ([(piece: Piece, values: Int)], Int) {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return ([], 0) }
        let fileSize = Int(info.st_size)
        var found = [UInt8](repeating: 0, count: header.count)
        guard fileSize >= header.count, (try? found.withUnsafeMutableBytes { try read($0, at: 0) }) != nil, found == header else { return ([], 0) }
        var pieces: [(piece: Piece, values: Int)] = [], seen = [Bool](repeating: false, count: images), offset = header.count
        while let (piece, values, end) = nextPiece(at: offset, fileSize: fileSize, images: images, strict: strict, seen: seen) {
            for image in piece.images { seen[image] = true }
            pieces.append((piece, values))
            offset = end
        }
        return (pieces, offset)
    }

    /// The piece at `offset`, where its values start and where it ends, if it passes the checks of `recover`.
    private func nextPiece(at offset: Int, fileSize: Int, images: Int, strict: Bool, seen: [Bool]) -> (Piece, Int, Int)? {
        var fields = [UInt64](repeating: 0, count: 3)
        guard fileSize - offset >= Self.pieceHeaderBytes, (try? fields.withUnsafeMutableBytes { try read($0, at: offset) }) != nil else { return nil }
        let room = fileSize - offset - Self.pieceHeaderBytes
        let (metadataBytes, valueBytes, checksum) = (fields[0].littleEndian, fields[1].littleEndian, fields[2].littleEndian)
        guard metadataBytes <= UInt64(min(room, Self.maximumPieceMetadataBytes)), valueBytes <= UInt64(room) - metadataBytes,
              valueBytes % 4 == 0 else { return nil }
        var hash = FNV1a()
        fields.withUnsafeBytes { hash.add(UnsafeRawBufferPointer(rebasing: $0[..<16])) }
        var metadata = [UInt8](repeating: 0, count: Int(metadataBytes))
        guard (try? metadata.withUnsafeMutableBytes { try read($0, at: offset + Self.pieceHeaderBytes) }) != nil else { return nil }
        metadata.withUnsafeBytes { hash.add($0) }
        // The values are only checksummed here, a MiB at a time.
        var chunk = [UInt8](repeating: 0, count: 1 << 20), done = 0
        let valuesOffset = offset + Self.pieceHeaderBytes + Int(metadataBytes)
        while done < Int(valueBytes) {
            let count = min(chunk.count, Int(valueBytes) - done)
            guard (try? chunk.withUnsafeMutableBytes { try read(UnsafeMutableRawBufferPointer(rebasing: $0[..<count]), at: valuesOffset + done) }) != nil else { return nil }
            chunk.withUnsafeBytes { hash.add(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            done += count
        }
        guard hash.value == checksum, let piece = try? JSONDecoder().decode(Piece.self, from: Data(metadata)),
              !piece.images.isEmpty, piece.counts.count == piece.images.count,
              zip(piece.images, piece.images.dropFirst()).allSatisfy({ $0 < $1 }),
              piece.images.allSatisfy({ $0 >= 0 && $0 < images && !seen[$0] }),
              piece.reasons.count == piece.counts.count(where: { $0 < 0 }), !strict || piece.reasons.isEmpty,
              piece.reasons.allSatisfy({ $0.utf8.count <= ExtractedDescriptors.maximumErrorBytes }) else { return nil }
        // Counted without overflow: every partial sum stays within the values there are.
        let descriptorBytes = FeatureExtractor.dimension * 4, most = Int(valueBytes) / descriptorBytes
        var descriptors = 0
        for count in piece.counts {
            guard count >= -1, count <= most - descriptors else { return nil }
            descriptors += max(0, count)
        }
        guard descriptors * descriptorBytes == Int(valueBytes) else { return nil }
        return (piece, valuesOffset, valuesOffset + Int(valueBytes))
    }

    /// FNV-1a (64-bit) of the job's id and its JSON (keys sorted): another job's file, or this
    /// job's with other images or parameters, is not read back.
    static func fingerprint(job: UInt64, extraction: ExtractionJob) -> UInt64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var hash = FNV1a()
        withUnsafeBytes(of: job.littleEndian) { hash.add($0) }
        ((try? encoder.encode(extraction)) ?? Data()).withUnsafeBytes { hash.add($0) }
        return hash.value
    }

    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try untilDone(bytes.count, "write") { done in pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
    }

    /// Repeats `call` (given the bytes done so far) until `count` bytes are done; a system
    /// call interrupted is repeated, one that fails or does nothing is an error.
    private static func untilDone(_ count: Int, _ what: String, _ call: (Int) -> Int) throws {
        var done = 0
        while done < count {
            let result = call(done)
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                throw DescriptorError(.ioFailure, "cannot \(what) the extraction's journal", underlying: SystemCallError(errno: errno))
            }
            done += result
        }
    }
}
