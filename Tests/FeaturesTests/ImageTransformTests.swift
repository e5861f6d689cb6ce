import Descriptors
import Features
import Testing

@Suite struct ImageTransformTests {
    private func image(width: Int = 40, height: Int = 30, channels: Int = 3, seed: UInt64 = 3) -> PixelImage {
        PixelImage(width: width, height: height, channels: channels,
                   bytes: TestImages.pattern(width: width, height: height, channels: channels, seed: seed))
    }

    /// Same seed: the same changes and the same pixels; another seed: other changes.
    @Test func copiesAreDeterministic() throws {
        let photograph = image()
        func copies(_ seed: UInt64) throws -> ([ImageChange], [[UInt8]]) {
            var generator = SeededGenerator(seed: seed, stream: 4)
            let changes = ImageChange.copies(using: &generator)
            let files = try changes.map { try $0.apply(to: photograph).encoded(as: .jpeg(quality: $0.savedQuality(default: 92))) }
            return (changes, files)
        }
        let (first, firstFiles) = try copies(7), (again, againFiles) = try copies(7), (other, _) = try copies(8)
        #expect(first == again)
        #expect(firstFiles == againFiles)
        #expect(first != other)
        #expect(first.count == 6)
        // One of each kind, in order.
        guard case .rotation(let turn) = first[0], case .rotation(let small) = first[1], case .scale = first[2],
              case .crop = first[3], case .jpegQuality(let quality) = first[4], case .brightness = first[5] else {
            Issue.record("unexpected changes \(first)"); return
        }
        #expect([90, 180, 270].contains(turn) && (5...20).contains(abs(small)) && (6...15).contains(quality))
    }

    @Test func quarterTurnsMovePixelsExactly() {
        // 3 × 2 grey: rows [1 2 3] [4 5 6]; a quarter turn counter-clockwise gives [3 6] [2 5] [1 4].
        let grey = PixelImage(width: 3, height: 2, channels: 1, bytes: [1, 2, 3, 4, 5, 6])
        let turned = ImageChange.rotation(degrees: 90).apply(to: grey)
        #expect(turned == PixelImage(width: 2, height: 3, channels: 1, bytes: [3, 6, 2, 5, 1, 4]))
        #expect(ImageChange.rotation(degrees: 180).apply(to: grey).bytes == [6, 5, 4, 3, 2, 1])
        #expect(ImageChange.rotation(degrees: 270).apply(to: turned) == grey)
        let colour = image()
        let full = (0..<4).reduce(colour) { current, _ in ImageChange.rotation(degrees: 90).apply(to: current) }
        #expect(full == colour)
        // A small rotation keeps the size and the centre pixel.
        let rotated = ImageChange.rotation(degrees: 10).apply(to: image(width: 41, height: 31))
        #expect(rotated.width == 41 && rotated.height == 31)
        let centre = (15 * 41 + 20) * 3
        #expect(Array(rotated.bytes[centre ..< centre + 3]) == Array(image(width: 41, height: 31).bytes[centre ..< centre + 3]))
    }

    @Test func scaleCropAndBrightness() {
        let photograph = image()
        let half = ImageChange.scale(0.5).apply(to: photograph)
        #expect(half.width == 20 && half.height == 15 && half.channels == 3)
        // A 2 × 2 block averages to one pixel.
        let block = PixelImage(width: 2, height: 2, channels: 1, bytes: [10, 20, 30, 41])
        #expect(ImageChange.scale(0.5).apply(to: block).bytes == [25])
        let crop = ImageChange.crop(x: 0.25, y: 0.5, width: 0.5, height: 0.5).apply(to: photograph)
        #expect(crop.width == 20 && crop.height == 15)
        #expect(Array(crop.bytes[0..<3]) == Array(photograph.bytes[(15 * 40 + 10) * 3 ..< (15 * 40 + 10) * 3 + 3]))
        let grey = PixelImage(width: 3, height: 1, channels: 1, bytes: [0, 100, 250])
        #expect(ImageChange.brightness(gain: 1.5, offset: 10).apply(to: grey).bytes == [10, 160, 255])
        #expect(ImageChange.jpegQuality(10).apply(to: grey) == grey)
        #expect(ImageChange.jpegQuality(10).savedQuality(default: 92) == 10 && ImageChange.scale(0.5).savedQuality(default: 92) == 92)
    }
}
