import ClusterProtocol
import Testing

@Suite struct FrameTests {
    @Test func floatArrayRoundTrips() throws {
        let values: [Float] = [0, 1.5, -2.25, .infinity, .leastNonzeroMagnitude, 3.4e38]
        let frame = Frame.encode(values)
        #expect(frame.count == values.count * 4)
        #expect(Array(frame[4 ..< 8]) == [0x00, 0x00, 0xC0, 0x3F])  // 1.5 in little-endian IEEE 754
        #expect(try Frame.decode(frame, as: Float.self) == values)
    }

    @Test func doubleArrayRoundTrips() throws {
        let values: [Double] = [1, -0.1, 1e-300, .greatestFiniteMagnitude]
        let frame = Frame.encode(values)
        #expect(frame.count == 32)
        #expect(try Frame.decode(frame, as: Double.self) == values)
        #expect(try Frame.decode([], as: Double.self) == [])
    }

    @Test func aFrameOfTheWrongLengthThrows() {
        let error = #expect(throws: FrameDecodingError.self) {
            try Frame.decode([1, 2, 3, 4, 5, 6, 7], as: Float.self)
        }
        #expect(error == FrameDecodingError(byteCount: 7, elementSize: 4, elementType: "Float"))
        #expect(error?.description == "a frame of 7 bytes is not a whole number of 4-byte Float values")
        #expect(throws: FrameDecodingError.self) { try Frame.decode([UInt8](repeating: 0, count: 12), as: Double.self) }
    }
}
