/// A descriptor file format, chosen by file extension.
///
/// - `.fvecs`, `.bvecs`, `.ivecs` (texmex, as SIFT1M/SIFT1B ship): per row, a little-endian
///   int32 dimension followed by the values as float32, uint8 or int32.
/// - `.npy` (NumPy 1.0/2.0/3.0): one header, then C-order float32 (`<f4`), uint8 (`|u1`)
///   or int32 (`<i4`) values.
///
/// All formats are little-endian, as on every platform Codebook runs on.
public enum DescriptorFormat: String, Sendable, Equatable, Codable, CaseIterable {
    case fvecs
    case bvecs
    case ivecs
    case npy

    /// The format named by `path`'s extension. Throws `.unsupportedFormat` for any other.
    public init(path: String) throws {
        let name = path.split(separator: "/", omittingEmptySubsequences: false).last ?? ""
        guard let dot = name.lastIndex(of: "."),
              let format = DescriptorFormat(rawValue: name[name.index(after: dot)...].lowercased())
        else {
            throw DescriptorError(.unsupportedFormat,
                                  "unknown extension (expected .fvecs, .bvecs, .ivecs or .npy)",
                                  path: path)
        }
        self = format
    }

    /// The element type of a texmex format; `nil` for `.npy`, whose header says.
    public var texmexElementType: ElementType? {
        switch self {
        case .fvecs: .float32
        case .bvecs: .uint8
        case .ivecs: .int32
        case .npy: nil
        }
    }
}
