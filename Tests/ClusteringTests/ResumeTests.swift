import Clustering
import Descriptors
import Testing

/// Thrown from a checkpoint callback to simulate a crash right after a checkpoint.
private struct Interrupted: Error {}

@Suite struct ResumeTests {
    @Test(arguments: [0, 2, 5])
    func kmeansResumedFromAnyCheckpointEndsBitIdentical(interruptAfter: Int) async throws {
        let data = try blobs(rows: 1500, dimension: 12, blobs: 6, seed: 51)
        let backend = LocalBackend(corpus: data, shardRows: 200, threads: 2)
        var parameters = KMeansParameters(k: 8)
        parameters.iterations = 8
        parameters.tolerance = 0
        parameters.seed = 5
        let uninterrupted = try await KMeans.train(on: backend, parameters: parameters)
        var saved: KMeansCheckpoint?
        await #expect(throws: Interrupted.self) {
            _ = try await KMeans.train(on: backend, parameters: parameters, checkpoint: { state in
                saved = state
                if state.reports.count == interruptAfter + 1 { throw Interrupted() }
            })
        }
        let resumed = try await KMeans.train(on: backend, parameters: parameters, resumingFrom: try #require(saved))
        #expect(resumed.codebook == uninterrupted.codebook, "interrupted after iteration \(interruptAfter)")
        #expect(resumed.iterations.map(\.objective) == uninterrupted.iterations.map(\.objective))
    }

    @Test(arguments: [1, 4, 6])
    func gmmResumedInEitherPhaseEndsBitIdentical(interruptAtCheckpoint: Int) async throws {
        // Checkpoints: k-means iterations 1…3, the initial model, then EM iterations.
        let data = try blobs(rows: 1200, dimension: 8, blobs: 4, seed: 52)
        let backend = LocalBackend(corpus: data, shardRows: 300, threads: 2)
        var parameters = GaussianMixtureParameters(k: 4)
        parameters.iterations = 5
        parameters.tolerance = 0
        parameters.initialization = .kmeans(iterations: 3)
        let uninterrupted = try await GaussianMixture.train(on: backend, parameters: parameters)
        var saved: GaussianMixtureCheckpoint?
        var count = 0
        await #expect(throws: Interrupted.self) {
            _ = try await GaussianMixture.train(on: backend, parameters: parameters, checkpoint: { state in
                saved = state
                count += 1
                if count == interruptAtCheckpoint { throw Interrupted() }
            })
        }
        let resumed = try await GaussianMixture.train(on: backend, parameters: parameters, resumingFrom: try #require(saved))
        #expect(resumed.model == uninterrupted.model, "interrupted at checkpoint \(interruptAtCheckpoint)")
        #expect(resumed.varianceFloor == uninterrupted.varianceFloor)
    }
}
