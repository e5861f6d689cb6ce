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

    // Results that never come or cannot be right (see `CoordinatorState`).

    /// A task is overdue once it has been out for `taskDeadlineFactor` times the longest a
    /// shard of its pass has taken so far (from TASK to RESULT taken), and never before
    /// `taskDeadlineFloor` seconds (the only bound until a shard of the pass is done). An
    /// overdue shard is sent to one more worker once no fresh shard of its pass waits, to a
    /// worker with an idle thread (fewer tasks than threads), and the first right RESULT
    /// from any worker holding it is taken.
    public var taskDeadlineFactor: Double = 4
    public var taskDeadlineFloor: Double = 30
    /// A worker is dropped after this many strikes in a row: RESULTs of its that were
    /// rejected, and tasks of its that went overdue and were computed by another worker.
    /// A RESULT of its that is taken clears them.
    public var strikesBeforeDrop: Int = 3
    /// For this many seconds after a worker is dropped, every message from its connection
    /// is ignored (no RESYNC, no READY taken); after that it may introduce itself again. A
    /// new connection is a new worker.
    public var droppedWorkerPause: Double = 60

    public init() {}
}
