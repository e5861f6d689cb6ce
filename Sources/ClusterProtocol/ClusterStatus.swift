/// A snapshot of the cluster, as the STATUS reply carries it.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public struct Worker: Codable, Sendable, Equatable {
        public var name: String
        public var threads: Int
        public var secondsSinceHeard: Double
        public var tasksInFlight: Int
        public var shardsDone: Int
    }

    public struct Pass: Codable, Sendable, Equatable {
        public var job: UInt64
        public var pass: Int
        public var kind: String
        public var shards: Int
        public var done: Int
        public var inFlight: Int
        public var queued: Int
    }

    public var workers: [Worker]
    public var passes: [Pass]
    public var droppedResults: Int
    public var rejectedResults: Int
    /// The running jobs, then a page of the finished ones, newest first.
    public var jobs: [JobSummary] = []
    /// More finished jobs follow: pass this as STATUS `jobsBefore` for the next page.
    public var jobsBefore: UInt64?
}
