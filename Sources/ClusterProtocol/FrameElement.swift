/// A number type that travels as raw little-endian bytes in a frame (see `Frame`).
public protocol FrameElement: BitwiseCopyable {}

extension Float: FrameElement {}
extension Double: FrameElement {}
extension Int64: FrameElement {}
