/// A frame that cannot hold an array of the expected type: its size is not a multiple
/// of the element size.
public struct FrameDecodingError: Error, CustomStringConvertible, Sendable, Hashable {
    /// The frame's size in bytes.
    public var byteCount: Int
    /// The size of one element in bytes.
    public var elementSize: Int
    /// The element type asked for ("Float").
    public var elementType: String

    public init(byteCount: Int, elementSize: Int, elementType: String) {
        self.byteCount = byteCount
        self.elementSize = elementSize
        self.elementType = elementType
    }

    public var description: String {
        "a frame of \(byteCount) bytes is not a whole number of \(elementSize)-byte \(elementType) values"
    }
}
