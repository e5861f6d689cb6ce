/// Timing and capacity of the coordinator, with the defaults of the ZeroMQ Guide's
/// Paranoid Pirate pattern.
public struct CoordinatorSettings: Sendable {
    /// Heartbeats go out this often, both ways; any message counts as one.
    public var heartbeatInterval: Double = 1
    /// A worker not heard from for this many intervals is dead.
    public var liveness: Int = 3
    /// Tasks a worker holds beyond its thread count, so it never waits for the next one.
    public var extraTasksPerWorker: Int = 1
    /// The largest message accepted on any socket (bytes).
    public var maximumMessageSize: Int = 1 << 30
    /// Whether jobs left running in the store resume when the coordinator starts. An
    /// embedded cluster sets it off: nobody waits for the jobs of an embedded run that ended,
    /// so they are marked failed instead.
    public var resumesStoredJobs = true
    /// Encoded vectors go to the store without its write-ahead log and are flushed to disk
    /// in groups: at most this many seconds after they are written, and at once when a job
    /// has written its last. A job counts an image as stored once its vector is flushed.
    public var vectorFlushDelay: Double = 0.1
    /// CURVE on both sockets, admitting only listed keys; `nil`: no authentication, no encryption.
    public var security: CoordinatorSecurity?
    /// The directories jobs may read files in; `nil`: any path.
    public var corpusRoots: CorpusRoots?

    public init() {}
}
