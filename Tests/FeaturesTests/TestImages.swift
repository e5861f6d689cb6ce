import Descriptors
import Features
import Foundation
import TestSupport

/// Seeded images with corners and blobs (something for SIFT to find), as 8-bit pixels.
enum TestImages {
    /// `width × height × channels` bytes: a background gradient, filled rectangles and soft
    /// discs of seeded positions and intensities; each channel a different mix.
    static func pattern(width: Int, height: Int, channels: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        var values = [Double](repeating: 0, count: width * height * channels)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    values[(y * width + x) * channels + c] = 40 + 60 * Double(x + c * y) / Double(width + height)
                }
            }
        }
        for _ in 0..<12 {
            let x0 = Int.random(in: 0..<width, using: &generator), y0 = Int.random(in: 0..<height, using: &generator)
            let w = Int.random(in: 6...max(7, width / 4), using: &generator), h = Int.random(in: 6...max(7, height / 4), using: &generator)
            let level = (0..<channels).map { _ in Double.random(in: 0...255, using: &generator) }
            for y in y0..<min(height, y0 + h) {
                for x in x0..<min(width, x0 + w) {
                    for c in 0..<channels { values[(y * width + x) * channels + c] = level[c] }
                }
            }
        }
        for _ in 0..<10 {
            let cx = Double.random(in: 0..<Double(width), using: &generator), cy = Double.random(in: 0..<Double(height), using: &generator)
            let radius = Double.random(in: 3...10, using: &generator), amount = Double.random(in: -120...120, using: &generator)
            for y in 0..<height {
                for x in 0..<width {
                    let d2 = (Double(x) - cx) * (Double(x) - cx) + (Double(y) - cy) * (Double(y) - cy)
                    let weight = exp(-d2 / (2 * radius * radius))
                    for c in 0..<channels { values[(y * width + x) * channels + c] += amount * weight }
                }
            }
        }
        return values.map { UInt8(max(0, min(255, $0.rounded()))) }
    }

    /// A PNG or JPEG file of `pattern` in `scratch`.
    @discardableResult
    static func file(_ name: String, in scratch: TemporaryDirectory, width: Int = 96, height: Int = 80, channels: Int = 3,
                     seed: UInt64 = 1, format: ImageEncoder.Format = .png) throws -> String {
        let pixels = pattern(width: width, height: height, channels: channels, seed: seed)
        return scratch.write(name, try ImageEncoder.encode(pixels, width: width, height: height, channels: channels, as: format))
    }
}

/// CRC-32 (ISO-HDLC, as PNG chunks use it).
func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xffff_ffff
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
    }
    return ~crc
}
