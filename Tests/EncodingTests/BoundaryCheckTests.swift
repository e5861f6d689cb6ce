import Clustering
import Descriptors
import Encoding
import Testing

/// Encoding is built with `-Ounchecked` in release (no preconditions): an output buffer of
/// the wrong size is a thrown error, never a write past its end.
@Suite struct EncodingBoundaryCheckTests {
    @Test(arguments: [-1, 1])
    func anOutputOfTheWrongSizeIsRefused(offset: Int) throws {
        let descriptors = try DescriptorMatrix(rows: 2, dimension: 2, values: [0, 1, 2, 3])
        for (name, encoder) in try VectorEncoderTests.encoders() {
            var output = [Float](repeating: 0, count: encoder.encodedDimension + offset)
            let error = #expect(throws: DescriptorError.self, "\(name)") {
                try output.withUnsafeMutableBufferPointer {
                    try encoder.encode(descriptors, workspace: KernelWorkspace(), into: $0)
                }
            }
            #expect(error?.code == .invalidArgument, "\(name): \(String(describing: error))")
            #expect(error?.message.contains("an output of \(encoder.encodedDimension + offset) values") == true, "\(name)")
        }
    }
}
