import ClusterProtocol
import Clustering
import Descriptors

import Cluster

/// A GMM from a reply's arrays (means, variances, priors).
enum GaussianMixtureModelFiles {
    static func model(from message: WireMessage, k: Int, dimension: Int) throws -> GaussianMixtureModel {
        try GaussianMixtureModel(k: k, dimension: dimension, means: try message.array(0, as: Float.self, count: k * dimension),
                                 variances: try message.array(1, as: Float.self, count: k * dimension),
                                 priors: try message.array(2, as: Float.self, count: k))
    }
}

/// Models as .npy files: centres K×D; GMM as PREFIX_means (K×D), PREFIX_variances (K×D, σ²)
/// and PREFIX_priors (K).
enum ModelFiles {
    static func codebook(centres path: String) throws -> Codebook {
        let array = try NpyFile.readFloat32(path: path)
        return try Codebook(k: array.rows, dimension: array.columns, centres: array.values)
    }

    static func gaussianMixture(means: String, variances: String, priors: String) throws -> GaussianMixtureModel {
        let m = try NpyFile.readFloat32(path: means)
        let v = try NpyFile.readFloat32(path: variances)
        let p = try NpyFile.readFloat32(path: priors)
        guard v.rows == m.rows, v.columns == m.columns else {
            throw DescriptorError(.dimensionMismatch, "variances are \(v.rows)×\(v.columns) but means are \(m.rows)×\(m.columns)",
                                  path: variances)
        }
        guard p.rows * p.columns == m.rows else {
            throw DescriptorError(.dimensionMismatch, "\(p.rows * p.columns) priors for \(m.rows) components", path: priors)
        }
        return try GaussianMixtureModel(k: m.rows, dimension: m.columns, means: m.values, variances: v.values, priors: p.values)
    }

    /// Writes the three files and returns their paths.
    static func write(_ model: GaussianMixtureModel, prefix: String) throws -> [String] {
        let paths = ["\(prefix)_means.npy", "\(prefix)_variances.npy", "\(prefix)_priors.npy"]
        try NpyFile.write(path: paths[0], rows: model.k, columns: model.dimension, values: model.means)
        try NpyFile.write(path: paths[1], rows: model.k, columns: model.dimension, values: model.variances)
        try NpyFile.write(path: paths[2], vector: model.priors)
        return paths
    }
}
