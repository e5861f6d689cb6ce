// The GET request and reply carry hand-coded JSON: they are the store's hot path.

extension GetRequest: HandCodedMetadata {
    func write(to writer: inout MetadataWriter) {
        writer.beginObject()
        writer.key("keys")
        writer.beginArray()
        for key in keys {
            writer.nextElement()
            writer.string(key)
        }
        writer.endArray()
        writer.endObject()
    }

    init?(scanning scanner: inout MetadataScanner) {
        var keys: [String]?
        guard scanner.object({ scanner, name in
            guard name == "keys" else { return false }
            var list: [String] = []
            defer { keys = list }
            return scanner.array { scanner in
                guard let key = scanner.string() else { return false }
                list.append(key)
                return true
            }
        }), let keys else { return nil }
        self.init(keys: keys)
    }
}

extension VectorEntry: HandCodedMetadata {
    func write(to writer: inout MetadataWriter) {
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

    init?(scanning scanner: inout MetadataScanner) {
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
    func write(to writer: inout MetadataWriter) {
        writer.beginObject()
        writer.key("entries")
        writer.beginArray()
        for entry in entries {
            writer.nextElement()
            entry.write(to: &writer)
        }
        writer.endArray()
        writer.endObject()
    }

    init?(scanning scanner: inout MetadataScanner) {
        var entries: [VectorEntry]?
        guard scanner.object({ scanner, name in
            guard name == "entries" else { return false }
            var list: [VectorEntry] = []
            defer { entries = list }
            return scanner.array { scanner in
                guard let entry = VectorEntry(scanning: &scanner) else { return false }
                list.append(entry)
                return true
            }
        }), let entries else { return nil }
        self.init(entries: entries)
    }
}
