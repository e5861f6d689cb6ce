import Descriptors
import ImageCodecs

/// Decodes JPEG and PNG files into grey images, treating every file as hostile: only
/// regular files are read, the header's dimensions are bounded before pixels are
/// allocated, and every decoder error comes back as a `DescriptorError` naming the file.
public struct ImageDecoder: Sendable {
    /// Longest side accepted (JPEG's own limit is 65 500).
    public static let defaultMaximumSide = 65_536
    /// Most pixels accepted: 2^26 (67 megapixels; 200 MB of RGB and 270 MB of grey float32
    /// while one image is decoded).
    public static let defaultMaximumPixels = 1 << 26

    public var maximumSide: Int
    public var maximumPixels: Int

    public init(maximumSide: Int = defaultMaximumSide, maximumPixels: Int = defaultMaximumPixels) {
        self.maximumSide = maximumSide
        self.maximumPixels = maximumPixels
    }

    /// The 8-bit pixels of the JPEG or PNG at `path`, passed to `body` as
    /// (width, height, channels, bytes); channels is 1 (grey) or 3 (RGB).
    ///
    /// Throws `.fileNotFound`, `.ioFailure` (unreadable), `.invalidArgument` (not a regular
    /// file, or dimensions over the limits), `.unsupportedFormat` (neither JPEG nor PNG) or
    /// `.malformed` (truncated or corrupt, with the library's words).
    public func withPixels<R>(path: String, _ body: (Int, Int, Int, UnsafeBufferPointer<UInt8>) throws -> R) throws -> R {
        let file = try MappedFile(path: path)
        guard let bytes = file.bytes, file.size > 0 else {
            throw DescriptorError(.truncated, "empty file", path: path)
        }
        var image = cb_image()
        let status = cb_image_decode(bytes.assumingMemoryBound(to: UInt8.self), file.size, maximumSide, maximumPixels, &image)
        defer { cb_image_free(&image) }
        let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        switch status {
        case CB_IMAGE_OK:
            let count = Int(image.width) * Int(image.height) * Int(image.channels)
            return try body(Int(image.width), Int(image.height), Int(image.channels),
                            UnsafeBufferPointer(start: image.pixels, count: count))
        case CB_IMAGE_UNKNOWN_FORMAT:
            throw DescriptorError(.unsupportedFormat, message, path: path)
        case CB_IMAGE_TOO_LARGE:
            throw DescriptorError(.invalidArgument, message, path: path)
        case CB_IMAGE_OUT_OF_MEMORY:
            throw DescriptorError(.ioFailure, message, path: path)
        default:
            throw DescriptorError(.malformed, "cannot decode: \(message)", path: path)
        }
    }

    /// The grey image (see `GreyImage.init(width:height:channels:bytes:)`) of the JPEG or PNG at `path`.
    public func grey(path: String) throws -> GreyImage {
        try withPixels(path: path) { try GreyImage(width: $0, height: $1, channels: $2, bytes: $3) }
    }
}

/// Encodes 8-bit pixels as PNG or JPEG (for tests and benchmarks that make their own images).
public enum ImageEncoder {
    public enum Format: Sendable, Equatable {
        case png
        /// Baseline JPEG of quality 1–100.
        case jpeg(quality: Int)
    }

    /// The file's bytes for `pixels` (width × height × channels, channels 1 or 3, row-major).
    public static func encode(_ pixels: [UInt8], width: Int, height: Int, channels: Int, as format: Format) throws -> [UInt8] {
        guard (1...65_535).contains(width), (1...65_535).contains(height), channels == 1 || channels == 3,
              pixels.count == width * height * channels else {
            throw FeatureError(.invalidArgument, "cannot encode \(pixels.count) bytes as \(width)×\(height)×\(channels): "
                               + "sides must be 1…65535, channels 1 or 3")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 200)
        let quality: Int32 = switch format {
        case .png: -1
        case .jpeg(let quality): Int32(clamping: quality)
        }
        let status = cb_image_encode(pixels, Int32(width), Int32(height), Int32(channels), quality, &out, &size, &message)
        defer { cb_image_free_buffer(out) }
        guard status == CB_IMAGE_OK, let out else {
            throw FeatureError(.encodingFailed, String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}
