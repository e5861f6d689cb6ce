#if os(Linux)  // mount(2) and tmpfs
import Cluster
import ClusterProtocol
import Foundation
import Storage
import Testing

/// A tmpfs of a few MiB mounted on a fresh directory, so that a store can fill its disk;
/// unmounted (and the directory removed) when released. Mounting needs root: a test that
/// cannot mount is cancelled (reported as skipped) with the reason, never passed.
final class SmallFileSystem {
    let path: String

    init(megabytes: Int) throws {
        var template = Array((NSTemporaryDirectory() + "codebook-full-disk-XXXXXX").utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(megabytes)m") == 0 else {
            let reason = String(cString: strerror(errno))
            rmdir(path)
            try Test.cancel("cannot mount a \(megabytes) MiB tmpfs on \(path) (\(reason)); the full-disk test needs root")
        }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `megabytes` MiB to `name`, or, without a size, as much as fits.
    func fill(_ name: String, megabytes: Int? = nil) {
        let fd = open(file(name), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(fd) }
        let block = [UInt8](repeating: 0xA5, count: 64 << 10)
        var left = megabytes.map { $0 << 4 } ?? .max
        while left > 0, block.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == block.count { left -= 1 }
    }

    func remove(_ name: String) { unlink(file(name)) }

    deinit {
        if umount(path) != 0 { umount2(path, Int32(MNT_DETACH)) }
        rmdir(path)
    }
}

/// A store whose disk fills up: writes fail with an error naming the store, reads go on,
/// and writes work again once space is freed, in the same process. RocksDB used to abort
/// the coordinator (an assertion on its LOG file) after a few failed writes, and, once in
/// its background-error state, never accepted a write again.
@Suite(.serialized) struct FullDiskTests {
    /// 1 MiB of float values.
    static let values = (0..<(1 << 18)).map { Float($0 % 1000) }

    struct Metadata: Codable { var note = "filler model" }

    @Test(.timeLimit(.minutes(2))) func aStoreOnAFullDiskKeepsReadingAndWritesAgainOnceSpaceIsFreed() async throws {
        let disk = try SmallFileSystem(megabytes: 16)
        let path = disk.file("store")
        disk.fill("filler", megabytes: 8)
        let value = try StoredValue(kind: .model, metadata: Metadata(), values: Self.values)
        var stored: [String] = []
        do {
            let store = try CodebookStore(path: path)
            var failure: StoreError?
            for index in 0..<32 {
                do {
                    try store.putModel(named: "m\(index)", value, replace: false)
                    stored.append("m\(index)")
                } catch let error as StoreError {
                    failure = error
                    break
                }
            }
            #expect(!stored.isEmpty)
            #expect(failure?.code == .unavailable)
            #expect(failure?.message.hasPrefix("no space left on device (store \(path)): cannot store model \"m\(stored.count)\"") == true,
                    "\(String(describing: failure))")
            // While the disk stays full, each write after the reopening interval reopens the
            // store, readers meanwhile on a read-only instance. A reopening can free space
            // (RocksDB drops the WAL space it had preallocated), so a write may then succeed;
            // the disk is topped up again each time.
            var failures = 0
            for attempt in 0..<4 {
                disk.fill("top-up")
                try await Task.sleep(for: CodebookStore.reopenInterval + .milliseconds(100))
                do {
                    try store.putModel(named: "full\(attempt)", value, replace: false)
                    stored.append("full\(attempt)")
                } catch let error as StoreError {
                    failures += 1
                    #expect(error.message.hasPrefix("no space left on device (store \(path)): cannot store model \"full\(attempt)\""),
                            "\(error)")
                }
                #expect(try store.modelNames() == stored.sorted())
                #expect(try store.model(named: stored[0])?.values == Self.values)
            }
            #expect(failures >= 2)
            disk.remove("filler")
            disk.remove("top-up")
            let written = await waitUntil(timeout: 15) { (try? store.putModel(named: "after", value, replace: false)) != nil }
            #expect(written, "no write succeeded within 15 s of freeing space")
            stored.append("after")
            try store.putJob(1, try StoredValue(kind: .job, metadata: Metadata()))
            #expect(try store.modelNames() == stored.sorted())
        }
        // Every write that returned is there after a restart.
        let reopened = try CodebookStore(path: path)
        #expect(try reopened.modelNames() == stored.sorted())
        for name in stored { #expect(try reopened.model(named: name)?.values == Self.values, "\(name)") }
        #expect(try reopened.job(1) != nil)
    }

    @Test(.timeLimit(.minutes(2))) func aCoordinatorOnAFullDiskAnswersErrorRepliesServesReadsAndImportsAgain() async throws {
        let disk = try SmallFileSystem(megabytes: 16)
        let store = disk.file("store")
        disk.fill("filler", megabytes: 8)
        let cluster = try ProcessCluster()
        await cluster.run { cluster in
            let coordinator = StoreCoordinator(cluster, store: store)
            let process = try await coordinator.start()
            let client = try coordinator.client()
            let centres = Frame.encode(Self.values)
            func importModel(_ name: String) throws {
                _ = try client.importModel(ImportRequest(name: name, kind: .kmeans, k: 256, dimension: 1024, replace: false),
                                           arrays: [centres])
            }
            var stored: [String] = []
            var failure: ClusterError?
            for index in 0..<32 {
                do {
                    try importModel("m\(index)")
                    stored.append("m\(index)")
                } catch let error as ClusterError {
                    failure = error
                    break
                }
            }
            try cluster.require(!stored.isEmpty && failure != nil, "imports: \(stored), then \(String(describing: failure))")
            cluster.check(failure!.message.hasPrefix("unavailable: no space left on device (store \(store)): cannot store model"),
                          "\(failure!)")
            // Reads, and requests that do not write, are served.
            cluster.check(try client.catalog().models.map(\.name) == stored.sorted(), "the catalog lost models")
            let (_, reply) = try client.describe(DescribeRequest(model: stored[0], values: true))
            cluster.check(try reply.array(0, as: Float.self) == Self.values, "model \(stored[0]) reads back wrong")
            _ = try client.status()

            disk.remove("filler")
            let imported = await waitUntil(timeout: 15) { (try? importModel("after")) != nil }
            cluster.check(imported, "no import succeeded within 15 s of freeing space")
            cluster.check(try client.catalog().models.map(\.name) == (stored + ["after"]).sorted(), "the catalog after freeing space")
            cluster.check(process.isRunning, "the coordinator exited")
        }
    }
}
#endif
