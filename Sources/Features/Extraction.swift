import Descriptors
import Foundation

/// One image that could not be read.
public struct SkippedImage: Sendable {
    public let key: String
    public let path: String
    public let error: any Error
}

/// What an extraction did.
public struct ExtractionSummary: Sendable {
    /// Images whose descriptors were written (an image may have none).
    public var images = 0
    public var descriptors = 0
    /// Images that could not be decoded, in input order.
    public var skipped: [SkippedImage] = []
}

/// Runs a `FeatureExtractor` over an `ImageSource`: every image's descriptors in one file,
/// in input order, and the image index (`key<TAB>first row<TAB>row count`) that
/// `ImageCollection(index:descriptors:)` reads. Both files are written under temporary
/// names and renamed into place only at the end, so a failed run leaves neither half-written.
public struct Extraction: Sendable {
    public var extractor: FeatureExtractor
    public var decoder: ImageDecoder
    /// Images computed at a time, each on a thread of its own.
    public var threads: Int
    /// Fail on the first bad image instead of skipping it.
    public var strict: Bool

    public init(extractor: FeatureExtractor, decoder: ImageDecoder = ImageDecoder(), threads: Int = 1, strict: Bool = false) {
        self.extractor = extractor
        self.decoder = decoder
        self.threads = max(1, threads)
        self.strict = strict
    }

    /// Extracts every image of `source` into `descriptors` (`.npy` or `.fvecs`) and `index`.
    /// `skipped` is called, in input order, for each image that cannot be read (never when
    /// `strict`: the error is thrown instead, naming the file, and nothing is written).
    public func run(_ source: ImageSource, descriptors: String, index: String,
                    skipped report: (SkippedImage) -> Void = { _ in }) throws -> ExtractionSummary {
        let writer = try DescriptorWriter(path: descriptors, dimension: FeatureExtractor.dimension)
        var indexText = ""
        var summary = ExtractionSummary()
        do {
            let batch = threads
            var start = 0
            while start < source.entries.count {
                let entries = Array(source.entries[start ..< min(source.entries.count, start + batch)])
                for (entry, result) in zip(entries, extract(entries)) {
                    switch result {
                    case .success(let values):
                        let rows = values.count / FeatureExtractor.dimension
                        indexText += "\(entry.key)\t\(writer.rows)\t\(rows)\n"
                        try writer.append(values)
                        summary.images += 1
                        summary.descriptors += rows
                    case .failure(let error):
                        if strict { throw error }
                        let image = SkippedImage(key: entry.key, path: entry.path, error: error)
                        summary.skipped.append(image)
                        report(image)
                    }
                }
                start += entries.count
            }
            let sink = try AtomicFileSink(path: index)
            do {
                try sink.write(Array(indexText.utf8))
                try writer.finish()
                try sink.commit()
            } catch {
                sink.abort()
                throw error
            }
        } catch {
            writer.cancel()
            throw error
        }
        return summary
    }

    /// The descriptors of `entries`, each computed on a thread of its own.
    private func extract(_ entries: [ImageSource.Entry]) -> [Result<[Float], any Error>] {
        let results = UnsafeMutableBufferPointer<Result<[Float], any Error>>.allocate(capacity: entries.count)
        defer { results.deallocate() }
        let extractor = self.extractor, decoder = self.decoder
        nonisolated(unsafe) let slots = results
        DispatchQueue.concurrentPerform(iterations: entries.count) { i in
            (slots.baseAddress! + i).initialize(to: Result { try extractor.extract(decoder.grey(path: entries[i].path)).descriptors })
        }
        let values = Array(results)
        _ = results.deinitialize()
        return values
    }
}
