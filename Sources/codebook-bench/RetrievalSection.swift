import ArgumentParser
import CVLFeat
import Clustering
import Descriptors
import Encoding
import Features
import Foundation
import Search
import Synchronization

/// Options of the retrieval section.
struct RetrievalOptions: ParsableArguments {
    @Option(help: "A folder of JPEG/PNG photographs to build the benchmark from (default: scikit-image's photographs, fetched as scripts/fetch-photographs.sh does, into --work-dir/photographs).")
    var images: String?
    @Option(help: "A Holidays layout instead: DIR/jpg/NNNNNN.jpg (query = number divisible by 100, its group = number / 100), optional DIR/distractors/ and DIR/train/.")
    var holidays: String?
    @Option(help: "Seed of the copies, crops and codebooks.") var seed: UInt64 = 20_261_206
    @Option(help: "SIFT is computed on images shrunk to this longer side.") var maxSide: Int = 640
    @Option(help: "Random crops per distractor photograph.") var distractorCrops: Int = 30
    @Option(help: "Random crops per training photograph, besides its copies.") var trainingCrops: Int = 13
    @Option(help: "Descriptor PCA: dimensions kept.") var descriptorDimensions: Int = 64
    @Option(help: "Vector PCA-whitening: dimensions kept (at most training images − 1).") var whitenDimensions: Int = 128
    @Option(help: "Training descriptors used for the codebooks (evenly spaced).") var trainRows: Int = 100_000
    @Option(help: "Codebook sizes.") var ks: [Int] = [64, 256]

    func validated() throws -> RetrievalOptions {
        guard images == nil || holidays == nil else { throw ValidationError("--images and --holidays exclude each other") }
        guard maxSide >= FeatureExtractor.minimumSide, distractorCrops >= 0, trainingCrops >= 0, (1...128).contains(descriptorDimensions),
              whitenDimensions >= 1, trainRows >= 1, !ks.isEmpty, ks.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("need --max-side ≥ \(FeatureExtractor.minimumSide), crops ≥ 0, --descriptor-dimensions 1…128, "
                                  + "--whiten-dimensions ≥ 1, --train-rows ≥ 1, --ks ≥ 1")
        }
        return self
    }
}

/// Section `retrieval`: mean average precision in the INRIA Holidays protocol of VLAD and
/// Fisher pipelines (plain SIFT, RootSIFT, descriptor PCA, vector PCA-whitening), each
/// through Codebook's encoders and through VLFeat's on the same codebooks; the two must
/// give the same vectors (up to rounding) and the same mAP.
struct RetrievalSection {
    let sizes: BenchSizes
    let options: RetrievalOptions

    /// The descriptor and vector processing of a pipeline, cumulative.
    enum Variant: Int, CaseIterable {
        case sift, rootSIFT, pca, whitened

        func label(_ options: RetrievalOptions) -> String {
            switch self {
            case .sift: "SIFT"
            case .rootSIFT: "RootSIFT"
            case .pca: "RootSIFT + PCA\(options.descriptorDimensions)"
            case .whitened: "RootSIFT + PCA\(options.descriptorDimensions) + whitening"
            }
        }
    }

    /// One encoding of the table's columns.
    struct Encoder: Hashable {
        let fisher: Bool
        let k: Int
        var label: String { (fisher ? "Fisher" : "VLAD") + " K=\(k)" }
        /// The options of both libraries (VLFeat's flags are their raw values).
        static let vladOptions: VLADOptions = [.squareRoot, .normalizeComponents]
        static let fisherOptions: FisherOptions = .improved
        /// max|Δ|/max|ref| allowed between the libraries' vectors (`difference`).
        static let tolerance = 1e-4

        /// How far Codebook's vector `a` is from VLFeat's `b`: max|Δ|/max|ref| of the signed
        /// squares sign(v)·v². Both encodings take the signed square root, which magnifies
        /// float32 rounding of values near 0 (and, for Fisher vectors, VLFeat's float32
        /// posteriors decide which terms of q ≈ 1e−6 are skipped); squaring undoes it.
        static func difference(_ a: [Float], _ b: [Float]) -> Double {
            func squared(_ v: [Float]) -> [Float] { v.map { $0 * abs($0) } }
            return Check.vectorDifference(squared(a), squared(b))
        }
    }

    /// mAP difference allowed between the libraries: their vectors differ in the last bits,
    /// which can swap two images of almost equal score.
    static let mapTolerance = 0.005

    func run() async throws {
        let dataset = try prepare()
        let result = try await Self.evaluate(dataset, options: options, threads: sizes.threads) { print($0) }
        result.table(options: options, dataset: dataset, source: sourceDescription).print()
        if !result.failures.isEmpty { throw CheckFailure(result.failures.joined(separator: "; ")) }
    }

    private var sourceDescription: String {
        if let holidays = options.holidays { return "the Holidays layout in \(holidays)" }
        return "photographs of \(options.images ?? sizes.path("photographs")) (generated layout in \(generatedDirectory))"
    }

    private var generatedDirectory: String { sizes.path("retrieval-s\(options.seed)") }

    /// The dataset: the Holidays layout given, or one generated from the photographs.
    private func prepare() throws -> RetrievalDataset {
        if let holidays = options.holidays { return try RetrievalDataset.holidays(directory: holidays) }
        let folder = try options.images ?? fetchPhotographs()
        let photographs = try ImageSource(directory: folder).entries
        guard photographs.count >= HolidaysLayoutWriter.roles else {
            throw CheckFailure("\(folder) has \(photographs.count) photographs; the benchmark needs at least \(HolidaysLayoutWriter.roles)")
        }
        let started = Stopwatch.now()
        let written = try HolidaysLayoutWriter(photographs: photographs, seed: options.seed, distractorCrops: options.distractorCrops,
                                               trainingCrops: options.trainingCrops).write(to: generatedDirectory)
        print("(wrote \(written.count) images to \(generatedDirectory) in \(seconds(Stopwatch.now() - started)); "
              + "manifest.tsv says how each was made)")
        return try RetrievalDataset.holidays(directory: generatedDirectory)
    }

    /// scikit-image's photographs in --work-dir/photographs, by scripts/fetch-photographs.sh.
    private func fetchPhotographs() throws -> String {
        let folder = sizes.path("photographs")
        let script = URL(fileURLWithPath: sizes.baselines).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/fetch-photographs.sh").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, folder]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CheckFailure("\(script) \(folder) exited with \(process.terminationStatus); give photographs with --images DIR")
        }
        return folder
    }

    /// The mAP of every pipeline and encoder, for both libraries.
    struct Result {
        /// [variant][encoder] → (Codebook's mAP, VLFeat's mAP, worst vector difference before whitening).
        var cells: [Variant: [Encoder: (ours: Double, vlfeat: Double, difference: Double)]] = [:]
        var encoders: [Encoder] = []
        var whitenedDimensions: [Encoder: Int] = [:]
        var trainingDescriptors = 0
        var databaseDescriptors = 0
        var failures: [String] = []

        func table(options: RetrievalOptions, dataset: RetrievalDataset, source: String) -> MarkdownTable {
            var table = MarkdownTable("Retrieval (Holidays protocol): mAP of \(dataset.queries.count) queries over \(dataset.database.count) "
                                      + "images (\(dataset.distractors) distractors); Codebook / VLFeat 0.9.21 on the same codebooks",
                                      columns: ["pipeline"] + encoders.map(\.label))
            for variant in Variant.allCases {
                guard let row = cells[variant] else { continue }
                let label = variant.label(options) + (variant == .whitened
                    ? " (D'=" + Set(whitenedDimensions.values).sorted().map(String.init).joined(separator: "/") + ")" : "")
                let values = encoders.map { encoder in
                    row[encoder].map { format($0.ours, "%.3f") + " / " + format($0.vlfeat, "%.3f") } ?? "–"
                }
                table.add(row: [label] + values)
            }
            let worst = cells.values.flatMap(\.values).map(\.difference).max() ?? 0
            table.note("Data: \(source). \(dataset.queries.count) queries (the first image of each group, as in Holidays), each relevant "
                       + "to the other images of its group; \(dataset.database.count - dataset.queries.count) other database images, of which "
                       + "\(dataset.distractors) distractors relevant to no query. Ranking: exact inner product over the whole database "
                       + "(InnerProductSearch); AP as Holidays' eval_holidays.py computes it (trapezoids between the precision before and "
                       + "after each true positive, score_ap_from_ranks_1), the query itself removed from its ranking.")
            table.note((dataset.trainedOnDatabase
                        ? "Codebooks, PCA and whitening learnt on the database itself (no disjoint training set: put one in DIR/train). "
                        : "Codebooks, PCA and whitening learnt on the \(dataset.training.count) training images, disjoint from the database. ")
                       + "\(trainingDescriptors) training and \(databaseDescriptors) database SIFT descriptors (VLFeat SIFT, images "
                       + "shrunk to \(options.maxSide) pixels); k-means (k-means++, 25 iterations) and GMM (EM, k-means init) on at "
                       + "most \(options.trainRows) of them, per descriptor space.")
            table.note("VLAD: signed square root, intra-normalisation, L2 (VLADOptions [.squareRoot, .normalizeComponents], "
                       + "vl_vlad_encode flags 0x3); Fisher: improved (square root, L2; vl_fisher_encode flags 0x3). "
                       + "Descriptor PCA: to \(options.descriptorDimensions) dimensions, no whitening, learnt on the training RootSIFT. "
                       + "Whitening (Jégou & Chum 2012): the encoders' square root is the power law, then PCA of the training "
                       + "images' vectors to D' (at most \(options.whitenDimensions) and the training images − 1), whitening, L2; "
                       + "the same whitening is applied to both libraries' vectors.")
            table.note("Each cell: Codebook / VLFeat mAP. Vectors compared image by image before whitening: worst max|Δ|/max|ref| "
                       + format(worst, "%.1e") + " of the signed squares sign(v)·v² (tolerance \(Encoder.tolerance); they undo the "
                       + "square root, which magnifies float32 rounding near 0); mAPs must agree within \(RetrievalSection.mapTolerance).")
            return table
        }
    }

    /// Runs every pipeline on `dataset`; `log` receives progress lines.
    static func evaluate(_ dataset: RetrievalDataset, options: RetrievalOptions, threads: Int,
                         log: (String) -> Void) async throws -> Result {
        var result = Result()
        result.encoders = options.ks.flatMap { k in [Encoder(fisher: false, k: k)] } + options.ks.map { Encoder(fisher: true, k: $0) }
        let extractor = try FeatureExtractor(method: .sift, maximumSide: options.maxSide)
        var started = Stopwatch.now()
        let database = try await extract(dataset.database, extractor: extractor, threads: threads)
        let training = dataset.trainedOnDatabase ? database : try await extract(dataset.training, extractor: extractor, threads: threads)
        result.databaseDescriptors = database.reduce(0) { $0 + $1.count } / FeatureExtractor.dimension
        result.trainingDescriptors = training.reduce(0) { $0 + $1.count } / FeatureExtractor.dimension
        log("(SIFT of \(dataset.database.count) + \(dataset.trainedOnDatabase ? 0 : dataset.training.count) images in "
            + "\(seconds(Stopwatch.now() - started)))")

        let rootDatabase = database.map(rootSIFT), rootTraining = training.map(rootSIFT)
        let pca = try PCAProjection(try await descriptorPCA(rootTraining, kept: options.descriptorDimensions, threads: threads),
                                    whiten: false)
        let spaces: [(Variant, database: [[Float]], training: [[Float]], dimension: Int)] = [
            (.sift, database, training, FeatureExtractor.dimension),
            (.rootSIFT, rootDatabase, rootTraining, FeatureExtractor.dimension),
            (.pca, rootDatabase.map { pca.project($0, rows: $0.count / pca.inputDimension) },
             rootTraining.map { pca.project($0, rows: $0.count / pca.inputDimension) }, pca.outputDimension),
        ]
        for space in spaces {
            started = Stopwatch.now()
            let sample = try evenlySpaced(space.training, dimension: space.dimension, limit: options.trainRows)
            let backend = LocalBackend(corpus: sample, threads: threads)
            let databaseImages = try space.database.map { try DescriptorMatrix(rows: $0.count / space.dimension, dimension: space.dimension, values: $0) }
            let trainingImages = try space.training.map { try DescriptorMatrix(rows: $0.count / space.dimension, dimension: space.dimension, values: $0) }
            for k in options.ks {
                var kmeans = KMeansParameters(k: k)
                kmeans.seed = options.seed
                let codebook = try await KMeans.train(on: backend, parameters: kmeans).codebook
                var gmm = GaussianMixtureParameters(k: k)
                gmm.seed = options.seed
                let model = try await GaussianMixture.train(on: backend, parameters: gmm).model
                for fisher in [false, true] {
                    let encoder = Encoder(fisher: fisher, k: k)
                    let ours: any VectorEncoder = fisher ? try FisherEncoder(model: model, options: Encoder.fisherOptions)
                        : VLADEncoder(codebook: codebook, options: Encoder.vladOptions)
                    let mine = try await encodeAll(databaseImages, ours, threads: threads)
                    let theirs = try await vlfeatAll(databaseImages, encoder: encoder, codebook: codebook, model: model,
                                                     length: ours.encodedDimension, threads: threads)
                    var worst = 0.0
                    for (index, (a, b)) in zip(mine, theirs).enumerated() {
                        let difference = Encoder.difference(a, b)
                        worst = max(worst, difference.isNaN ? .infinity : difference)
                        if !(difference <= Encoder.tolerance) {
                            result.failures.append("\(space.0.label(options)), \(encoder.label): image \(dataset.database[index].key) "
                                                   + "max|Δ|/max|ref| = \(format(difference, "%.3e")) > \(Encoder.tolerance)")
                        }
                    }
                    var variants: [(Variant, [[Float]], [[Float]])] = [(space.0, mine, theirs)]
                    if space.0 == .pca {
                        let trainingVectors = dataset.trainedOnDatabase ? mine : try await encodeAll(trainingImages, ours, threads: threads)
                        let kept = min(options.whitenDimensions, trainingVectors.count - 1, ours.encodedDimension)
                        // The encoders' square root is the power law (power 1 here); the PCA of few long
                        // vectors goes through their Gram matrix (the D×D covariance would not fit).
                        var prepared = trainingVectors.flatMap { $0 }
                        PCAProjection.prepareVectors(&prepared, dimension: ours.encodedDimension, power: 1)
                        let whitening = try PCAProjection(try PrincipalComponents(gramOf: prepared, count: trainingVectors.count,
                                                                                  dimension: ours.encodedDimension, kept: kept),
                                                          whiten: true, power: 1)
                        result.whitenedDimensions[encoder] = kept
                        func whiten(_ vectors: [[Float]]) -> [[Float]] {
                            let flat = whitening.project(vectors.flatMap { $0 }, rows: vectors.count)
                            return (0..<vectors.count).map { Array(flat[$0 * kept ..< ($0 + 1) * kept]) }
                        }
                        variants.append((.whitened, whiten(mine), whiten(theirs)))
                    }
                    for (variant, a, b) in variants {
                        let (ourMAP, theirMAP) = (try meanAveragePrecision(a, dataset), try meanAveragePrecision(b, dataset))
                        result.cells[variant, default: [:]][encoder] = (ourMAP, theirMAP, worst)
                        if !(abs(ourMAP - theirMAP) <= mapTolerance) {
                            result.failures.append("\(variant.label(options)), \(encoder.label): mAP \(format(ourMAP, "%.4f")) (Codebook) vs "
                                                   + "\(format(theirMAP, "%.4f")) (VLFeat)")
                        }
                    }
                }
            }
            log("(\(space.0.label(options)): codebooks, encoding and search in \(seconds(Stopwatch.now() - started)))")
        }
        return result
    }

    /// Each image's SIFT descriptors (row-major, 128 each); an unreadable image is an error naming it.
    static func extract(_ images: [RetrievalDataset.Image], extractor: FeatureExtractor, threads: Int) async throws -> [[Float]] {
        let results = Mutex([[Float]](repeating: [], count: images.count))
        let decoder = ImageDecoder()
        try await ParallelWork.run(count: images.count, threads: threads) { index, _ in
            let descriptors = try extractor.extract(decoder.grey(path: images[index].path)).descriptors
            results.withLock { $0[index] = descriptors }
        }
        return results.withLock { $0 }
    }

    static func rootSIFT(_ values: [Float]) -> [Float] {
        var values = values
        values.withUnsafeMutableBufferPointer { DescriptorTransform.rootSIFT.apply($0, dimension: FeatureExtractor.dimension) }
        return values
    }

    /// The PCA of the training descriptors (the covariance pass, LAPACK), `kept` components.
    static func descriptorPCA(_ images: [[Float]], kept: Int, threads: Int) async throws -> PrincipalComponents {
        let d = FeatureExtractor.dimension
        let all = images.flatMap { $0 }
        let statistics = try await LocalBackend(corpus: try DescriptorMatrix(rows: all.count / d, dimension: d, values: all), threads: threads)
            .run(CovariancePass(dimension: d))
        return try PrincipalComponents(statistics: statistics, kept: kept)
    }

    /// At most `limit` rows of all images' descriptors, evenly spaced.
    static func evenlySpaced(_ images: [[Float]], dimension d: Int, limit: Int) throws -> DescriptorMatrix {
        let all = images.flatMap { $0 }, rows = all.count / d
        guard rows > limit else { return try DescriptorMatrix(rows: rows, dimension: d, values: all) }
        var values: [Float] = []
        values.reserveCapacity(limit * d)
        for i in 0..<limit {
            let row = i * rows / limit
            values += all[row * d ..< (row + 1) * d]
        }
        return try DescriptorMatrix(rows: limit, dimension: d, values: values)
    }

    static func encodeAll(_ images: [DescriptorMatrix], _ encoder: any VectorEncoder, threads: Int) async throws -> [[Float]] {
        let vectors = Mutex([[Float]](repeating: [], count: images.count))
        try await encoder.encodeAll(images, threads: threads) { index, vector in vectors.withLock { $0[index] = vector } }
        return vectors.withLock { $0 }
    }

    /// VLFeat's vectors of `images`; an image without descriptors is all zeros, as Codebook's.
    static func vlfeatAll(_ images: [DescriptorMatrix], encoder: Encoder, codebook: Codebook, model: GaussianMixtureModel,
                          length: Int, threads: Int) async throws -> [[Float]] {
        let vectors = Mutex([[Float]](repeating: [Float](repeating: 0, count: length), count: images.count))
        try await ParallelWork.run(count: threads, threads: threads) { thread, _ in
            let vlfeat = VLFeatImageEncoder(codebook: codebook, model: model)
            var output = [Float](repeating: 0, count: length)
            var scratch: [Float] = []
            for index in stride(from: thread, to: images.count, by: threads) where images[index].rows > 0 {
                try images[index].withFloatRows(0..<images[index].rows, scratch: &scratch) { rows in
                    output.withUnsafeMutableBufferPointer { out in
                        if encoder.fisher {
                            vlfeat.fisher(rows, flags: Int32(Encoder.fisherOptions.rawValue), into: out.baseAddress!)
                        } else {
                            vlfeat.vlad(rows, flags: Int32(Encoder.vladOptions.rawValue), into: out.baseAddress!)
                        }
                    }
                }
                let vector = output
                vectors.withLock { $0[index] = vector }
            }
        }
        return vectors.withLock { $0 }
    }

    /// Holidays' mAP of the database `vectors`: each query ranks the whole database by inner
    /// product (ties by index), itself removed.
    static func meanAveragePrecision(_ vectors: [[Float]], _ dataset: RetrievalDataset) throws -> Double {
        let rankings = try rankings(vectors, queries: dataset.queries.map(\.index))
        let total = zip(dataset.queries, rankings).reduce(0.0) { sum, pair in
            sum + AveragePrecision.holidays(ranking: pair.1, query: pair.0.index, relevant: pair.0.relevant)
        }
        return total / Double(dataset.queries.count)
    }

    /// For each query (an index into `vectors`), every index of `vectors`, best first.
    static func rankings(_ vectors: [[Float]], queries: [Int]) throws -> [[Int]] {
        let d = vectors.first?.count ?? 0
        let flat = vectors.flatMap { $0 }, asked = queries.flatMap { vectors[$0] }
        return try asked.withUnsafeBufferPointer { q in
            try flat.withUnsafeBufferPointer { v in
                try InnerProductSearch.search(queries: q, queryCount: queries.count, vectors: v, rows: vectors.count, dimension: d,
                                          top: vectors.count).map { $0.map(\.row) }
            }
        }
    }
}
