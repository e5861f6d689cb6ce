import Cluster
import ClusterProtocol
import Foundation
import TestSupport
import Testing
import ZeroMQ

/// Key files, allow-lists, corpus roots and the loopback rule, without processes.
@Suite struct SecurityFilesTests {
    @Test func keyFilesRoundTripAndRefuseToOverwrite() throws {
        let scratch = try TemporaryDirectory()
        let pair = try CurveKeyPair.generate()
        let paths = try KeyFiles.write(pair, name: scratch.file("node"))
        #expect(try KeyFiles.readKeyPair(path: paths.secret) == pair)
        #expect(try KeyFiles.readPublicKey(path: paths.public) == pair.publicKey)
        let mode = try FileManager.default.attributesOfItem(atPath: paths.secret)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let error = #expect(throws: ClusterError.self) { try KeyFiles.write(try CurveKeyPair.generate(), name: scratch.file("node")) }
        #expect(error?.message.contains("File exists") == true)
        #expect(try KeyFiles.readKeyPair(path: paths.secret) == pair)
    }

    @Test func keyFileMistakesAreNamed() throws {
        let scratch = try TemporaryDirectory()
        let pair = try CurveKeyPair.generate()
        func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
            let path = scratch.file(name)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            return path
        }
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        let secret = "public-key \(pair.publicKey.z85)\nsecret-key \(pair.secretKey.z85)\n"
        #expect(message { try KeyFiles.readKeyPair(path: scratch.file("missing.secret")) }.contains("No such file"))
        #expect(message { try KeyFiles.readPublicKey(path: scratch.path) } == "\(scratch.path): not a regular file")
        let open = try write("open.secret", secret, mode: 0o640)
        #expect(message { try KeyFiles.readKeyPair(path: open) }.contains("its mode is 0640"))
        let short = try write("short.secret", "secret-key \(pair.secretKey.z85.dropLast())\n")
        #expect(message { try KeyFiles.readKeyPair(path: short) } == "\(short): line 1: a Z85 CURVE key is 40 characters, got 39")
        let notZ85 = try write("bad.public", "# a comment\n\n" + String(repeating: "~", count: 40) + "\n")
        #expect(message { try KeyFiles.readPublicKey(path: notZ85) } == "\(notZ85): line 3: not a Z85 key")
        let mismatched = try write("mismatch.secret", "public-key \(try CurveKeyPair.generate().publicKey.z85)\nsecret-key \(pair.secretKey.z85)\n")
        #expect(message { try KeyFiles.readKeyPair(path: mismatched) }.contains("not the one of its secret key"))
        let publicOnly = try write("public.secret", "\(pair.publicKey.z85)\n")
        #expect(message { try KeyFiles.readKeyPair(path: publicOnly) }.contains("line 1: expected \"public-key KEY\""))
        let two = try write("two.public", "\(pair.publicKey.z85)\n\(pair.secretKey.z85)\n")
        #expect(message { try KeyFiles.readPublicKey(path: two) }.contains("expected one public key, found 2"))
    }

    @Test func allowListsHaveRolesCommentsAndLineNumbers() throws {
        let scratch = try TemporaryDirectory()
        let keys = try (0..<3).map { _ in try CurveKeyPair.generate().publicKey }
        let workers = scratch.file("workers"), clients = scratch.file("clients")
        try "# workers\n\n\(keys[0].z85)\n  \(keys[1].z85)   # node 2\n".write(toFile: workers, atomically: true, encoding: .utf8)
        try "\(keys[0].z85) read\n\(keys[2].z85) write # ci\n".write(toFile: clients, atomically: true, encoding: .utf8)
        let lists = try AccessLists(workersFile: workers, clientsFile: clients)
        #expect(lists.workers == [keys[0], keys[1]])
        #expect(lists.clients == [keys[0]: .read, keys[2]: .write])
        for (text, expected) in [("\(keys[0].z85) admin\n", "line 1: expected a client's public key and its role, read or write"),
                                 ("# x\n\(keys[0].z85)\n", "line 2: expected a client's public key and its role, read or write"),
                                 ("\(keys[0].z85) read\n\(keys[0].z85) write\n", "line 2: the key \(keys[0].z85) is listed twice")] {
            try text.write(toFile: clients, atomically: true, encoding: .utf8)
            let error = #expect(throws: ClusterError.self) { try AccessLists(workersFile: workers, clientsFile: clients) }
            #expect(error?.description == "\(clients): \(expected)")
        }
    }

    @Test func readRolesMaySendOnlyRequestsThatChangeNothing() {
        let reads: Set<MessageType> = [.status, .progress, .fetchResult, .get, .list, .describe, .catalog, .search]
        for type in MessageType.allCases {
            #expect(ClientRole.read.permits(type) == reads.contains(type), "\(type)")
            #expect(ClientRole.write.permits(type))
        }
    }

    @Test func corpusRootsResolveLinksAndDotDot() throws {
        let root = try TemporaryDirectory(), elsewhere = try TemporaryDirectory()
        FileManager.default.createFile(atPath: root.file("a.npy"), contents: Data())
        FileManager.default.createFile(atPath: elsewhere.file("b.npy"), contents: Data())
        try FileManager.default.createSymbolicLink(atPath: root.file("link.npy"), withDestinationPath: elsewhere.file("b.npy"))
        try FileManager.default.createDirectory(atPath: root.file("sub"), withIntermediateDirectories: false)
        let roots = try CorpusRoots([root.path + "/sub/.."])
        #expect(try roots.check(root.file("sub/../a.npy"), what: "corpus") == realpath(root.file("a.npy")))
        for refused in [elsewhere.file("b.npy"), root.file("link.npy"), root.file("../\(URL(fileURLWithPath: elsewhere.path).lastPathComponent)/b.npy"),
                        root.path + "-sibling/a.npy", elsewhere.file("missing.npy")] {
            let error = #expect(throws: ClusterError.self) { try roots.check(refused, what: "corpus") }
            #expect(error?.code == .forbidden)
            #expect(error?.message.hasPrefix("corpus \(refused)") == true && error?.message.contains("is outside the corpus roots") == true)
        }
        // Missing inside the root: an ordinary error, not a refusal.
        #expect(#expect(throws: ClusterError.self) { try roots.check(root.file("missing.npy"), what: "corpus") }?.code == .badFile)
        #expect(throws: ClusterError.self) { try CorpusRoots([root.file("a.npy")]) }
    }

    private func realpath(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }

    @Test func loopbackEndpoints() {
        for local in ["tcp://127.0.0.1:5555", "tcp://127.3.2.1:1", "tcp://localhost:5", "tcp://[::1]:5555", "ipc:///tmp/x", "inproc://a"] {
            #expect(isLoopbackEndpoint(local), "\(local)")
        }
        for open in ["tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://10.0.0.1:5555", "tcp://eth0:5555", "tcp://[::]:5555",
                     "tcp://example.org:5555", "tcp://128.0.0.1:1", "ws://127.0.0.1:5", "tcp://127.0.0.1"] {
            #expect(!isLoopbackEndpoint(open), "\(open)")
        }
    }
}
