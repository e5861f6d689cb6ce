import ClusterProtocol

/// Timing and capacity of the coordinator, with the defaults of the ZeroMQ Guide's
/// Paranoid Pirate pattern.
public struct CoordinatorSettings: Sendable {
    /// Heartbeats go out this often, both ways; any message counts as one.
    public var heartbeatInterval: Duration = .seconds(1)
    /// A worker not heard from for this many intervals is dead.
    public var liveness: Int = 3
    /// Tasks a worker holds beyond its thread count, so it never waits for the next one.
    public var extraTasksPerWorker: Int = 1
    /// Whether jobs left running in the store resume when the coordinator starts. An
    /// embedded cluster sets it off: nobody waits for the jobs of an embedded run that ended,
    /// so they are marked failed instead.
    public var resumesStoredJobs = true
    /// Encoded vectors go to the store without its write-ahead log and are flushed to disk
    /// in groups: at most this long after they are written, and at once when a job
    /// has written its last. A job counts an image as stored once its vector is flushed.
    public var vectorFlushDelay: Duration = .milliseconds(100)
    /// CURVE on both sockets, admitting only listed keys; `nil`: no authentication, no encryption.
    public var security: CoordinatorSecurity?
    /// The directories jobs may read files in; `nil`: any path.
    public var corpusRoots: CorpusRoots?

    // Results that never come or cannot be right (see `CoordinatorState`).

    /// A task is overdue once it has been out for `taskDeadlineFactor` times the longest a
    /// shard of its pass has taken so far (from TASK to RESULT taken), and never before
    /// `taskDeadlineFloor`, nor before its pass's largest shard would take at
    /// `taskDeadlineRate` (the only bounds until a shard of the pass is done); never later
    /// than `taskDeadlineCeiling`. An overdue shard is sent to one more worker once no fresh
    /// shard of its pass waits, to a worker with an idle thread (fewer tasks than threads),
    /// and the first right RESULT from any worker holding it is taken.
    public var taskDeadlineFactor: Double = 4
    public var taskDeadlineFloor: Duration = .seconds(30)
    /// Rows × K × D per second (1 for a pass without K) that the deadline assumes a worker
    /// thread computes at least: a k-means shard of 65,536 rows at K = 65,536, D = 128 is
    /// given 550 s before a shard of its pass is back, one at K = 256 the floor.
    public var taskDeadlineRate: Double = 1e9
    public var taskDeadlineCeiling: Duration = .seconds(3600)
    /// A pass hands out a shard only while it is fewer than this many shards above the
    /// pass's lowest shard whose RESULT is not yet taken: the RESULTs that wait for an
    /// earlier shard before they can be merged (in shard order) are at most this many less
    /// one per pass, whatever the number of shards (at K = 65,536, D = 128: 64 MiB each).
    public var mergeWindow: Int = 16
    /// A worker is dropped after this many strikes in a row: RESULTs of its that were
    /// rejected, and tasks of its that went overdue and were computed by another worker.
    /// A RESULT of its that is taken clears them.
    public var strikesBeforeDrop: Int = 3
    /// For this long after a worker is dropped, every message from its connection
    /// is ignored (no RESYNC, no READY taken); after that it may introduce itself again. A
    /// new connection is a new worker.
    public var droppedWorkerPause: Duration = .seconds(60)

    // MARK: Limits
    // What one request may make the coordinator hold or send. A request beyond one is
    // answered with ERROR-REPLY code "limit", naming the limit and the values.

    /// The largest K·D of a model (trained, imported or given): 2^24 values, a 64 MiB
    /// float32 array, and 128 MiB of float64 statistics per shard result.
    public var maximumModelValues: Int = 1 << 24
    /// The largest D (values per descriptor) of a corpus, a model or an encoding job.
    public var maximumDimension: Int = 1 << 16
    /// The largest seeding sample a training job gathers on the coordinator (k-means++:
    /// min(max(64·K, 10,000), rows) rows; random initialisation: K rows) × D × 4 bytes.
    public var maximumSampleBytes: Int = 1 << 30
    /// The most images in one encoding job.
    public var maximumImagesPerJob: Int = 10_000_000
    /// The most jobs running (queued or computing) at once.
    public var maximumActiveJobs: Int = 64
    /// The most bytes of array frames in one client request (a given initial model, an IMPORT).
    public var maximumRequestArrayBytes: Int = 3 << 26
    /// The most bytes of sets' vectors kept in memory between SEARCH requests (0: none kept).
    public var searchCacheBytes: Int = StoreQueries.defaultSearchCacheBytes
    /// A SEARCH of a set whose vectors are more than `searchCacheBytes` (or one that asks
    /// for it) runs on the workers, when any are registered, in partitions of this many
    /// vectors (rounded up to a multiple of 4,096) that they keep between searches…
    public var searchPartitionRows: Int = 65_536
    /// …and fails if it has not ended after this long. While it runs, the coordinator
    /// answers other requests; at most `maximumSplitSearches` run at once, and a SEARCH that
    /// would be one more is refused.
    public var splitSearchDeadline: Duration = .seconds(300)
    public var maximumSplitSearches: Int = 4
    /// Finished jobs (succeeded, failed, cancelled) are kept, with their initial models, at
    /// most this many (the most recently ended)…
    public var finishedJobsKept: Int = 1000
    /// …and for at most this many seconds after they ended. The job with the highest id is
    /// always kept: a restarted coordinator numbers new jobs after it.
    public var finishedJobLifetime: Double = 7 * 24 * 3600

    /// The largest frame accepted on either socket (ZeroMQ's ZMQ_MAXMSGSIZE, which bounds
    /// each frame): what the largest legal message needs given the limits above, the
    /// float64 statistics of a model of `maximumModelValues` (8·K·D bytes; 128 MiB by
    /// default), and at least 1 MiB, for metadata. Every other frame of a legal message is
    /// smaller (a float32 model array is 4·K·D bytes), or is checked against this size when
    /// its job is submitted (sample and encoding results).
    public var maximumMessageSize: Int { max(min(maximumModelValues, Int.max / 8) * 8, 1 << 20) }

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
