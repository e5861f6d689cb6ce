import Cluster
import ClusterProtocol
import Storage
import ZeroMQ

/// Codebook's version: the one place it is written. `codebook --version` shows it with the
/// versions of the protocol and store format this build speaks and of the libzmq it runs with.
enum CodebookVersion {
    static let current = "0.1.0"

    /// The text `--version` prints.
    static var description: String {
        "codebook \(current) (cluster protocol \(WireHeader.version), store format \(StoredValue.version), "
            + "libzmq \(ZeroMQContext.libraryVersion))"
    }
}
