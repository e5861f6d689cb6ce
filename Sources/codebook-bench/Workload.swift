import Clustering
import Descriptors
import Foundation

/// The cached inputs of the sections: generated once per size in the work directory.
struct Workload {
    let sizes: BenchSizes

    /// The synthetic corpus of `rows` rows (`.npy` or `.fvecs` by `ext`), generated if missing.
    func corpus(rows: Int, ext: String = "npy", index: Bool = false, imagesOf: Int = 300) throws -> String {
        let name = "corpus-\(rows)x\(sizes.dimension)-c\(sizes.corpusClusters)-s\(BenchSizes.seed)"
            + (index ? "-img\(imagesOf)" : "")
        let path = sizes.path(name + "." + ext)
        if FileManager.default.fileExists(atPath: path), !index || FileManager.default.fileExists(atPath: path + ".tsv") {
            return path
        }
        let started = Stopwatch.now()
        print("(generating \(rows)×\(sizes.dimension) corpus at \(path) …)")
        try SyntheticCorpus(rows: rows, dimension: sizes.dimension, clusters: sizes.corpusClusters, seed: BenchSizes.seed)
            .write(to: path, index: index ? path + ".tsv" : nil, imagesOf: imagesOf)
        print("(generated in \(seconds(Stopwatch.now() - started)))")
        return path
    }

    /// The common initial centres, saved as `.npy`: the first row (in file order) of each of
    /// K distinct true clusters of the synthetic corpus. Rows of distinct clusters keep
    /// Lloyd's iterations free of empty clusters, whose repair differs between libraries
    /// (Codebook and faiss split the largest cluster, scikit-learn takes far points), so the
    /// objectives after the same iterations are comparable.
    func initialCentres(corpus path: String) throws -> (path: String, codebook: Codebook) {
        let matrix = try DescriptorMatrix.open(path: path)
        let k = sizes.k, d = matrix.dimension
        let out = sizes.path("centres-k\(k)-of-" + URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent + ".npy")
        let model = SyntheticCorpus(rows: matrix.rows, dimension: d, clusters: sizes.corpusClusters, seed: BenchSizes.seed)
        let truth = model.centres()
        var taken = Set<Int>()
        var values: [Float] = []
        values.reserveCapacity(k * d)
        var row = 0
        while taken.count < k && row < matrix.rows {
            let x = try matrix.row(row)
            var best = 0, bestDistance = Double.infinity
            for c in 0..<sizes.corpusClusters {
                var distance = 0.0
                for j in 0..<d { let r = Double(x[j]) - Double(truth[c * d + j]); distance += r * r }
                if distance < bestDistance { bestDistance = distance; best = c }
            }
            if taken.insert(best).inserted { values += x }
            row += 1
        }
        // Fewer true clusters than K (not with the bench's sizes): fill with evenly spaced rows.
        var spaced = 0
        while values.count < k * d { values += try matrix.row(spaced * (matrix.rows / k)); spaced += 1 }
        try NpyFile.write(path: out, rows: k, columns: d, values: values)
        return (out, try Codebook(k: k, dimension: d, centres: values))
    }

    /// Runs `body` on the synthetic corpus of `rows` rows (with an image index of `imagesOf`
    /// rows per image, if given), then on the real descriptors of `--corpus` (at most `--rows`
    /// of them), if given. A failed check does not stop the next corpus; the failures are
    /// thrown together at the end.
    func onEachCorpus(syntheticRows rows: Int, imagesOf: Int? = nil, _ body: (BenchCorpus) async throws -> Void) async throws {
        let path = try corpus(rows: rows, index: imagesOf != nil, imagesOf: imagesOf ?? 300)
        var corpora = [BenchCorpus(label: "synthetic", tag: "synthetic", path: path, index: imagesOf.map { _ in path + ".tsv" },
                                   matrix: try DescriptorMatrix.open(path: path), initial: try initialCentres(corpus: path))]
        if let real = sizes.realCorpus {
            let matrix = try DescriptorMatrix.open(path: real)
            let used = try matrix.slice(0..<min(sizes.rows, matrix.rows))
            let name = URL(fileURLWithPath: real).lastPathComponent
            corpora.append(BenchCorpus(label: "real: \(name)", tag: "real-\(name)-\(used.rows)", path: real, index: nil,
                                       matrix: used, initial: try spacedCentres(of: used, name: name)))
        }
        var failures: [String] = []
        for data in corpora {
            do { try await body(data) } catch let failure as CheckFailure { failures.append("\(data.label): \(failure.message)") }
        }
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }

    /// Initial centres for real descriptors, saved as `.npy`: K rows evenly spaced through
    /// the corpus, skipping a row equal to one already taken (distinct centres keep the first
    /// iterations free of empty clusters).
    func spacedCentres(of matrix: DescriptorMatrix, name: String) throws -> (path: String, codebook: Codebook) {
        let k = sizes.k, d = matrix.dimension
        guard matrix.rows >= k else { throw CheckFailure("\(name) has \(matrix.rows) rows, fewer than k=\(k)") }
        var taken = Set<[Float]>()
        var values: [Float] = []
        values.reserveCapacity(k * d)
        for c in 0..<k {
            var row = c * (matrix.rows / k)
            while row < matrix.rows {
                let x = try matrix.row(row)
                if taken.insert(x).inserted { values += x; break }
                row += 1
            }
        }
        guard values.count == k * d else { throw CheckFailure("\(name) has fewer than k=\(k) distinct rows") }
        let out = sizes.path("centres-k\(k)-of-\(name)-\(matrix.rows).npy")
        try NpyFile.write(path: out, rows: k, columns: d, values: values)
        return (out, try Codebook(k: k, dimension: d, centres: values))
    }

    /// A GMM from a quick k-means (3 Lloyd iterations from the initial centres): each
    /// cluster's mean, floored variance and share of rows, as `GaussianMixture`'s k-means
    /// initialisation does. Saved as means/variances/priors `.npy` for the Python baseline.
    func gaussianMixture(backend: LocalBackend, initial: Codebook, tag: String) async throws
        -> (model: GaussianMixtureModel, paths: (means: String, variances: String, priors: String)) {
        let k = initial.k, d = initial.dimension
        var parameters = KMeansParameters(k: k)
        parameters.iterations = 3
        parameters.tolerance = 0
        parameters.initialization = .given(initial)
        let kmeans = try await KMeans.train(on: backend, parameters: parameters)
        let hard = try await backend.run(KMeansAssignmentPass(codebook: kmeans.codebook, withSquares: true))
        let moments = try await backend.run(MomentPass(dimension: d))
        let floor = max(GaussianMixtureParameters(k: k).varianceFloorRatio * (moments.variances.max() ?? 0),
                        GaussianMixture.minimumVarianceFloor)
        var model = try GaussianMixture.model(fromHardAssignments: hard, centres: kmeans.codebook, varianceFloor: floor,
                                              emptyClusterVariances: [Float](repeating: Float(floor), count: d))
        // Empty clusters: a tiny prior keeps the model valid for every library.
        for c in 0..<k where model.priors[c] == 0 { model.priors[c] = 1e-8 }
        let (means, variances, priors) = (model.means, model.variances, model.priors)
        let paths = (sizes.path("gmm-\(tag)-means.npy"), sizes.path("gmm-\(tag)-variances.npy"),
                     sizes.path("gmm-\(tag)-priors.npy"))
        try NpyFile.write(path: paths.0, rows: k, columns: d, values: means)
        try NpyFile.write(path: paths.1, rows: k, columns: d, values: variances)
        try NpyFile.write(path: paths.2, vector: priors)
        return (model, paths)
    }
}

/// A corpus a section runs on, with the initial centres every library starts from.
struct BenchCorpus {
    /// "synthetic" or "real: FILE", for table titles.
    let label: String
    /// Distinguishes the files cached for this corpus.
    let tag: String
    let path: String
    /// The image index (`.tsv`) of a synthetic corpus made for encoding.
    let index: String?
    /// The rows used (of real descriptors, at most `--rows`).
    let matrix: DescriptorMatrix
    let initial: (path: String, codebook: Codebook)

    /// `count` images of `rows` rows each: the index's images, or for real descriptors
    /// consecutive rows (one photograph's patches) at evenly spaced starts through the corpus.
    func images(count: Int, rows: Int) throws -> [DescriptorMatrix] {
        if let index { return try ImageCollection(index: index, descriptors: matrix).map { try $0.descriptors() } }
        let count = min(count, matrix.rows / rows)
        return try (0..<count).map { i in
            let start = i * (matrix.rows / count)
            return try matrix.slice(start ..< start + rows)
        }
    }
}
