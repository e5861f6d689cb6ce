/// A snapshot of the cluster, as the STATUS reply carries it.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public struct Worker: Codable, Sendable, Equatable {
        public var name: String
        public var threads: Int
        public var secondsSinceHeard: Double
        public var tasksInFlight: Int
        public var shardsDone: Int

        public init(name: String, threads: Int, secondsSinceHeard: Double, tasksInFlight: Int, shardsDone: Int) {
            self.name = name
            self.threads = threads
            self.secondsSinceHeard = secondsSinceHeard
            self.tasksInFlight = tasksInFlight
            self.shardsDone = shardsDone
        }
    }

    public struct Pass: Codable, Sendable, Equatable {
        public var job: UInt64
        public var pass: Int
        public var kind: String
        public var shards: Int
        public var done: Int
        public var inFlight: Int
        public var queued: Int

        public init(job: UInt64, pass: Int, kind: String, shards: Int, done: Int, inFlight: Int, queued: Int) {
            self.job = job
            self.pass = pass
            self.kind = kind
            self.shards = shards
            self.done = done
            self.inFlight = inFlight
            self.queued = queued
        }
    }

    public var workers: [Worker]
    public var passes: [Pass]
    public var droppedResults: Int
    public var rejectedResults: Int
    /// The running jobs, then a page of the finished ones, newest first.
    public var jobs: [JobSummary] = []
    /// More finished jobs follow: pass this as STATUS `jobsBefore` for the next page.
    public var jobsBefore: UInt64?

    public init(workers: [Worker], passes: [Pass], droppedResults: Int, rejectedResults: Int, jobs: [JobSummary] = [],
                jobsBefore: UInt64? = nil) {
        self.workers = workers
        self.passes = passes
        self.droppedResults = droppedResults
        self.rejectedResults = rejectedResults
        self.jobs = jobs
        self.jobsBefore = jobsBefore
    }
}
