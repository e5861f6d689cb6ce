/// An error about feature extraction's own parameters (a dense SIFT step, a maximum side) or
/// an image to encode. Problems with image files and image lists are `DescriptorError`s,
/// like those of every input file.
///
/// Codes can grow without breaking callers; `description` is the message a user sees.
public struct FeatureError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// A parameter outside its range.
        public static let invalidArgument = Code(name: "invalid argument")
        /// The image codec refused to encode the pixels.
        public static let encodingFailed = Code(name: "encoding failed")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
