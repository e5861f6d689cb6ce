import Descriptors
import ImageCodecs

/// A grey image: row-major float32 intensities in [0, 1].
public struct GreyImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width × height` values, row after row.
    public let pixels: [Float]

    /// `pixels` must hold `width × height` values, both sides at least 1 (`.invalidArgument` otherwise).
    public init(width: Int, height: Int, pixels: [Float]) throws {
        try Self.checkShape(width: width, height: height, channels: 1, count: pixels.count)
        self.init(checkedWidth: width, height: height, pixels: pixels)
    }

    /// An image whose shape is known to be right.
    private init(checkedWidth width: Int, height: Int, pixels: [Float]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Luma weights of MATLAB's `rgb2gray`, which VLFeat's tools use to make colour images
    /// grey (`vl_imreadgray`, `vl_phow`): ITU-R BT.601, 0.2989 R + 0.5870 G + 0.1140 B, with
    /// the exact values MATLAB derives from the inverse NTSC transform.
    public static let lumaWeights = (red: 0.298936021293775, green: 0.587043074451121, blue: 0.114020904255103)

    /// The grey image of 8-bit pixels (1 channel: grey, 3: RGB interleaved), as `vl_imreadgray`
    /// makes it: values divided by 255 (`im2double`), then for RGB the weighted sum of
    /// `lumaWeights`, computed in float64 and rounded once to float32.
    ///
    /// Throws `.invalidArgument` unless `channels` is 1 or 3 and `bytes` holds
    /// `width × height × channels` values.
    public init(width: Int, height: Int, channels: Int, bytes: UnsafeBufferPointer<UInt8>) throws {
        try Self.checkShape(width: width, height: height, channels: channels, count: bytes.count)
        let (r, g, b) = Self.lumaWeights
        let pixels = [Float](unsafeUninitializedCapacity: width * height) { out, count in
            if channels == 1 {
                for i in 0..<width * height { out[i] = Float(Double(bytes[i]) / 255) }
            } else {
                for i in 0..<width * height {
                    let sum = r * Double(bytes[3 * i]) + g * Double(bytes[3 * i + 1]) + b * Double(bytes[3 * i + 2])
                    out[i] = Float(sum / 255)
                }
            }
            count = width * height
        }
        self.init(checkedWidth: width, height: height, pixels: pixels)
    }

    /// Throws `.invalidArgument` unless `count` values are a `width × height` image of
    /// `channels` (1 or 3) channels, both sides at least 1.
    private static func checkShape(width: Int, height: Int, channels: Int, count: Int) throws {
        let pixels = width.multipliedReportingOverflow(by: height)
        let values = pixels.partialValue.multipliedReportingOverflow(by: channels)
        guard width >= 1, height >= 1, channels == 1 || channels == 3, !pixels.overflow, !values.overflow,
              count == values.partialValue else {
            throw DescriptorError(.invalidArgument, "\(count) values are not a \(width) × \(height) image of \(channels) channels "
                                  + "(1 or 3)")
        }
    }

    /// This image shrunk so that its longer side is `maxSide` (unchanged if it already fits).
    ///
    /// The other side is `round(side · maxSide / longer)`, at least 1. Resampling is by area
    /// averaging: each output pixel is the mean of the input pixels under its footprint, each
    /// weighted by the fraction of it that is covered (a box filter of the scale's width, so
    /// no aliasing at any factor). It is separable, rows then columns, in float64.
    /// A `maxSide` below 1 counts as 1.
    public func downscaled(maxSide requested: Int) -> GreyImage {
        let maxSide = max(1, requested)
        let longer = max(width, height)
        guard longer > maxSide else { return self }
        let scale = Double(maxSide) / Double(longer)
        let newWidth = max(1, Int((Double(width) * scale).rounded()))
        let newHeight = max(1, Int((Double(height) * scale).rounded()))
        let across = Self.areaWeights(from: width, to: newWidth)
        let down = Self.areaWeights(from: height, to: newHeight)
        // Rows first: height × newWidth, then columns: newHeight × newWidth.
        var narrow = [Double](repeating: 0, count: height * newWidth)
        for y in 0..<height {
            let row = y * width
            for (x, taps) in across.enumerated() {
                var sum = 0.0
                for tap in taps { sum += tap.weight * Double(pixels[row + tap.index]) }
                narrow[y * newWidth + x] = sum
            }
        }
        var out = [Float](repeating: 0, count: newHeight * newWidth)
        for (y, taps) in down.enumerated() {
            for x in 0..<newWidth {
                var sum = 0.0
                for tap in taps { sum += tap.weight * narrow[tap.index * newWidth + x] }
                out[y * newWidth + x] = Float(sum)
            }
        }
        return GreyImage(checkedWidth: newWidth, height: newHeight, pixels: out)
    }

    /// For each of `count` output samples, the input samples it covers and their weights
    /// (coverage fractions, summing to 1) when `source` samples shrink to `count`.
    static func areaWeights(from source: Int, to count: Int) -> [[(index: Int, weight: Double)]] {
        let step = Double(source) / Double(count)
        return (0..<count).map { i in
            let start = Double(i) * step, end = min(Double(source), Double(i + 1) * step)
            var taps: [(index: Int, weight: Double)] = []
            var j = Int(start)
            while j < source, Double(j) < end {
                let covered = min(end, Double(j + 1)) - max(start, Double(j))
                if covered > 0 { taps.append((j, covered / (end - start))) }
                j += 1
            }
            return taps
        }
    }
}
