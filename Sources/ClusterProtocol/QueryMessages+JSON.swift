// The GET request and reply carry hand-coded JSON: they are the store's hot path.

extension GetRequest: HandCodedMetadata {
    public func write(to writer: inout MetadataWriter) {
        writer.beginObject()
        writer.key("keys")
        writer.array(keys) { writer, key in writer.string(key) }
        writer.endObject()
    }

    public init?(scanning scanner: inout MetadataScanner) {
        guard let keys = scanner.object(withOnly: "keys", { $0.array { $0.string() } }) else { return nil }
        self.init(keys: keys)
    }
}

extension VectorEntry: HandCodedMetadata {
    public func write(to writer: inout MetadataWriter) {
        writer.beginObject()
        if let dimension {
            writer.key("dimension")
            writer.integer(dimension)
        }
        if let encoding {
            writer.key("encoding")
            writer.string(encoding.rawValue)
        }
        if let flags {
            writer.key("flags")
            writer.integer(flags)
        }
        writer.key("found")
        writer.boolean(found)
        writer.key("key")
        writer.string(key)
        if let model {
            writer.key("model")
            writer.string(model)
        }
        writer.endObject()
    }

    public init?(scanning scanner: inout MetadataScanner) {
        var key: String?, found: Bool?, encoding: EncodingJob.Encoding?, model: String?, flags: Int?, dimension: Int?
        guard scanner.object({ scanner, name in
            switch name {
            case "key": key = scanner.string(); return key != nil
            case "found": found = scanner.boolean(); return found != nil
            case "encoding": encoding = scanner.string().flatMap(EncodingJob.Encoding.init(rawValue:)); return encoding != nil
            case "model": model = scanner.string(); return model != nil
            case "flags": flags = scanner.integer(); return flags != nil
            case "dimension": dimension = scanner.integer(); return dimension != nil
            default: return false
            }
        }), let key, let found else { return nil }
        self.init(key: key, found: found, encoding: encoding, model: model, flags: flags, dimension: dimension)
    }
}

extension GetReply: HandCodedMetadata {
    public func write(to writer: inout MetadataWriter) {
        writer.beginObject()
        writer.key("entries")
        writer.array(entries) { writer, entry in entry.write(to: &writer) }
        writer.endObject()
    }

    public init?(scanning scanner: inout MetadataScanner) {
        guard let entries = scanner.object(withOnly: "entries", { $0.array { VectorEntry(scanning: &$0) } }) else { return nil }
        self.init(entries: entries)
    }
}
