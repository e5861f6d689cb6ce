import Descriptors
@testable import Features
import Foundation
import TestSupport
import Testing

@Suite struct DecodingTests {
    @Test(arguments: [1, 3])
    func pngRoundTripsExactly(channels: Int) throws {
        let scratch = try TemporaryDirectory()
        let pixels = TestImages.pattern(width: 37, height: 23, channels: channels, seed: 5)
        let path = scratch.write("a.png", try ImageEncoder.encode(pixels, width: 37, height: 23, channels: channels, as: .png))
        let decoded = try ImageDecoder().withPixels(path: path) { width, height, found, bytes in
            (width, height, found, Array(bytes))
        }
        #expect(decoded.0 == 37 && decoded.1 == 23 && decoded.2 == channels && decoded.3 == pixels)
    }

    @Test(arguments: [1, 3])
    func jpegDecodesCloseToItsSource(channels: Int) throws {
        let scratch = try TemporaryDirectory()
        let pixels = TestImages.pattern(width: 64, height: 48, channels: channels, seed: 6)
        let path = scratch.write("a.jpg", try ImageEncoder.encode(pixels, width: 64, height: 48, channels: channels,
                                                                   as: .jpeg(quality: 95)))
        let decoded = try ImageDecoder().withPixels(path: path) { width, height, found, bytes in
            (width, height, found, Array(bytes))
        }
        #expect(decoded.0 == 64 && decoded.1 == 48 && decoded.2 == channels)
        let error = zip(decoded.3, pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(pixels.count)
        #expect(error < 8, "mean absolute error \(error)")  // chroma subsampling blurs colour edges
    }

    @Test func greyIsMatlabsRgb2grayOfValuesOver255() throws {
        let scratch = try TemporaryDirectory()
        let pixels: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30]
        let path = scratch.write("rgb.png", try ImageEncoder.encode(pixels, width: 2, height: 2, channels: 3, as: .png))
        let grey = try ImageDecoder().grey(path: path)
        let expected: [Float] = stride(from: 0, to: 12, by: 3).map { (i: Int) -> Float in
            let red: Double = 0.298936021293775 * Double(pixels[i])
            let green: Double = 0.587043074451121 * Double(pixels[i + 1])
            let blue: Double = 0.114020904255103 * Double(pixels[i + 2])
            return Float((red + green + blue) / 255)
        }
        #expect(grey.pixels == expected)
    }

    /// A decode that must fail: the error names the file and says why.
    func expectRefusal(_ path: String, code: DescriptorError.Code, saying words: String) {
        do {
            _ = try ImageDecoder().grey(path: path)
            Issue.record("\(path) decoded")
        } catch let error as DescriptorError {
            #expect(error.code == code, "\(error)")
            #expect(error.path == path && error.description.contains(words), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func badFilesAreRefusedWithTheirReason() throws {
        let scratch = try TemporaryDirectory()
        let jpeg = try ImageEncoder.encode(TestImages.pattern(width: 64, height: 64, channels: 3, seed: 2), width: 64, height: 64,
                                           channels: 3, as: .jpeg(quality: 90))
        expectRefusal(scratch.write("truncated.jpg", Array(jpeg.prefix(jpeg.count / 2))), code: .malformed, saying: "Premature end")
        let png = try ImageEncoder.encode(TestImages.pattern(width: 64, height: 64, channels: 3, seed: 2), width: 64, height: 64,
                                          channels: 3, as: .png)
        expectRefusal(scratch.write("truncated.png", Array(png.prefix(png.count / 2))), code: .malformed, saying: "cannot decode")
        expectRefusal(scratch.write("garbage.jpg", (0..<500).map { UInt8(truncatingIfNeeded: $0 &* 7919) }),
                      code: .unsupportedFormat, saying: "neither a JPEG nor a PNG")
        expectRefusal(scratch.write("garbage-after-signature.jpg", [0xff, 0xd8, 0xff] + [UInt8](repeating: 0x41, count: 100)),
                      code: .malformed, saying: "cannot decode")
        expectRefusal(scratch.write("empty.png", []), code: .truncated, saying: "empty")
        expectRefusal(scratch.file("missing.png"), code: .fileNotFound, saying: "cannot open")

        // A PNG header claiming 2^31-1 × 2^31-1 pixels (with a valid CRC): refused before allocating.
        var huge = png
        let ihdr = 12 // length (4) and signature (8) come before: the chunk type starts at byte 12
        for offset in [ihdr + 4, ihdr + 8] { huge.replaceSubrange(offset ..< offset + 4, with: [0x7f, 0xff, 0xff, 0xff]) }
        let crc = crc32(huge[ihdr ..< ihdr + 17])
        huge.replaceSubrange(ihdr + 17 ..< ihdr + 21, with: withUnsafeBytes(of: crc.bigEndian, Array.init))
        expectRefusal(scratch.write("huge.png", huge), code: .invalidArgument, saying: "claims 2147483647×2147483647")

        // A JPEG frame header claiming 65000 × 65000.
        var bigJPEG = jpeg
        let sof = try #require((0 ..< bigJPEG.count - 1).first { bigJPEG[$0] == 0xff && bigJPEG[$0 + 1] == 0xc0 })
        bigJPEG.replaceSubrange(sof + 5 ..< sof + 9, with: [0xfd, 0xe8, 0xfd, 0xe8])
        expectRefusal(scratch.write("huge.jpg", bigJPEG), code: .invalidArgument, saying: "claims 65000×65000")
    }

    /// A progressive grey JPEG of `side` × `side` zeros: a DC scan, then `acScans` AC scans
    /// without data (a few bytes each, and each a pass over every block for the decoder).
    static func progressiveJPEG(side: Int, acScans: Int) -> [UInt8] {
        func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
            [0xff, marker, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 0xff)] + payload
        }
        let size = [UInt8(side >> 8), UInt8(side & 0xff)]
        let oneCode = [1] + [UInt8](repeating: 0, count: 15) + [0] // one code of length 1, for symbol 0
        var bytes: [UInt8] = [0xff, 0xd8]
        bytes += segment(0xdb, [0] + [UInt8](repeating: 1, count: 64))
        bytes += segment(0xc2, [8] + size + size + [1, 1, 0x11, 0]) // progressive, one component
        bytes += segment(0xc4, [0x00] + oneCode) + segment(0xc4, [0x10] + oneCode)
        bytes += segment(0xda, [1, 1, 0x00, 0, 0, 0]) + [UInt8](repeating: 0, count: side * side / 512 + 1)
        for _ in 0..<acScans { bytes += segment(0xda, [1, 1, 0x00, 1, 63, 0]) }
        return bytes + [0xff, 0xd9]
    }

    /// A 1 MB file of 100,000 such scans over 8192 × 8192 pixels took 7 minutes to decode.
    @Test func aJPEGOfMoreScansThanTheLimitIsRefused() throws {
        let scratch = try TemporaryDirectory()
        let within = try ImageDecoder().grey(path: scratch.write("within.jpg", Self.progressiveJPEG(side: 64, acScans: 499)))
        #expect(within.width == 64 && within.height == 64)
        expectRefusal(scratch.write("scans.jpg", Self.progressiveJPEG(side: 64, acScans: 500)),
                      code: .malformed, saying: "more than 500 scans")
    }

    @Test(.timeLimit(.minutes(1)))
    func directoriesAndFIFOsAreNotReadAsImages() throws {
        let scratch = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: scratch.file("folder.jpg"), withIntermediateDirectories: false)
        expectRefusal(scratch.file("folder.jpg"), code: .invalidArgument, saying: "is a directory, not a regular file")
        #expect(mkfifo(scratch.file("pipe.png"), 0o600) == 0)
        expectRefusal(scratch.file("pipe.png"), code: .invalidArgument, saying: "is a FIFO, not a regular file")
    }
}
