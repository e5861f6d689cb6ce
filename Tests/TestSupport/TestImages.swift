import Descriptors
import Features
import Foundation

/// Small seeded pictures written as PNG and JPEG files, for extraction tests.
public enum TestImages {
    /// A seeded grey picture: overlapping rectangles of random levels on a gradient.
    public static func picture(width: Int, height: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        var pixels = (0..<width * height).map { UInt8(($0 % width + $0 / width) * 100 / (width + height)) }
        for _ in 0..<25 {
            let x0 = Int.random(in: 0..<width - 8, using: &generator), y0 = Int.random(in: 0..<height - 8, using: &generator)
            let x1 = min(width, x0 + Int.random(in: 8...40, using: &generator)), y1 = min(height, y0 + Int.random(in: 8...40, using: &generator))
            let level = UInt8.random(in: 0...255, using: &generator)
            for y in y0..<y1 { for x in x0..<x1 { pixels[y * width + x] = level } }
        }
        return pixels
    }

    /// A folder `images` in `scratch` of five photographs-to-be (PNG and JPEG, one larger
    /// than 200 pixels a side), `photo-0` … `photo-4`, and one bad file, `bad.jpg`.
    public static func folder(in scratch: TemporaryDirectory) throws -> String {
        let folder = scratch.file("images")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        for (index, (width, height)) in [(160, 120), (120, 160), (300, 200), (140, 140), (128, 96)].enumerated() {
            let format: ImageEncoder.Format = index % 2 == 0 ? .png : .jpeg(quality: 90)
            let bytes = try ImageEncoder.encode(picture(width: width, height: height, seed: UInt64(index)), width: width, height: height,
                                                channels: 1, as: format)
            FileManager.default.createFile(atPath: "\(folder)/photo-\(index).\(index % 2 == 0 ? "png" : "jpg")", contents: Data(bytes))
        }
        FileManager.default.createFile(atPath: "\(folder)/bad.jpg", contents: Data([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]))
        return folder
    }
}
