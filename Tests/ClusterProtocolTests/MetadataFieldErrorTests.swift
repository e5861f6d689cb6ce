import ClusterProtocol
import Foundation
import Testing

/// A metadata field that does not decode is named with what is wrong with it. Foundation
/// reports a number that does not fit its field (`"k": 4.5`) as "The given data was not valid
/// JSON.", with no field, which is what requests and stored records used to say.
@Suite struct MetadataFieldErrorTests {
    /// The error decoding `json` as `type` from a message of `header`.
    static func error<M: Decodable>(_ json: String, as type: M.Type, header: WireHeader = WireHeader(.submit)) -> String {
        var raw = WireMessage(header: header)
        raw.metadata = Array(json.utf8)
        do {
            _ = try raw.decode(type)
            return "decoded"
        } catch {
            return "\(error)"
        }
    }

    static let submit = #"{"corpus":"/c.npy","initialization":"kmeans++","iterations":5,"k":8,"kind":"kmeans","seed":1,"shardRows":100,"tolerance":0}"#

    @Test(arguments: [
        (#""k":8"#, #""k":4.5"#, "field k: 4.5 is not an integer"),
        (#""k":8"#, #""k":1e30"#, "field k: 1e30 is out of the field's range"),
        (#""k":8"#, #""k":99999999999999999999"#, "field k: 99999999999999999999 is out of the field's range"),
        (#""seed":1"#, #""seed":-3"#, "field seed: -3 is negative; the field takes an integer ≥ 0"),
        (#""k":8"#, #""k":"ten""#, #"field k: "ten" is not an integer"#),
        (#""k":8"#, #""k":null"#, "field k: null where an integer is needed"),
        (#""k":8,"#, "", "field k: missing"),
        (#""corpus":"/c.npy""#, #""corpus":3"#, "field corpus: 3 is not a string"),
        (#""tolerance":0"#, #""tolerance":[1]"#, "field tolerance: [1] is not a number"),
        (#""kind":"kmeans""#, #""kind":"kmeens""#, #"field kind: "kmeens" is not one of its values"#),
        (#""k":8"#, #""k":8,,"#, "not valid JSON ("),
    ])
    func aSubmitFieldThatDoesNotFitIsNamed(original: String, replacement: String, says: String) {
        let json = Self.submit.replacingOccurrences(of: original, with: replacement)
        let error = Self.error(json, as: TrainingJob.self)
        #expect(error.hasPrefix("malformed message: submit metadata: "), "\(error)")
        #expect(error.contains(says), "\(error)")
        #expect(!error.contains("The given data was not valid JSON"), "\(error)")
    }

    @Test func nestedFieldsAreNamedByTheirPath() {
        let extraction = #"{"descriptors":"/d.npy","extraction":{"method":"sift","step":4},"images":[{"key":"a","path":"/a.png"},{"key":"b","path":"/b.png"}],"#
            + #""imagesPerShard":0,"index":"/i.tsv","replace":false,"strict":false}"#
        let header = WireHeader(.submitExtraction)
        #expect(Self.error(extraction, as: ExtractionJob.self, header: header) == "decoded")
        let step = Self.error(extraction.replacingOccurrences(of: #""step":4"#, with: #""step":2.5"#), as: ExtractionJob.self, header: header)
        #expect(step.hasSuffix("field extraction.step: 2.5 is not an integer"), "\(step)")
        let key = Self.error(extraction.replacingOccurrences(of: #""key":"b""#, with: #""key":7"#), as: ExtractionJob.self, header: header)
        #expect(key.hasSuffix("field images[1].key: 7 is not a string"), "\(key)")
        let missing = Self.error(extraction.replacingOccurrences(of: #""key":"b","#, with: ""), as: ExtractionJob.self, header: header)
        #expect(missing.hasSuffix("field images[1].key: missing"), "\(missing)")
        // The second of two numbers that do not fit is named once the first is mended.
        let two = extraction.replacingOccurrences(of: #""imagesPerShard":0"#, with: #""imagesPerShard":-1.5"#)
            .replacingOccurrences(of: #""step":4"#, with: #""step":1e40"#)
        #expect(Self.error(two, as: ExtractionJob.self, header: header).hasSuffix("field extraction.step: 1e40 is out of the field's range"))
        let mended = two.replacingOccurrences(of: #""step":1e40"#, with: #""step":4"#)
        #expect(Self.error(mended, as: ExtractionJob.self, header: header).hasSuffix("field imagesPerShard: -1.5 is not an integer"))
    }

    @Test func aLongValueIsQuotedShort() {
        let long = String(repeating: "x", count: 10_000)
        let error = Self.error(Self.submit.replacingOccurrences(of: #""k":8"#, with: #""k":""# + long + #"""#), as: TrainingJob.self)
        #expect(error.contains(#"field k: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… is not an integer"#), "\(error)")
        #expect(error.count < 200, "\(error.count) characters")
    }

    /// A number that does not fit is not searched for in metadata over 64 KiB (each step of
    /// the search decodes it all again, and so does telling it from text that is not JSON:
    /// 10 MB of numbers took 4.6 s to answer), nor the value to quote (the scan compares
    /// every value's path: 8 s for 10 MB of numbers); a field of another type is still named.
    @Test func aLongTextNamesNoMisfitNumberButOtherFields() {
        let images = (0..<2_000).map { #"{"key":"k\#($0)","path":"\/images\/\#($0).png"}"# }.joined(separator: ",")
        let extraction = #"{"descriptors":"/d.npy","extraction":{"method":"sift"},"images":["# + images + "],"
            + #""imagesPerShard":0,"index":"/i.tsv","replace":false,"strict":false}"#
        #expect(extraction.utf8.count > 64 << 10)
        let header = WireHeader(.submitExtraction)
        #expect(Self.error(extraction, as: ExtractionJob.self, header: header) == "decoded")
        let misfit = Self.error(extraction.replacingOccurrences(of: #""imagesPerShard":0"#, with: #""imagesPerShard":2.5"#),
                                as: ExtractionJob.self, header: header)
        #expect(misfit.hasSuffix(" metadata: not valid JSON, or a number does not fit its field"), "\(misfit)")
        let key = Self.error(extraction.replacingOccurrences(of: #""key":"k1999""#, with: #""key":7"#), as: ExtractionJob.self, header: header)
        #expect(key.hasSuffix("field images[1999].key: the value is not a string"), "\(key)")
    }
}
