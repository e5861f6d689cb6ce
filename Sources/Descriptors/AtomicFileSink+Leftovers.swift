#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension AtomicFileSink {
    /// The directory of `path` (with its slash; empty for the current one) and the start of
    /// the names of its temporary files: `.NAME.tmp-`, then the writer's process id, a dash
    /// and a random number.
    static func temporaryPrefix(of path: String) -> (directory: String, prefix: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return (directory, ".\(name).tmp-")
    }

    /// Removes the temporary files of `path` whose writer is gone: a process killed before
    /// it committed or abandoned the file. Files of a process that still runs (this one's
    /// included) are kept, and so is anything that is not a regular file. Best effort: a
    /// directory that cannot be read is left as it is.
    public static func removeAbandonedTemporaries(of path: String) {
        let (directory, prefix) = temporaryPrefix(of: path)
        guard let listing = opendir(directory.isEmpty ? "." : directory) else { return }
        defer { closedir(listing) }
        while let entry = readdir(listing) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix(prefix), Int(entry.pointee.d_type) == Int(DT_REG) else { continue }
            let rest = name.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
            guard rest.count == 2, let process = pid_t(rest[0]), process > 0, UInt32(rest[1]) != nil,
                  kill(process, 0) != 0, errno == ESRCH else { continue }
            unlink(directory + name)
        }
    }
}
