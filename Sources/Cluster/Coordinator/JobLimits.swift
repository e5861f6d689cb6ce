import ClusterProtocol
import Clustering
import Descriptors
import Features

/// `a·b`, or `Int.max` if it overflows (the operands are sizes, ≥ 0).
func saturatingProduct(_ a: Int, _ b: Int) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? .max : product
}

extension CoordinatorSettings {
    /// Throws unless `value` ≤ `limit`; `what` says what was measured, `setting` names the limit.
    func check(_ what: String, _ value: Int, against limit: Int, setting: String, advice: String = "") throws {
        guard value > limit else { return }
        throw ClusterError(.limit, "\(what) is \(value == .max ? "beyond \(Int.max)" : "\(value)"), above the coordinator's limit "
                           + "(\(setting) = \(limit))" + (advice.isEmpty ? "" : "; \(advice)"))
    }

    /// The shape of a model the coordinator would hold and send: D and K·D.
    func checkModel(k: Int, dimension: Int) throws {
        try check("D", dimension, against: maximumDimension, setting: "maximumDimension")
        try check("K·D (k=\(k), D=\(dimension))", saturatingProduct(k, dimension), against: maximumModelValues,
                  setting: "maximumModelValues")
    }

    /// The array frames of a client request, in all.
    func checkRequestArrays(_ arrays: [[UInt8]]) throws {
        try check("the request's array frames' size in bytes", arrays.reduce(0) { $0 &+ $1.count },
                  against: maximumRequestArrayBytes, setting: "maximumRequestArrayBytes")
    }

    /// What a training job (already validated against its corpus) makes the coordinator
    /// hold and exchange: its model, its seeding sample, and each shard's sample result.
    func check(_ job: TrainingJob, corpus: CorpusReference) throws {
        try checkModel(k: job.k, dimension: corpus.dimension)
        if job.initialization == .kmeansParallel { return try checkKMeansParallel(job, corpus: corpus) }
        let sampleRows: Int
        switch (job.kind, job.initialization) {
        case (.kmeans, .kmeansPlusPlus), (.gmm, .kmeans): sampleRows = min(max(saturatingProduct(64, job.k), 10_000), corpus.rows)
        case (_, .random): sampleRows = job.k
        default: return
        }
        let rowBytes = saturatingProduct(corpus.dimension, 4)
        try check("the seeding sample (\(sampleRows) rows of D=\(corpus.dimension) float32 values) in bytes",
                  saturatingProduct(sampleRows, rowBytes), against: maximumSampleBytes, setting: "maximumSampleBytes",
                  advice: job.initialization == .random ? "" : "initialise at random or give the initial model")
        // A shard of r rows contributes at most ⌈S·r/N⌉ rows of the S-row sample.
        let shardRows = min(job.shardRows, corpus.rows)
        let perShard = min(sampleRows, (saturatingProduct(sampleRows, shardRows) / corpus.rows) + 1)
        try check("a shard's sample result (up to \(perShard) rows of D=\(corpus.dimension) float32 values) in bytes",
                  saturatingProduct(perShard, rowBytes), against: maximumMessageSize,
                  setting: "maximumMessageSize, from maximumModelValues", advice: "use fewer rows per shard")
    }

    /// k-means‖ seeding: the candidates (at most `KMeansParallel.candidateLimit`) are held by
    /// the coordinator and are the model of the rounds and of the weighting pass; a shard's
    /// round result may send every row of the shard.
    private func checkKMeansParallel(_ job: TrainingJob, corpus: CorpusReference) throws {
        let defaults = KMeansParameters(k: job.k)
        let candidates = KMeansParallel.candidateLimit(k: job.k, rounds: defaults.seedingRounds,
                                                       oversampling: defaults.seedingOversampling)
        let advice = "raise maximumModelValues, or initialise with random centres or a given model (k-means++ takes time quadratic in K)"
        try check("k-means‖ candidates·D (up to \(candidates) candidates, D=\(corpus.dimension))",
                  saturatingProduct(candidates, corpus.dimension), against: maximumModelValues, setting: "maximumModelValues",
                  advice: advice)
        try check("the k-means‖ candidates (up to \(candidates) rows of D=\(corpus.dimension) float32 values) in bytes",
                  saturatingProduct(candidates, saturatingProduct(corpus.dimension, 4)), against: maximumSampleBytes,
                  setting: "maximumSampleBytes", advice: advice)
        // Each row sent: its index (8 bytes), its distance (8) and its values (4·D).
        let shardRows = min(job.shardRows, corpus.rows)
        try check("a shard's k-means‖ round result (up to \(shardRows) rows of D=\(corpus.dimension)) in bytes",
                  saturatingProduct(shardRows, saturatingProduct(corpus.dimension, 4) &+ 16), against: maximumMessageSize,
                  setting: "maximumMessageSize, from maximumModelValues", advice: "use fewer rows per shard")
    }

    /// What an encoding job makes the coordinator hold and receive: its model, its images,
    /// and each shard's result (`imagesPerShard` vectors of `vectorDimension` float32
    /// values, and their keys in the metadata).
    func checkEncoding(images: [ImageSlice], imagesPerShard: Int, model: (k: Int, dimension: Int),
                       vectorDimension: Int) throws {
        try checkModel(k: model.k, dimension: model.dimension)
        try check("the number of images", images.count, against: maximumImagesPerJob, setting: "maximumImagesPerJob")
        let perShard = min(max(1, imagesPerShard), max(1, images.count))
        try check("a shard's result (\(perShard) vectors of \(vectorDimension) float32 values) in bytes",
                  saturatingProduct(perShard, saturatingProduct(vectorDimension, 4)), against: maximumMessageSize,
                  setting: "maximumMessageSize, from maximumModelValues", advice: "use fewer images per shard")
        // Keys as JSON strings: at most 6 bytes per byte (\u escapes), quotes and a comma.
        var largest = 0, start = 0
        while start < images.count {
            let end = min(start + perShard, images.count)
            largest = max(largest, images[start ..< end].reduce(1024) { $0 + 6 * $1.key.utf8.count + 3 })
            start = end
        }
        try check("a shard's result metadata (the keys of \(perShard) images) in bytes, at most", largest,
                  against: maximumMessageSize, setting: "maximumMessageSize, from maximumModelValues",
                  advice: "use fewer images per shard or shorter keys")
    }
}

extension CoordinatorSettings {
    /// Images per extraction task when the client leaves the choice to the coordinator (at most).
    static let defaultImagesPerExtractionShard = 16
    /// Bytes an extract RESULT's metadata needs besides its image entries.
    private static let resultOverhead = 1024

    /// Bytes of one image's entry in an extract RESULT, besides its descriptors: its count
    /// (8), its key and, if unreadable, its reason as JSON strings (at most 6 bytes per byte).
    private static func extractionEntryBytes(keyBytes: Int) -> Int {
        8 + 6 * (keyBytes + ExtractedDescriptors.maximumErrorBytes) + 6
    }

    /// What an extraction job makes the coordinator hold and receive; returns its images
    /// per shard (`imagesPerShard`, or for 0 the most up to 16 whose RESULT fits). A shard's
    /// descriptors are bounded in advance only for dense SIFT with a maximum side (at most
    /// ⌈side/step⌉² per image); otherwise the worker refuses a RESULT beyond
    /// `extractionResultBytes`.
    func checkExtraction(_ job: ExtractionJob, extractor: FeatureExtractor) throws -> Int {
        guard job.imagesPerShard >= 0 else {
            throw ClusterError(.invalidArgument, "images per shard must be ≥ 1, or 0 to let the coordinator choose (got \(job.imagesPerShard))")
        }
        try check("the number of images", job.images.count, against: maximumImagesPerJob, setting: "maximumImagesPerJob")
        let entry = Self.extractionEntryBytes(keyBytes: job.images.map(\.key.utf8.count).max() ?? 0)
        var perImage = 0
        if case .denseSIFT(let step, _) = extractor.method, let side = extractor.maximumSide {
            let across = (side + step - 1) / step
            perImage = saturatingProduct(saturatingProduct(across, across), FeatureExtractor.dimension * 4)
        }
        var imagesPerShard = job.imagesPerShard
        if imagesPerShard == 0 {
            let room = maximumMessageSize - Self.resultOverhead
            imagesPerShard = max(1, min(Self.defaultImagesPerExtractionShard, room / (entry &+ perImage)))
        }
        let perShard = min(imagesPerShard, max(1, job.images.count))
        try check("a shard's result metadata (\(perShard) images' counts, keys and reasons) in bytes, at most",
                  saturatingProduct(perShard, entry) &+ Self.resultOverhead, against: maximumMessageSize,
                  setting: "maximumMessageSize, from maximumModelValues", advice: "use fewer images per shard or shorter keys")
        if perImage > 0 {
            try check("a shard's dense SIFT descriptors (\(perShard) images of up to \(perImage) bytes each) in bytes, at most",
                      saturatingProduct(perShard, perImage), against: extractionResultBytes(imagesPerShard: perShard, entryBytes: entry),
                      setting: "maximumMessageSize, from maximumModelValues, less the result's metadata",
                      advice: "use fewer images per shard or a smaller maximum side")
        }
        return imagesPerShard
    }

    /// The descriptor bytes an extract RESULT of `imagesPerShard` images may carry: the
    /// maximum message size less its metadata and counts.
    private func extractionResultBytes(imagesPerShard: Int, entryBytes: Int) -> Int {
        max(1, maximumMessageSize - Self.resultOverhead - saturatingProduct(imagesPerShard, entryBytes))
    }

    /// `extractionResultBytes` for `job`'s longest key.
    func extractionResultBytes(_ job: ExtractionJob, imagesPerShard: Int) -> Int {
        extractionResultBytes(imagesPerShard: imagesPerShard,
                              entryBytes: Self.extractionEntryBytes(keyBytes: job.images.map(\.key.utf8.count).max() ?? 0))
    }
}
