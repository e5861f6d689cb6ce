import ClusterProtocol
import Foundation
import Testing

/// The hand-written JSON of GET and GET-REPLY writes what `JSONEncoder` writes and reads
/// what `JSONDecoder` reads.
@Suite struct HandCodedMetadataTests {
    static let awkwardKeys = ["set/img-1", "", "a\"b\\c/d", "tab\tnew\nline\r\u{8}\u{c}", "é€😀\u{2028}\u{7f}", "set/with/slashes"]
    /// Written as `\u00XX` escapes, which the hand-written reader leaves to `JSONDecoder`.
    static let controlKey = "\u{0}\u{1}\u{1f}"

    static let replies = [
        GetReply(entries: []),
        GetReply(entries: awkwardKeys.map { VectorEntry(key: $0, found: false) }),
        GetReply(entries: [VectorEntry(key: "s/k", found: true, encoding: .vlad, model: "m/é", flags: 3, dimension: 8192),
                           VectorEntry(key: "s/missing", found: false),
                           VectorEntry(key: "s/f", found: true, encoding: .fisher, model: "", flags: -1, dimension: 0)]),
    ]

    static func foundationJSON(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    static func message(_ text: String) -> WireMessage {
        var message = WireMessage(header: WireHeader(.get))
        message.metadata = Array(text.utf8)
        return message
    }

    @Test func writesWhatJSONEncoderWrites() throws {
        for keys in [[], Self.awkwardKeys, [Self.controlKey], ["one/key"]] {
            let request = GetRequest(keys: keys)
            #expect(WireMessage(header: WireHeader(.get), metadata: request).metadata == (try Self.foundationJSON(request)))
        }
        for reply in Self.replies + [GetReply(entries: [VectorEntry(key: Self.controlKey, found: false)])] {
            #expect(WireMessage(header: WireHeader(.getReply), metadata: reply).metadata == (try Self.foundationJSON(reply)))
        }
    }

    @Test func readsItsOwnTextWithoutFoundation() throws {
        for reply in Self.replies {
            let text = WireMessage(header: WireHeader(.getReply), metadata: reply).metadata
            #expect(MetadataScanner.scan(text, GetReply.init(scanning:)) == reply)
        }
        let request = GetRequest(keys: Self.awkwardKeys)
        let text = WireMessage(header: WireHeader(.get), metadata: request).metadata
        #expect(MetadataScanner.scan(text, GetRequest.init(scanning:)) == request)
        // Python's json.dumps: spaces, unescaped slashes.
        #expect(MetadataScanner.scan(Array(#"{"keys": ["set/a", "b"]}"#.utf8), GetRequest.init(scanning:))
                == GetRequest(keys: ["set/a", "b"]))
    }

    /// Whatever the text, the hand-coded decode agrees with `JSONDecoder`: the same value,
    /// or an error from both.
    @Test func readsWhatJSONDecoderReads() throws {
        let requests = [
            #"{"keys":["a\/b"]}"#, #" { "keys" : [ "a/b" , "c" ] } "#, #"{"keys":["\u00e9\ud83d\ude00"]}"#,
            #"{"keys":[],"other":{"x":[1,null]}}"#, #"{"keys":["a"],"keys":["b"]}"#, #"{"keys":null}"#, #"{}"#,
            #"{"keys":[1]}"#, #"{"keys":["a"]"#, #"{"keys":["a"]} x"#, "{\"keys\":[\"raw\ttab\"]}", #"[]"#, "",
        ]
        for text in requests {
            let message = Self.message(text)
            let expected = try? JSONDecoder().decode(GetRequest.self, from: Data(text.utf8))
            #expect((try? message.decode(GetRequest.self)) == expected, "\(text)")
        }
        let replies = [
            #"{"entries":[{"key":"k","found":false}]}"#, #"{"entries":[{"found":true,"key":"s\/k","encoding":"vlad","model":"m","flags":0,"dimension":4}]}"#,
            #"{"entries":[{"found":true,"key":"k","dimension":4.0}]}"#, #"{"entries":[{"found":true,"key":"k","dimension":1e3}]}"#,
            #"{"entries":[{"found":false,"key":"k","model":null}]}"#, #"{"entries":[{"found":true,"key":"k","encoding":"pca"}]}"#,
            #"{"entries":[{"found":"yes","key":"k"}]}"#, #"{"entries":[{"key":"k"}]}"#, #"{"entries":[{"found":true,"key":"k","flags":-0}]}"#,
            #"{"entries":[{"found":true,"key":"k","flags":99999999999999999999}]}"#, #"{"entries":[{"found":true,"key":"k","flags":012}]}"#,
        ]
        for text in replies {
            let message = Self.message(text)
            let expected = try? JSONDecoder().decode(GetReply.self, from: Data(text.utf8))
            #expect((try? message.decode(GetReply.self)) == expected, "\(text)")
        }
    }
}
