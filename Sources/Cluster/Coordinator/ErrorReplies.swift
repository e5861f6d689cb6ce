import ClusterProtocol
import Storage

extension FailureReport {
    /// The ERROR-REPLY metadata for a request that failed with `error`: the one place where
    /// errors become wire codes. A `ClusterError` keeps its code; the store's not-found and
    /// already-exists become theirs; any other error is sent as its description, without a code.
    init(replyingTo error: any Error) {
        let clusterError: ClusterError? = switch error {
        case let error as ClusterError: error
        case let error as StoreError where error.code == .notFound: ClusterError(.notFound, error.message, underlying: error)
        case let error as StoreError where error.code == .exists: ClusterError(.exists, error.message, underlying: error)
        default: nil
        }
        self.init(message: clusterError.map { "\($0)" } ?? "\(error)", code: clusterError?.replyCode)
    }
}
