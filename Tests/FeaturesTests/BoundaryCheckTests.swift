import Descriptors
import Features
import Testing

/// Features is built with `-Ounchecked` in release (no preconditions): pixel buffers that do
/// not match the stated size are a thrown error, never a read past their ends.
@Suite struct FeaturesBoundaryCheckTests {
    @Test func pixelsMustMatchTheStatedSize() {
        for (width, height, count) in [(2, 2, 3), (0, 4, 0), (-1, -1, 1), (Int.max, 2, 4)] {
            let error = #expect(throws: DescriptorError.self, "\(width)×\(height), \(count) pixels") {
                _ = try GreyImage(width: width, height: height, pixels: [Float](repeating: 0, count: count))
            }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test func bytesMustMatchTheStatedSizeAndChannels() {
        let bytes = [UInt8](repeating: 9, count: 12)
        for (width, height, channels) in [(2, 2, 2), (2, 2, 1), (3, 2, 3), (2, 2, 4)] {
            let error = #expect(throws: DescriptorError.self, "\(width)×\(height)×\(channels)") {
                _ = try bytes.withUnsafeBufferPointer { try GreyImage(width: width, height: height, channels: channels, bytes: $0) }
            }
            #expect(error?.code == .invalidArgument)
        }
        #expect(throws: Never.self) {
            _ = try bytes.withUnsafeBufferPointer { try GreyImage(width: 2, height: 2, channels: 3, bytes: $0) }
        }
    }

    @Test func aLongerSideBelowOneCountsAsOne() throws {
        let image = try GreyImage(width: 2, height: 2, pixels: [0, 0.25, 0.5, 1])
        for side in [1, 0, -5, Int.min] { #expect(image.downscaled(maxSide: side).pixels == [0.4375], "\(side)") }
    }
}
