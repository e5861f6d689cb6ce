import Descriptors
@testable import Features
import Foundation
import TestSupport
import Testing

@Suite struct ExtractionRunTests {
    /// Three good images (PNG, JPEG, grey PNG) and every kind of bad one, in a directory.
    func imagesWithBadOnes() throws -> TemporaryDirectory {
        let scratch = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: scratch.file("images"), withIntermediateDirectories: false)
        try TestImages.file("images/a.png", in: scratch, width: 120, height: 90, seed: 1)
        try TestImages.file("images/b.JPG", in: scratch, width: 90, height: 120, seed: 2, format: .jpeg(quality: 92))
        try TestImages.file("images/c.png", in: scratch, width: 100, height: 100, channels: 1, seed: 3)
        scratch.write("images/garbage.png", [UInt8](repeating: 7, count: 300))
        let jpeg = try ImageEncoder.encode(TestImages.pattern(width: 64, height: 64, channels: 3, seed: 4), width: 64, height: 64,
                                           channels: 3, as: .jpeg(quality: 90))
        scratch.write("images/truncated.jpg", Array(jpeg.prefix(jpeg.count / 3)))
        try FileManager.default.createDirectory(atPath: scratch.file("images/folder.jpeg"), withIntermediateDirectories: false)
        #expect(mkfifo(scratch.file("images/pipe.png"), 0o600) == 0)
        scratch.write("images/notes.txt", Array("not an image".utf8))
        scratch.write("images/.hidden.png", [])
        return scratch
    }

    /// An image whose name is not UTF-8 used to be listed under its name decoded with
    /// replacement characters, then skipped as "file not found" although it exists; it is
    /// now refused, its name's bytes escaped. A non-UTF-8 name that is not an image's is
    /// left alone.
    @Test func anImageNameThatIsNotUTF8IsRefusedNamingItsBytes() throws {
        let scratch = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: scratch.file("images"), withIntermediateDirectories: false)
        try TestImages.file("images/a.png", in: scratch, width: 32, height: 32, seed: 1)
        func create(_ name: [UInt8]) {
            let path = Array(scratch.file("images/").utf8) + name + [0]
            let descriptor = path.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o600) } }
            #expect(descriptor >= 0)
            close(descriptor)
        }
        create(Array("notes-\u{1}".utf8) + [0xE9, 0x2E, 0x74, 0x78, 0x74])
        #expect(try ImageSource(directory: scratch.file("images")).entries.map(\.key) == ["a"])
        create([0x63, 0x61, 0x66, 0xE9, 0x2E, 0x6A, 0x70, 0x67])
        let error = #expect(throws: DescriptorError.self) { try ImageSource(directory: scratch.file("images")) }
        #expect(error?.code == .malformed && error?.path == scratch.file("images"))
        #expect(error?.message == #"the name of file "caf\xE9.jpg" is not valid UTF-8; rename it"#, "\(String(describing: error))")
    }

    @Test(.timeLimit(.minutes(1)))
    func badImagesAreSkippedWithWarningsAndTheRestIndexed() throws {
        let scratch = try imagesWithBadOnes()
        let source = try ImageSource(directory: scratch.file("images"))
        #expect(source.entries.map(\.key) == ["a", "b", "c", "folder", "garbage", "pipe", "truncated"])
        let extractor = try FeatureExtractor(method: .sift, maximumSide: 100)
        var warnings: [String] = []
        let summary = try Extraction(extractor: extractor, threads: 3)
            .run(source, descriptors: scratch.file("d.npy"), index: scratch.file("d.tsv")) { warnings.append("\($0.path): \($0.error)") }
        #expect(summary.images == 3 && summary.skipped.map(\.key) == ["folder", "garbage", "pipe", "truncated"])
        #expect(warnings.count == 4 && warnings.allSatisfy { $0.hasPrefix(scratch.file("images/")) })
        #expect(warnings[0].contains("not a regular file") && warnings[2].contains("not a regular file"))
        #expect(warnings[1].contains("neither a JPEG nor a PNG") && warnings[3].contains("Premature end"))

        // The index is what encode reads, and each image's rows are its own extraction.
        let images = try ImageCollection(index: scratch.file("d.tsv"), descriptors: scratch.file("d.npy"))
        #expect(images.map(\.key) == ["a", "b", "c"] && images.dimension == 128)
        #expect(images.reduce(0) { $0 + $1.rows } == summary.descriptors)
        for (image, name) in zip(images, ["a.png", "b.JPG", "c.png"]) {
            let expected = extractor.extract(try ImageDecoder().grey(path: scratch.file("images/\(name)"))).descriptors
            let stored = try image.descriptors().toArray()
            #expect(image.rows > 0 && stored == expected, "\(name)")
        }
    }

    /// Images run concurrently (VLFeat filters on several threads) and the files are the same
    /// bytes whatever the thread count.
    @Test(arguments: [ExtractionMethod.sift, .denseSIFT(step: 6, binSize: 6)])
    func threadsDoNotChangeTheOutput(method: ExtractionMethod) throws {
        let scratch = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: scratch.file("images"), withIntermediateDirectories: false)
        for seed in 0..<7 {
            try TestImages.file("images/\(seed).png", in: scratch, width: 90 + 10 * seed, height: 80, seed: UInt64(seed))
        }
        let source = try ImageSource(directory: scratch.file("images"))
        var outputs: [[UInt8]] = []
        for threads in [1, 3] {
            let extraction = Extraction(extractor: try FeatureExtractor(method: method, rootSIFT: true), threads: threads)
            _ = try extraction.run(source, descriptors: scratch.file("\(threads).npy"), index: scratch.file("\(threads).tsv"))
            outputs.append(Array(try Data(contentsOf: URL(fileURLWithPath: scratch.file("\(threads).npy"))))
                           + Array(try Data(contentsOf: URL(fileURLWithPath: scratch.file("\(threads).tsv")))))
        }
        #expect(outputs[0].count > 7 * 128 * 4 && outputs[0] == outputs[1])
    }

    @Test(.timeLimit(.minutes(1)))
    func strictFailsOnTheFirstBadImageAndWritesNothing() throws {
        let scratch = try imagesWithBadOnes()
        let source = try ImageSource(directory: scratch.file("images"))
        #expect {
            try Extraction(extractor: try FeatureExtractor(method: .sift), threads: 2, strict: true)
                .run(source, descriptors: scratch.file("d.fvecs"), index: scratch.file("d.tsv"))
        } throws: { error in
            "\(error)".contains("folder.jpeg") && "\(error)".contains("not a regular file")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0 != "images" }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func directoriesAreReadInKeyOrderAndKeysMustBeUnique() throws {
        let scratch = try TemporaryDirectory()
        for name in ["a-b.png", "a.JPEG", "b.txt", "c"] { scratch.write(name, [1]) }
        // By key ("a" < "a-b"), as the store orders them, not by file name ("a-b.png" < "a.JPEG").
        #expect(try ImageSource(directory: scratch.path).entries.map(\.key) == ["a", "a-b"])
        scratch.write("a.png", [1])
        #expect { try ImageSource(directory: scratch.path) } throws: { "\($0)".contains("key 'a'") }
    }

    @Test func listFilesGiveKeysAndPaths() throws {
        let scratch = try TemporaryDirectory()
        scratch.write("list.txt", Array("first\t/abs/one.jpg\r\n\nsub/two.png\n  \nthree.tar.png\n".utf8))
        let source = try ImageSource(list: scratch.file("list.txt"))
        #expect(source.entries == [.init(key: "first", path: "/abs/one.jpg"), .init(key: "two", path: scratch.file("sub/two.png")),
                                   .init(key: "three.tar", path: scratch.file("three.tar.png"))])
        scratch.write("dup.txt", Array("a.png\nother/a.jpg\n".utf8))
        #expect(throws: DescriptorError.self) { try ImageSource(list: scratch.file("dup.txt")) }
        scratch.write("bad.txt", Array("k\tpath\textra\n".utf8))
        #expect { try ImageSource(list: scratch.file("bad.txt")) } throws: { "\($0)".contains("line 1") }
    }
}
