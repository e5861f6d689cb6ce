import Descriptors
import Features
import Foundation

/// The images of a retrieval benchmark in the INRIA Holidays protocol: a database of
/// images, the queries among them with their relevant images, and the images the
/// codebooks, PCA and whitening are learnt from.
struct RetrievalDataset {
    struct Image: Equatable {
        let key: String
        let path: String
    }

    struct Query: Equatable {
        /// The query's index in `database`.
        let index: Int
        /// Indices in `database` of the images relevant to it (not the query itself).
        let relevant: Set<Int>
    }

    /// The groups' images (in file-name order), then the distractors.
    var database: [Image]
    var queries: [Query]
    var distractors: Int
    var training: [Image]
    /// Whether `training` is the database itself (no disjoint training set was given).
    var trainedOnDatabase: Bool

    /// The number of a Holidays file name (6 digits and `.jpg`), nil for another name. The
    /// group is the number divided by 100 and its query the image whose number is a multiple of 100.
    static func holidaysNumber(_ name: String) -> Int? {
        let digits = name.utf8.prefix(6)
        guard name.utf8.count == 10, name.hasSuffix(".jpg"), digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int(String(name.prefix(6)))
    }

    /// A Holidays layout: `directory/jpg/NNNNNN.jpg` (the groups, named as in Holidays:
    /// 100000.jpg is the query of group 1000, 100001.jpg and 100002.jpg its relevant
    /// images, 100100.jpg the next query), optionally `directory/distractors/` (any JPEG or
    /// PNG, relevant to no query) and `directory/train/` (JPEG or PNG images disjoint from the
    /// database, for the codebooks, PCA and whitening; without it they are learnt on the
    /// database itself).
    static func holidays(directory: String) throws -> RetrievalDataset {
        let folder = directory.hasSuffix("/") ? directory : directory + "/"
        var numbered: [(number: Int, image: Image)] = []
        for name in try ImageCollection.visibleNames(in: folder + "jpg") {
            guard let number = holidaysNumber(name) else {
                throw CheckFailure("\(folder)jpg/\(name): not a Holidays image name (6 digits and .jpg, e.g. 100000.jpg)")
            }
            numbered.append((number, Image(key: String(name.prefix(6)), path: folder + "jpg/" + name)))
        }
        numbered.sort { $0.number < $1.number }
        guard !numbered.isEmpty else { throw CheckFailure("\(folder)jpg has no images") }
        var database = numbered.map(\.image)
        var queries: [Query] = []
        var start = 0
        while start < numbered.count {
            let group = numbered[start].number / 100
            var end = start + 1
            while end < numbered.count, numbered[end].number / 100 == group { end += 1 }
            guard numbered[start].number % 100 == 0 else {
                throw CheckFailure("\(folder)jpg: group \(group) has no query \(group)00.jpg (its first image is \(numbered[start].image.key).jpg)")
            }
            guard end - start >= 2 else {
                throw CheckFailure("\(folder)jpg: group \(group) has only its query \(group)00.jpg, no relevant image")
            }
            queries.append(Query(index: start, relevant: Set(start + 1 ..< end)))
            start = end
        }
        let distractors = try optionalImages(folder + "distractors")
        database += distractors
        let training = try optionalImages(folder + "train")
        return RetrievalDataset(database: database, queries: queries, distractors: distractors.count,
                                training: training.isEmpty ? database : training, trainedOnDatabase: training.isEmpty)
    }

    /// The JPEG and PNG images of `directory` in key order; none if it does not exist.
    private static func optionalImages(_ directory: String) throws -> [Image] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        return try ImageSource(directory: directory).entries.map { Image(key: $0.key, path: $0.path) }
    }
}

/// Makes a Holidays layout from a folder of photographs: each photograph of the query role
/// becomes a group (the photograph, then its near-duplicate copies: `ImageChange.copies`),
/// others give distractors (random crops) and the training images (the photograph, its
/// copies and random crops), so that training, queries and distractors come from disjoint
/// photographs.
struct HolidaysLayoutWriter {
    /// Photographs in key order: index % 3 == 0 → a query group, 1 → training, 2 → distractors.
    static let roles = 3
    /// The quality every image but the JPEG-quality copies is saved with.
    static let quality = 92
    /// Photographs are first shrunk to this longer side (Holidays' images are larger; SIFT
    /// is computed at `--max-side` anyway).
    static let maximumSide = 1024

    let photographs: [ImageSource.Entry]
    let seed: UInt64
    /// Random crops per distractor photograph and extra crops per training photograph.
    let distractorCrops: Int
    let trainingCrops: Int

    /// What one written image is: its path relative to the layout and how it was made.
    struct Written { let path: String; let made: String }

    /// Writes `directory/jpg`, `directory/distractors`, `directory/train` (emptied first) and
    /// `directory/manifest.tsv` (each image and how it was made); returns the manifest's rows.
    func write(to directory: String) throws -> [Written] {
        let manager = FileManager.default
        for sub in ["jpg", "distractors", "train"] {
            let path = directory + "/" + sub
            if manager.fileExists(atPath: path) { try manager.removeItem(atPath: path) }
            try manager.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        let decoder = ImageDecoder()
        var written: [Written] = []
        func save(_ image: PixelImage, _ name: String, quality: Int, made: String) throws {
            try Data(image.encoded(as: .jpeg(quality: quality))).write(to: URL(fileURLWithPath: directory + "/" + name))
            written.append(Written(path: name, made: made))
        }
        var group = 1000
        for (index, entry) in photographs.enumerated() {
            let original = Self.fitted(try decoder.pixels(path: entry.path))
            var generator = SeededGenerator(seed: seed, stream: UInt64(index))
            let source = URL(fileURLWithPath: entry.path).lastPathComponent
            switch index % Self.roles {
            case 0:
                try save(original, "jpg/\(group)00.jpg", quality: Self.quality, made: "query: \(source)")
                for (offset, change) in ImageChange.copies(using: &generator).enumerated() {
                    try save(change.apply(to: original), "jpg/\(group)\(String(format: "%02d", offset + 1)).jpg",
                             quality: change.savedQuality(default: Self.quality), made: "\(source), \(change)")
                }
                group += 1
            case 1:
                try save(original, "train/\(entry.key)-0.jpg", quality: Self.quality, made: "training: \(source)")
                let changes = ImageChange.copies(using: &generator)
                    + (0..<trainingCrops).map { _ in ImageChange.randomCrop(fraction: 0.4...0.7, using: &generator) }
                for (offset, change) in changes.enumerated() {
                    try save(change.apply(to: original), "train/\(entry.key)-\(offset + 1).jpg",
                             quality: change.savedQuality(default: Self.quality), made: "training: \(source), \(change)")
                }
            default:
                for offset in 0..<distractorCrops {
                    let change = ImageChange.randomCrop(fraction: 0.4...0.7, using: &generator)
                    try save(change.apply(to: original), "distractors/\(entry.key)-\(offset).jpg", quality: Self.quality,
                             made: "distractor: \(source), \(change)")
                }
            }
        }
        try written.map { "\($0.path)\t\($0.made)\n" }.joined().write(toFile: directory + "/manifest.tsv", atomically: true, encoding: .utf8)
        return written
    }

    /// `image` shrunk to a longer side of `maximumSide` if it is larger.
    static func fitted(_ image: PixelImage) -> PixelImage {
        let longer = max(image.width, image.height)
        guard longer > maximumSide else { return image }
        return ImageChange.scale(Double(maximumSide) / Double(longer)).apply(to: image)
    }
}
