/// A k-means‖ round's model sent as an extension of the previous round's: a round's
/// candidates are the previous round's followed by the rows that round kept, so a worker that
/// holds the previous round's model needs only the candidates after `measured`.
///
/// The coordinator sends a round's model so (TASK `computation.extendsPass`: the previous
/// pass; the candidates frame holds candidates `measured ..< k` only) to a worker that said
/// in READY that it can (`WorkerIntroduction.extendsCandidates`) and whose latest model of
/// the job it sent is the previous pass's. The worker joins the candidates it holds and the
/// new ones and decodes the pass as if it had been sent whole: the same pass, bit for bit.
/// A worker that does not hold them answers FAILURE `retry: true` and is sent them whole.
public struct ModelExtension: Sendable, Equatable {
    /// The pass (header `round`) of the same job whose candidates are extended.
    public var previous: UInt32
    /// The pass's computation, with `extendsPass` = `previous`.
    public var computation: PassDescription
    /// The pass's model frames, the candidates frame holding only the new candidates.
    public var model: [[UInt8]]

    /// Pass `round`'s model as an extension of pass `previous`'s, if `round` follows
    /// `previous` and both are k-means‖ rounds whose candidates begin, byte for byte, with
    /// all of `previous`'s (their number being the pass's `measured`); nil otherwise.
    public init?(round: UInt32, computation: PassDescription, model: [[UInt8]],
                 extending previous: (round: UInt32, computation: PassDescription, model: [[UInt8]])) {
        guard computation.kind == .kmeansParallelRound, previous.computation.kind == .kmeansParallelRound,
              previous.round &+ 1 == round, computation.dimension == previous.computation.dimension,
              let measured = computation.measured, measured >= 1, previous.computation.k == measured,
              let candidates = model.first, let held = previous.model.first,
              held.count == measured * computation.dimension * MemoryLayout<Float>.size,
              candidates.count >= held.count, candidates[..<held.count] == held[...] else { return nil }
        self.previous = previous.round
        self.computation = computation
        self.computation.extendsPass = previous.round
        self.model = model
        self.model[0] = Array(candidates[held.count...])
    }

    /// Why a worker cannot take an extension: it does not hold the pass it extends.
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// `message`, a TASK whose computation extends candidates (`extendsPass`), with the
    /// candidates made whole from `held`, the worker's latest model of the job (pass
    /// `heldRound`), and its computation without `extendsPass`. Throws `Missing` if `held` is
    /// not the k-means‖ pass extended, with `measured` candidates of the pass's dimension;
    /// a malformed `ClusterError` if the new candidates are not `k − measured` rows of D, or
    /// if all of them would be more than `maximumValues` values (k·D).
    public static func joined(_ message: WireMessage, _ computation: PassDescription,
                              held: (round: UInt32, computation: any WireComputation)?,
                              maximumValues: Int = .max) throws -> (WireMessage, PassDescription) {
        guard let previous = computation.extendsPass else { return (message, computation) }
        let d = computation.dimension
        guard computation.kind == .kmeansParallelRound, let k = computation.k, let measured = computation.measured,
              d >= 1, measured >= 1, measured <= k else {
            throw ClusterError.malformed("only a k-means‖ round with 1 ≤ measured ≤ k and D ≥ 1 extends the candidates of a pass")
        }
        let values = try PassDecoder.product(k, d)
        guard values <= maximumValues else {
            throw ClusterError.malformed("\(k) k-means‖ candidates of D=\(d) are \(values) values, more than this worker's "
                                         + "limit of \(maximumValues) model values")
        }
        guard let held, held.round == previous, held.computation.description.kind == .kmeansParallelRound,
              held.computation.description.k == measured, held.computation.description.dimension == d,
              let candidates = held.computation.modelArrays.first else {
            throw Missing(description: "no candidates of pass \(previous) of job \(message.header.job) to extend "
                          + "(this worker holds \(held.map { "pass \($0.round)'s model" } ?? "no model of the job"))")
        }
        let added = try message.array(0, as: Float.self, count: try PassDecoder.product(k - measured, d))
        var whole = message
        whole.arrays[0] = candidates + Frame.encode(added)
        var description = computation
        description.extendsPass = nil
        return (whole, description)
    }
}
