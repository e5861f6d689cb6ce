import Clustering
import Descriptors

/// A PCA the workers apply: to every row before a pass's computation (`projection` in a
/// pass description), or to every encoded vector (`whitening`). Its arrays follow the
/// computation's (a projection's, then a whitening's): mean f32[D], components f32[D'·D],
/// eigenvalues f32[D'].
public struct ProjectionDescription: Codable, Sendable, Equatable {
    /// D, the values of a row as read.
    public var inputDimension: Int
    /// D', the values of a projected row.
    public var outputDimension: Int
    /// Divide each component by √(eigenvalue + ε).
    public var whiten: Bool
    /// Vector whitening's power law (then L2 before and after the projection); absent for descriptors.
    public var power: Double?

    public init(_ projection: PCAProjection) {
        inputDimension = projection.inputDimension
        outputDimension = projection.outputDimension
        whiten = projection.whiten
        power = projection.power
    }

    /// The projection, from a message's arrays `first`, `first + 1`, `first + 2`.
    func decode(arrays message: WireMessage, first: Int) throws -> PCAProjection {
        let d = try PassDecoder.positive(inputDimension, "projection inputDimension")
        let kept = try PassDecoder.positive(outputDimension, "projection outputDimension")
        do {
            let pca = try PrincipalComponents(dimension: d, mean: try message.array(first, as: Float.self, count: d),
                                              components: try message.array(first + 1, as: Float.self,
                                                                            count: try PassDecoder.product(kept, d)),
                                              eigenvalues: try message.array(first + 2, as: Float.self, count: kept))
            return try PCAProjection(pca, whiten: whiten, power: power)
        } catch let error where !(error is ClusterError) {
            throw ClusterError.malformed("projection: \(error)")
        }
    }
}

extension PCAProjection {
    /// The PCA as array frames: mean f32[D], components f32[D'·D], eigenvalues f32[D'].
    public var frames: [[UInt8]] {
        [Frame.encode(principalComponents.mean), Frame.encode(principalComponents.components),
         Frame.encode(principalComponents.eigenvalues)]
    }
}

extension PCAProjection: WireRowMapping {
    public func describe(in description: inout PassDescription) {
        description.dimension = outputDimension
        description.projection = ProjectionDescription(self)
    }
}

extension PassDescription.Kind {
    /// The array frames of the pass's own model, before a projection's.
    var modelArrayCount: Int {
        switch self {
        case .moments, .sample, .covariance, .extract: 0
        case .kmeansAssignment, .encodeVLAD, .kmeansParallelRound, .search: 1
        case .gaussianExpectation, .encodeFisher: 3
        }
    }
}
