import Descriptors
import Foundation

/// 8-bit pixels as decoded: row-major, `channels` (1: grey, 3: RGB) interleaved values per pixel.
public struct PixelImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public let bytes: [UInt8]

    public init(width: Int, height: Int, channels: Int, bytes: [UInt8]) {
        precondition(width >= 1 && height >= 1 && (channels == 1 || channels == 3), "1 or 3 channels, sides ≥ 1")
        precondition(bytes.count == width * height * channels, "bytes must be width × height × channels")
        self.width = width
        self.height = height
        self.channels = channels
        self.bytes = bytes
    }

    /// The file's bytes in `format`.
    public func encoded(as format: ImageEncoder.Format) throws -> [UInt8] {
        try ImageEncoder.encode(bytes, width: width, height: height, channels: channels, as: format)
    }

    /// The grey image `FeatureExtractor` reads (see `GreyImage.init(width:height:channels:bytes:)`).
    public var grey: GreyImage {
        get throws { try bytes.withUnsafeBufferPointer { try GreyImage(width: width, height: height, channels: channels, bytes: $0) } }
    }
}

extension ImageDecoder {
    /// The 8-bit pixels of the JPEG or PNG at `path` (errors as `withPixels(path:_:)`).
    public func pixels(path: String) throws -> PixelImage {
        try withPixels(path: path) { PixelImage(width: $0, height: $1, channels: $2, bytes: Array($3)) }
    }
}

/// One change made to a photograph to make a near-duplicate copy of it.
public enum ImageChange: Sendable, Equatable, CustomStringConvertible {
    /// Rotation about the centre by this many degrees (counter-clockwise). Multiples of 90
    /// turn the image exactly (sides swapped for 90 and 270); other angles keep the size,
    /// sample bilinearly and fill the uncovered corners with black.
    case rotation(degrees: Int)
    /// Both sides multiplied by this factor (rounded, at least 1 pixel), area-averaged.
    case scale(Double)
    /// The rectangle at (x, y) of (width × height), all as fractions of the sides.
    case crop(x: Double, y: Double, width: Double, height: Double)
    /// The image unchanged but saved as a JPEG of this quality.
    case jpegQuality(Int)
    /// Every value v becomes clamp(gain · v + offset, 0, 255), rounded.
    case brightness(gain: Double, offset: Double)

    public var description: String {
        switch self {
        case .rotation(let degrees): "rotation \(degrees)°"
        case .scale(let factor): "scale " + fixed(factor)
        case .crop(let x, let y, let width, let height):
            "crop \(fixed(width))×\(fixed(height)) at (\(fixed(x)), \(fixed(y)))"
        case .jpegQuality(let quality): "JPEG quality \(quality)"
        case .brightness(let gain, let offset): "brightness ×\(fixed(gain)) \(offset < 0 ? "−" : "+")\(fixed(abs(offset)))"
        }
    }

    private func fixed(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = String(hundredths % 100)
        return "\(hundredths / 100)." + (fraction.count < 2 ? "0" + fraction : fraction)
    }

    /// The quality a copy made by this change is saved with.
    public func savedQuality(default quality: Int) -> Int {
        if case .jpegQuality(let own) = self { return own }
        return quality
    }

    /// `image` with this change made.
    public func apply(to image: PixelImage) -> PixelImage {
        switch self {
        case .rotation(let degrees): ImageTransform.rotated(image, degrees: degrees)
        case .scale(let factor):
            ImageTransform.resized(image, width: max(1, Int((Double(image.width) * factor).rounded())),
                                   height: max(1, Int((Double(image.height) * factor).rounded())))
        case .crop(let x, let y, let width, let height):
            ImageTransform.cropped(image, x: x, y: y, width: width, height: height)
        case .jpegQuality: image
        case .brightness(let gain, let offset):
            PixelImage(width: image.width, height: image.height, channels: image.channels,
                       bytes: image.bytes.map { UInt8(min(255, max(0, (gain * Double($0) + offset).rounded()))) })
        }
    }

    /// The changes that make the near-duplicate copies of one photograph: one of each kind
    /// (a quarter turn, a small rotation, a scale, a crop, a low JPEG quality, a brightness
    /// change), their parameters drawn from `generator`. The same generator state gives the
    /// same changes.
    public static func copies(using generator: inout SeededGenerator) -> [ImageChange] {
        let turn = [90, 180, 270][Int.random(in: 0..<3, using: &generator)]
        let small = Int.random(in: 5...20, using: &generator) * (Bool.random(using: &generator) ? 1 : -1)
        let width = Double.random(in: 0.45...0.7, using: &generator), height = Double.random(in: 0.45...0.7, using: &generator)
        let gain = Bool.random(using: &generator) ? Double.random(in: 0.55...0.75, using: &generator)
            : Double.random(in: 1.25...1.45, using: &generator)
        return [
            .rotation(degrees: turn),
            .rotation(degrees: small),
            .scale(Double.random(in: 0.35...0.6, using: &generator)),
            .crop(x: Double.random(in: 0...(1 - width), using: &generator), y: Double.random(in: 0...(1 - height), using: &generator),
                  width: width, height: height),
            .jpegQuality(Int.random(in: 6...15, using: &generator)),
            .brightness(gain: gain, offset: Double.random(in: -20...20, using: &generator)),
        ]
    }

    /// A crop of `fraction`-sized sides at a random place, for images unrelated to the queries.
    public static func randomCrop(fraction: ClosedRange<Double>, using generator: inout SeededGenerator) -> ImageChange {
        let width = Double.random(in: fraction, using: &generator), height = Double.random(in: fraction, using: &generator)
        return .crop(x: Double.random(in: 0...(1 - width), using: &generator), y: Double.random(in: 0...(1 - height), using: &generator),
                     width: width, height: height)
    }
}

/// The pixel operations behind `ImageChange`.
enum ImageTransform {
    static func rotated(_ image: PixelImage, degrees: Int) -> PixelImage {
        let w = image.width, h = image.height, c = image.channels
        let turns = ((degrees % 360) + 360) % 360
        if turns % 90 == 0 {
            let (outWidth, outHeight) = turns % 180 == 0 ? (w, h) : (h, w)
            var out = [UInt8](repeating: 0, count: image.bytes.count)
            for y in 0..<outHeight {
                for x in 0..<outWidth {
                    // The source pixel of output (x, y), turning counter-clockwise.
                    let (sx, sy) = switch turns {
                    case 90: (w - 1 - y, x)
                    case 180: (w - 1 - x, h - 1 - y)
                    case 270: (y, h - 1 - x)
                    default: (x, y)
                    }
                    for k in 0..<c { out[(y * outWidth + x) * c + k] = image.bytes[(sy * w + sx) * c + k] }
                }
            }
            return PixelImage(width: outWidth, height: outHeight, channels: c, bytes: out)
        }
        let angle = Double(degrees) * .pi / 180, cosine = cos(angle), sine = sin(angle)
        let cx = Double(w - 1) / 2, cy = Double(h - 1) / 2
        var out = [UInt8](repeating: 0, count: image.bytes.count)
        for y in 0..<h {
            for x in 0..<w {
                // Inverse rotation of the output pixel (image y axis points down).
                let dx = Double(x) - cx, dy = Double(y) - cy
                let sx = cosine * dx - sine * dy + cx, sy = sine * dx + cosine * dy + cy
                guard sx >= 0, sy >= 0, sx <= Double(w - 1), sy <= Double(h - 1) else { continue }
                let x0 = min(Int(sx), max(w - 2, 0)), y0 = min(Int(sy), max(h - 2, 0))
                let x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1)
                let fx = sx - Double(x0), fy = sy - Double(y0)
                for k in 0..<c {
                    func value(_ px: Int, _ py: Int) -> Double { Double(image.bytes[(py * w + px) * c + k]) }
                    let top = value(x0, y0) * (1 - fx) + value(x1, y0) * fx
                    let bottom = value(x0, y1) * (1 - fx) + value(x1, y1) * fx
                    out[(y * w + x) * c + k] = UInt8(min(255, max(0, (top * (1 - fy) + bottom * fy).rounded())))
                }
            }
        }
        return PixelImage(width: w, height: h, channels: c, bytes: out)
    }

    /// Area-averaged resampling (`GreyImage.areaWeights` on each axis, in float64).
    static func resized(_ image: PixelImage, width newWidth: Int, height newHeight: Int) -> PixelImage {
        let w = image.width, c = image.channels
        let across = GreyImage.areaWeights(from: w, to: newWidth), down = GreyImage.areaWeights(from: image.height, to: newHeight)
        var narrow = [Double](repeating: 0, count: image.height * newWidth * c)
        for y in 0..<image.height {
            for (x, taps) in across.enumerated() {
                for k in 0..<c {
                    var sum = 0.0
                    for tap in taps { sum += tap.weight * Double(image.bytes[(y * w + tap.index) * c + k]) }
                    narrow[(y * newWidth + x) * c + k] = sum
                }
            }
        }
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * c)
        for (y, taps) in down.enumerated() {
            for i in 0..<newWidth * c {
                var sum = 0.0
                for tap in taps { sum += tap.weight * narrow[tap.index * newWidth * c + i] }
                out[y * newWidth * c + i] = UInt8(min(255, max(0, sum.rounded())))
            }
        }
        return PixelImage(width: newWidth, height: newHeight, channels: c, bytes: out)
    }

    static func cropped(_ image: PixelImage, x: Double, y: Double, width: Double, height: Double) -> PixelImage {
        let w = image.width, h = image.height, c = image.channels
        let left = min(w - 1, max(0, Int((x * Double(w)).rounded()))), top = min(h - 1, max(0, Int((y * Double(h)).rounded())))
        let outWidth = min(w - left, max(1, Int((width * Double(w)).rounded())))
        let outHeight = min(h - top, max(1, Int((height * Double(h)).rounded())))
        var out: [UInt8] = []
        out.reserveCapacity(outWidth * outHeight * c)
        for row in top ..< top + outHeight {
            out += image.bytes[(row * w + left) * c ..< (row * w + left + outWidth) * c]
        }
        return PixelImage(width: outWidth, height: outHeight, channels: c, bytes: out)
    }
}
