import ClusterProtocol
import Testing

@Suite struct EncodingJobTests {
    /// A set's record names its options as VLFeat's flags of its encoding say.
    @Test func optionNamesDependOnTheEncoding() {
        #expect(EncodingJob.Encoding.vlad.optionNames(flags: 0x3) == ["normalizeComponents", "squareRoot"])
        #expect(EncodingJob.Encoding.fisher.optionNames(flags: 0x3) == ["squareRoot", "normalized"])
        #expect(EncodingJob.Encoding.vlad.optionNames(flags: 0x8) == ["normalizeMass"])
        #expect(EncodingJob.Encoding.fisher.optionNames(flags: 0x8) == [])
    }
}
