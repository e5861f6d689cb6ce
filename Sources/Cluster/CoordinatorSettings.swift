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

    // Memory per connection: what one peer can make the coordinator hold.
    /// Messages queued for one client and from one client, each way (the high-water marks of
    /// the clients socket): the most requests a client can have outstanding. Replies beyond
    /// it, to a client that does not read them, are dropped.
    public var clientHighWaterMark: Int = 64
    /// A client's requests the coordinator holds while it answers an earlier one of the same
    /// client off the I/O thread (replies go out in request order); the ones beyond get an
    /// ERROR-REPLY `too-many-requests`, in order.
    public var maximumWaitingRequestsPerClient: Int = 16
    /// Messages queued for one worker and from one worker, each way (the high-water marks
    /// of the workers socket).
    public var workerHighWaterMark: Int = 1000

    public init() {}
}
