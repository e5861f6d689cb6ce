import ClusterProtocol
import Foundation
import ZeroMQ

/// Codebook's CURVE key files.
///
/// `NAME.secret` (mode 0600) holds a key pair as two lines, `public-key KEY` and
/// `secret-key KEY`; `NAME.public` holds the public key alone on one line. Keys are 40 Z85
/// characters. Lines whose first word is not a key and that start with `#` are comments.
public enum KeyFiles {
    /// The largest key file or allow-list read (a list of a few thousand keys).
    public static let maximumFileSize = 1 << 20

    /// Writes a new key pair to `NAME.secret` and `NAME.public`; refuses to overwrite
    /// either. Returns the two paths.
    @discardableResult
    public static func write(_ pair: CurveKeyPair, name: String) throws -> (secret: String, public: String) {
        let paths = (secret: name + ".secret", public: name + ".public")
        let secret = "# Codebook CURVE key pair. Keep this file private (mode 0600); give peers \(paths.public).\n"
            + "public-key \(pair.publicKey.z85)\nsecret-key \(pair.secretKey.z85)\n"
        try create(paths.secret, contents: secret, mode: 0o600)
        do {
            try create(paths.public, contents: pair.publicKey.z85 + "\n", mode: 0o644)
        } catch {
            unlink(paths.secret)
            throw error
        }
        return paths
    }

    /// The key pair in a secret key file, which only its owner may read or write.
    public static func readKeyPair(path: String) throws -> CurveKeyPair {
        let info = try regularFile(path)
        guard info.st_mode & 0o077 == 0 else {
            throw keyFileError(path, "a secret key file must be private to its owner, but its mode is "
                               + String(format: "%04o", info.st_mode & 0o7777) + " (make it 0600)")
        }
        var publicKey: CurveKey?, secretKey: CurveKey?
        for line in try lines(of: path) {
            guard line.words.count == 2, ["public-key", "secret-key"].contains(line.words[0]) else {
                throw line.error("expected \"public-key KEY\" or \"secret-key KEY\"")
            }
            if line.words[0] == "public-key" { publicKey = try line.key(at: 1) } else { secretKey = try line.key(at: 1) }
        }
        guard let secretKey else { throw keyFileError(path, "no secret-key line: is this a public key file?") }
        let pair = try CurveKeyPair(secretKey: secretKey)
        if let publicKey, publicKey != pair.publicKey {
            throw keyFileError(path, "its public key is not the one of its secret key")
        }
        return pair
    }

    /// The one public key in a public key file.
    public static func readPublicKey(path: String) throws -> CurveKey {
        let keys = try lines(of: path).map { line in
            guard line.words.count == 1 else { throw line.error("expected a public key alone on its line") }
            return try line.key(at: 0)
        }
        guard keys.count == 1 else { throw keyFileError(path, "expected one public key, found \(keys.count)") }
        return keys[0]
    }

    /// One non-blank, non-comment line of a key file or allow-list.
    struct Line {
        let path: String
        let number: Int
        let words: [String]

        func error(_ message: String) -> ClusterError { keyFileError(path, "line \(number): \(message)") }

        /// Word `index` as a Z85 key.
        func key(at index: Int) throws -> CurveKey {
            guard index < words.count else { throw error("a key is missing") }
            do {
                return try CurveKey(z85: words[index])
            } catch let error as ZeroMQError {
                throw self.error(error.message.hasPrefix("not a Z85") ? "not a Z85 key" : error.message)
            }
        }
    }

    /// The lines of `path` that say something: words split at whitespace; blank lines and
    /// comments (a line starting with `#` whose first word is not a Z85 key: `#` is a Z85
    /// character) left out.
    static func lines(of path: String) throws -> [Line] {
        _ = try regularFile(path)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw keyFileError(path, "cannot read the file: \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maximumFileSize + 1) ?? Data()
        } catch {
            throw keyFileError(path, "cannot read the file: \(error.localizedDescription)")
        }
        guard data.count <= maximumFileSize else {
            throw keyFileError(path, "larger than \(maximumFileSize) bytes: not a key file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw keyFileError(path, "not UTF-8 text") }
        return text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { index, line in
            let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let first = words.first else { return nil }
            if first.hasPrefix("#") && (try? CurveKey(z85: first)) == nil { return nil }
            return Line(path: path, number: index + 1, words: words)
        }
    }

    /// The status of `path` (symbolic links followed), if it is a regular file.
    private static func regularFile(_ path: String) throws -> stat {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw keyFileError(path, "cannot read the file: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw keyFileError(path, "not a regular file") }
        return info
    }

    private static func create(_ path: String, contents: String, mode: mode_t) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw keyFileError(path, "cannot create the key file: \(String(cString: strerror(errno)))")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            // The mode asked for, whatever the umask took away or left.
            guard fchmod(descriptor, mode) == 0 else {
                throw keyFileError(path, "cannot set its mode: \(String(cString: strerror(errno)))")
            }
            try handle.write(contentsOf: Data(contents.utf8))
            try handle.synchronize()
        } catch {
            unlink(path)
            throw error
        }
    }
}

/// A key file or allow-list that cannot be used: which file (and line, in `message`), and why.
func keyFileError(_ path: String, _ message: String) -> ClusterError {
    ClusterError(.badFile, message, path: path)
}
