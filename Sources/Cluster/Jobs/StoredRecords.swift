import ClusterProtocol
import Clustering
import Foundation
import Storage

/// A model read back from the store, checked and typed.
public enum StoredModel: Sendable, Equatable {
    case codebook(Codebook, ModelRecord)
    case gaussianMixture(GaussianMixtureModel, ModelRecord)
    case principalComponents(PCAProjection, ModelRecord)

    public var record: ModelRecord {
        switch self {
        case .codebook(_, let record), .gaussianMixture(_, let record), .principalComponents(_, let record): record
        }
    }

    /// Decodes a `models` value, checking its values against its K and D.
    public init(_ value: StoredValue, name: String) throws {
        let record = try value.decode(ModelRecord.self, key: "model \(name)")
        guard record.k >= 1, record.dimension >= 1, value.values.count == record.valueCount else {
            throw StoreError(.corrupt, "model \(name): \(value.values.count) values for a \(record.kind.rawValue) of k=\(record.k), D=\(record.dimension)")
        }
        switch record.kind {
        case .kmeans:
            self = .codebook(try Codebook(k: record.k, dimension: record.dimension, centres: value.values), record)
        case .gmm:
            self = .gaussianMixture(try GaussianMixtureModel(k: record.k, dimension: record.dimension,
                                                             concatenated: value.values), record)
        case .pca:
            self = .principalComponents(try PCAProjection(record: record, values: value.values), record)
        }
    }

    /// The model's arrays: centres; or means, variances, priors.
    public var arrays: [[Float]] {
        switch self {
        case .codebook(let codebook, _): [codebook.centres]
        case .gaussianMixture(let model, _): [model.means, model.variances, model.priors]
        case .principalComponents(let projection, _):
            [projection.principalComponents.mean, projection.principalComponents.components, projection.principalComponents.eigenvalues]
        }
    }
}

/// A job as the store keeps it (the metadata of a `jobs` value): what was asked, how far
/// it got, and its last checkpoint. Values: the given initial model's arrays
/// (`initialValues` floats), then the checkpoint's model (`checkpoint.modelValues`).
struct JobRecord: Codable, Sendable {
    /// A training job's spec…
    var job: TrainingJob?
    /// …or an encoding job's…
    var encoding: EncodingJob?
    /// …or an extraction job's (with its images while it runs: `imagesTotal` of them)…
    var extraction: ExtractionJob?
    /// …or a TRANSFORM-SET's.
    var transform: TransformSetJob?
    var state: JobState
    var message: String?
    var iterations: [IterationRecord]
    var initialValues: Int
    var checkpoint: CheckpointRecord?
    /// Once the job has succeeded; its model is the last checkpoint's.
    var outcome: JobOutcome?
    /// Passes started by the time of the checkpoint (a resumed job numbers its passes after
    /// these and the few that may have followed the checkpoint).
    var passes: UInt32?
    /// Encoding and extraction jobs: images done so far, and in all; transform jobs: vectors.
    var imagesDone: Int?
    var imagesTotal: Int?
    /// Extraction jobs: descriptors so far, and the images skipped.
    var descriptors: Int?
    var skipped: [SkippedImageReport]?
    /// When the job ended (succeeded, failed or was cancelled), in seconds since 1970.
    var ended: Double?
}

extension JobRecord {
    /// The job's kind, as STATUS and PROGRESS name it.
    var kindName: String {
        job?.kind.rawValue ?? encoding?.encoding.rawValue
            ?? (extraction != nil ? "extract" : transform != nil ? "transform" : "unknown")
    }

    /// The sets the job writes while it runs.
    var setsWritten: [String] { [encoding?.set, transform?.into].compactMap { $0 } }
    /// The sets the job reads while it runs.
    var setsRead: [String] { [transform?.set, job?.set].compactMap { $0 } }
}

/// The metadata of a checkpoint; its model's values follow the initial arrays.
struct CheckpointRecord: Codable, Sendable {
    /// The phase a checkpoint was taken in, spelled as in the store.
    enum Phase: String, Codable, Sendable {
        /// A k-means job, or a GMM's k-means initialisation.
        case kmeans
        /// A GMM's EM iterations.
        case em
        /// A PCA job's one checkpoint: its model.
        case pca
    }

    var phase: Phase
    var modelValues: Int
    var converged: Bool
    var kmeansReports: [KMeansIterationReport]?
    var emReports: [GaussianMixtureIterationReport]?
    var varianceFloor: Double?
    var dataVariances: [Double]?
}

/// Conversions between the engine's checkpoints and their stored form.
enum StoredCheckpoint {
    static func record(_ checkpoint: TrainingJobRunner.Checkpoint) -> (CheckpointRecord, [Float]) {
        switch checkpoint {
        case .kmeans(let state): record(state)
        case .gmm(let state): record(state)
        case .pca(let values): (CheckpointRecord(phase: .pca, modelValues: values.count, converged: true), values)
        }
    }

    static func record(_ checkpoint: KMeansCheckpoint) -> (CheckpointRecord, [Float]) {
        (CheckpointRecord(phase: .kmeans, modelValues: checkpoint.codebook.centres.count, converged: checkpoint.converged,
                          kmeansReports: checkpoint.reports), checkpoint.codebook.centres)
    }

    static func record(_ checkpoint: GaussianMixtureCheckpoint) -> (CheckpointRecord, [Float]) {
        switch checkpoint {
        case .initializing(let floor, let variances, let kmeans):
            var (record, values) = Self.record(kmeans)
            record.varianceFloor = floor
            record.dataVariances = variances
            return (record, values)
        case .expectationMaximization(let floor, let model, let reports, let converged):
            let values = model.concatenated
            return (CheckpointRecord(phase: .em, modelValues: values.count, converged: converged, emReports: reports,
                                     varianceFloor: floor), values)
        }
    }

    static func kmeans(_ record: CheckpointRecord, values: [Float], k: Int, dimension: Int) throws -> KMeansCheckpoint {
        guard record.phase == .kmeans else { throw StoreError(.corrupt, "a k-means checkpoint of phase \(record.phase.rawValue)") }
        return KMeansCheckpoint(codebook: try Codebook(k: k, dimension: dimension, centres: values),
                         reports: record.kmeansReports ?? [], converged: record.converged)
    }

    static func gaussianMixture(_ record: CheckpointRecord, values: [Float], k: Int, dimension: Int) throws -> GaussianMixtureCheckpoint {
        guard let floor = record.varianceFloor else { throw StoreError(.corrupt, "GMM checkpoint without a variance floor") }
        guard record.phase != .pca else { throw StoreError(.corrupt, "a GMM checkpoint of phase \(record.phase.rawValue)") }
        if record.phase == .kmeans {
            return .initializing(varianceFloor: floor, dataVariances: record.dataVariances ?? [],
                                 kmeans: try kmeans(record, values: values, k: k, dimension: dimension))
        }
        let model: GaussianMixtureModel
        do {
            model = try GaussianMixtureModel(k: k, dimension: dimension, concatenated: values)
        } catch {
            throw StoreError(.corrupt, "GMM checkpoint: \(error)")
        }
        return .expectationMaximization(varianceFloor: floor, model: model, reports: record.emReports ?? [],
                                        converged: record.converged)
    }
}
