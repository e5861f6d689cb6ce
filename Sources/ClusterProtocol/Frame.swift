#if _endian(big)
#error("Frame copies memory as is: the wire format is little-endian, and so must the host be.")
#endif

/// Frames that carry arrays of numbers: the values' little-endian bytes back to back,
/// with no header (the message's header frame says what the array is).
///
/// Both directions are one bulk copy, with no per-element loop.
public enum Frame {
    /// The frame for `values`: `values.count * MemoryLayout<Element>.size` bytes.
    public static func encode<Element: FrameElement>(_ values: [Element]) -> [UInt8] {
        values.withUnsafeBytes { [UInt8]($0) }
    }

    /// The values in `frame`. Throws `FrameDecodingError` if its size is not a whole
    /// number of elements.
    public static func decode<Element: FrameElement>(_ frame: [UInt8],
                                                     as type: Element.Type = Element.self) throws -> [Element] {
        let size = MemoryLayout<Element>.size
        guard frame.count % size == 0 else {
            throw FrameDecodingError(byteCount: frame.count, elementSize: size,
                                     elementType: String(describing: type))
        }
        let count = frame.count / size
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            frame.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = count
        }
    }
}
