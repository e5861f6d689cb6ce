import Foundation

/// JSON as Codebook reads it, in wire messages' and stored records' metadata alike:
/// `JSONDecoder`, with non-finite floats spelled `"Infinity"`, `"-Infinity"` and `"NaN"`,
/// whose errors name the field and what is wrong with it (`JSONFieldError`).
public enum CodebookJSON {
    /// `bytes` as `type`; throws `JSONFieldError` if they are not JSON of its form.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Sequence<UInt8>) throws -> T {
        let data = Data(bytes)
        do {
            return try decoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw JSONFieldError(error, text: data, type: type)
        }
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }
}

/// Why a JSON text does not decode: the field (a path such as `images[3].key`; none for the
/// text as a whole) and the problem, e.g. `field k: 4.5 is not an integer`.
public struct JSONFieldError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The field's path, or `nil` when the text as a whole is wrong.
    public var field: String?
    public var problem: String

    public init(field: String?, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { field.map { "field \($0): \(problem)" } ?? problem }

    /// The error `JSONDecoder` threw decoding `text` as `type`, told in these words. A number
    /// that does not fit its field (4.5 or 1e30 for an integer, −1 for an unsigned one) is reported
    /// by Foundation as "not valid JSON", with no field: it is found here by decoding again
    /// with numbers set to 0 (a binary search over them: about log₂ of their count decodes,
    /// for a text of at most `JSONValues.maximumSearchedBytes`).
    init<T: Decodable>(_ error: DecodingError, text: Data, type: T.Type) {
        switch error {
        case .typeMismatch(let expected, let context):
            let found = JSONValues(text).text(at: JSONValues.path(context.codingPath)).map(Self.quoted) ?? "the value"
            self.init(field: Self.path(context.codingPath), problem: "\(found) is not \(Self.kind(of: expected))")
        case .valueNotFound(let expected, let context):
            self.init(field: Self.path(context.codingPath), problem: "null where \(Self.kind(of: expected)) is needed")
        case .keyNotFound(let key, let context):
            self.init(field: Self.path(context.codingPath + [key]), problem: "missing")
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            // Foundation's words for a value that is none of an enumeration's name a Swift type.
            let value = context.debugDescription.hasPrefix("Cannot initialize ")
                ? JSONValues(text).text(at: JSONValues.path(context.codingPath)).map(Self.quoted) : nil
            self.init(field: Self.path(context.codingPath), problem: value.map { "\($0) is not one of its values" } ?? context.debugDescription)
        case .dataCorrupted:
            // Telling the two apart decodes the whole text again (as any JSON, then once per
            // step of the search): only for texts of at most `maximumSearchedBytes`.
            guard text.count <= JSONValues.maximumSearchedBytes else {
                self.init(field: nil, problem: "not valid JSON, or a number does not fit its field")
                return
            }
            let values = JSONValues(text)
            guard values.isJSON else {
                self = Self.notJSON(text)
                return
            }
            guard let (path, number) = values.misfitNumber(decoding: type) else {
                self.init(field: nil, problem: "a number does not fit its field (not an integer, or out of its range)")
                return
            }
            self.init(field: Self.path(path), problem: Self.misfit(number))
        @unknown default:
            self.init(field: nil, problem: "\(error)")
        }
    }

    /// Why `text` (of at most `JSONValues.maximumSearchedBytes`) is not JSON, as
    /// `JSONSerialization` says it.
    private static func notJSON(_ text: Data) -> JSONFieldError {
        do {
            _ = try JSONSerialization.jsonObject(with: text, options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            return JSONFieldError(field: nil, problem: "not valid JSON" + (detail.map { " (\($0))" } ?? ""))
        }
        return JSONFieldError(field: nil, problem: "not valid JSON")
    }

    /// What is wrong with a number Foundation could not put in its field.
    private static func misfit(_ number: String) -> String {
        guard let value = Double(number), value.isFinite, value.rounded() == value else { return "\(number) is not an integer" }
        if value < 0 && value >= -0x1p63 { return "\(number) is negative; the field takes an integer ≥ 0" }
        return "\(number) is out of the field's range"
    }

    /// The most characters of a key or a value quoted in an error.
    static let quotedCharacters = 40

    private static func quoted(_ text: String) -> String {
        text.count <= quotedCharacters ? text : text.prefix(quotedCharacters) + "…"
    }

    private static func path(_ keys: [any CodingKey]) -> String { path(JSONValues.path(keys)) }

    /// `a.b[2].c`.
    private static func path(_ elements: [JSONValues.Element]) -> String {
        var path = ""
        for element in elements {
            switch element {
            case .index(let index): path += "[\(index)]"
            case .key(let key): path += (path.isEmpty ? "" : ".") + quoted(key)
            }
        }
        return path.isEmpty ? "(the whole text)" : path
    }

    /// The JSON kind a Swift type is read from, with its article.
    private static func kind(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is any BinaryInteger.Type: "an integer"
        case is any BinaryFloatingPoint.Type: "a number"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
