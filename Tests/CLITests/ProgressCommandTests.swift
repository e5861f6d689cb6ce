import ClusterProtocol
import Testing
@testable import codebook

/// `codebook progress` shows a job as PROGRESS reports it, and `status` counts the vectors
/// of transform jobs and the images of encoding and extraction jobs (it showed no count).
@Suite struct ProgressCommandTests {
    @Test func statusCountsTransformVectorsAndEncodedImages() {
        let status = ClusterStatus(workers: [], passes: [], droppedResults: 0, rejectedResults: 0, jobs: [
            JobSummary(job: 4, kind: "transform", corpus: "t", state: .running, iterations: 0, imagesDone: 1280, imagesTotal: 20_000),
            JobSummary(job: 3, kind: "vlad", corpus: "/d.npy", state: .succeeded, iterations: 0, imagesDone: 10, imagesTotal: 10),
            JobSummary(job: 1, kind: "kmeans", corpus: "/c.npy", state: .running, iterations: 2),
        ])
        #expect(StatusCommand.render(status) == """
            workers: 0
            jobs: 3
              4  transform  running  1280/20000 vectors  t
              3  vlad  succeeded  10/10 images  /d.npy
              1  kmeans  running  2 iteration(s)  /c.npy

            """)
    }

    @Test func progressShowsTheCountThePassAndTheSkippedImages() {
        let transform = JobProgress(job: 7, kind: "transform", state: .running, iterations: [], imagesDone: 256, imagesTotal: 1000)
        #expect(ProgressCommand.render(transform) == "job 7  transform  running  256/1000 vectors\n")
        let extraction = JobProgress(job: 8, kind: "extract", state: .running, iterations: [], imagesDone: 2, imagesTotal: 5,
                                     pass: PassProgress(pass: 1, kind: "extract", shards: 5, shardsDone: 2, rows: 5, rowsDone: 2, seconds: 1.5),
                                     descriptors: 900, skipped: [SkippedImageReport(key: "b", path: "/b\u{1B}[2J.png", message: "not an image")])
        #expect(ProgressCommand.render(extraction) == """
            job 8  extract  running  2/5 images, 900 descriptors
              pass 1 (extract): 2/5 shards, 2/5 rows, 1.5 s
              skipped /b\\u{1B}[2J.png: not an image

            """)
        let failed = JobProgress(job: 9, kind: nil, state: .failed, iterations: [], message: "no workers")
        #expect(ProgressCommand.render(failed) == "job 9  job  failed  (no workers)\n")
    }
}
