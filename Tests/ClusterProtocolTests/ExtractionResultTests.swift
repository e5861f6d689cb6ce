import ClusterProtocol
import Clustering
import Descriptors
import Features
import Testing

/// An extract pass's RESULT is checked against its task before the coordinator writes it:
/// each kind of lie is rejected, naming what is wrong.
@Suite struct ExtractionResultTests {
    static let images = [ImageSource.Entry(key: "a", path: "/i/a.png"), ImageSource.Entry(key: "b", path: "/i/b.png"),
                         ImageSource.Entry(key: "c", path: "/i/c.png")]

    /// Two descriptors for a, none for b (unreadable), one for c.
    static var honest: ExtractedDescriptors {
        var result = ExtractedDescriptors()
        result.keys = ["a", "b", "c"]
        result.counts = [2, -1, 1]
        result.errors = ["malformed: cannot decode"]
        result.values = (0..<3 * 128).map { Float($0 % 256) }
        return result
    }

    /// The RESULT message of `result`, decoded back as the coordinator decodes it, then checked.
    static func check(_ result: ExtractedDescriptors, shape: ((inout StatisticsShape) -> Void)? = nil) throws {
        var metadata = result.shape
        shape?(&metadata)
        let message = WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 0), metadata: metadata, arrays: result.arrays)
        let decoded = try ExtractedDescriptors(shape: try message.decode(StatisticsShape.self), message: message)
        try decoded.check(against: images)
    }

    static func rejection(_ change: (inout ExtractedDescriptors) -> Void, shape: ((inout StatisticsShape) -> Void)? = nil) -> String {
        var result = honest
        change(&result)
        do {
            try check(result, shape: shape)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func anHonestResultRoundTrips() throws {
        try Self.check(Self.honest)
    }

    @Test func eachLieIsRejectedNamingIt() {
        #expect(Self.rejection { $0.keys = ["a", "c", "b"] }.contains("the keys are not the task's images"))
        #expect(Self.rejection { $0.counts = [1, -1, 1] }.contains("add up to 2 descriptors but 3 were sent"))
        #expect(Self.rejection { $0.counts = [2, -2, 1] }.contains("image b has -2 descriptors"))
        #expect(Self.rejection { $0.counts = [Int.max, -1, 1] }.contains("image a has"))
        #expect(Self.rejection { $0.errors = [] }.contains("0 reasons for 1 unreadable images"))
        #expect(Self.rejection { $0.errors = [String(repeating: "x", count: 2000)] }.contains("reason 0 has 2000 bytes"))
        #expect(Self.rejection { $0.values[130] = .nan }.contains("descriptor 1 value 2 is nan"))
        #expect(Self.rejection { $0.values[5] = 300 }.contains("descriptor 0 value 5 is 300.0, not within 0…255"))
        #expect(Self.rejection { $0.values[5] = -1 }.contains("not within 0…255"))
        #expect(Self.rejection({ _ in }, shape: { $0.dimension = 64 }).contains("dimension 64"))
        #expect(Self.rejection({ _ in }, shape: { $0.rows = 4 }).contains("array 1"))
        #expect(Self.rejection({ _ in }, shape: { $0.keys = ["a", "b"] }).contains("array 0"))
    }

    /// A worker cuts a long reason to the bound, on a character boundary.
    @Test func aWorkerCutsLongReasons() throws {
        let pass = try ExtractPass(parameters: ExtractionParameters(method: .sift), maximumResultBytes: 1 << 20,
                                   images: [ImageSource.Entry(key: "x", path: "/nonexistent/" + String(repeating: "é", count: 2000))])
        let result = try pass.statistics(of: try DescriptorMatrix(rows: 0, dimension: 1, values: []), shard: 0, workspace: KernelWorkspace())
        #expect(result.counts == [-1] && result.errors[0].utf8.count <= ExtractedDescriptors.maximumErrorBytes)
        try result.check(against: pass.images)
    }

    /// The pass travels: its TASK description decodes to the same parameters and bound.
    @Test func thePassDecodesFromItsDescription() throws {
        let parameters = ExtractionParameters(method: .dsift, step: 3, binSize: 6, maxSide: 64, rootSIFT: true)
        let pass = try ExtractPass(parameters: parameters, maximumResultBytes: 12_345)
        let decoded = try PassDecoder.computation(pass.description, arrays: WireMessage(header: WireHeader(.task), metadata: pass.description))
        let extract = try #require(decoded as? ExtractPass)
        #expect(extract.parameters == parameters && extract.maximumResultBytes == 12_345)
        var bad = pass.description
        bad.resultBytes = nil
        #expect(throws: ClusterError.self) { try PassDecoder.computation(bad, arrays: WireMessage(header: WireHeader(.task), metadata: bad)) }
        bad = pass.description
        bad.extraction?.step = 0
        #expect(throws: ClusterError.self) { try PassDecoder.computation(bad, arrays: WireMessage(header: WireHeader(.task), metadata: bad)) }
    }
}
