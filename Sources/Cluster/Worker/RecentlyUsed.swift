/// Values by key, of which only the `capacity` last used are kept: what a worker holds for
/// keys its coordinator chooses (jobs, corpus paths) stays bounded however many it names.
struct RecentlyUsed<Key: Hashable, Value> {
    let capacity: Int
    private(set) var values: [Key: Value] = [:]
    /// The keys of `values`, the one last used last.
    private(set) var keys: [Key] = []

    init(capacity: Int) { self.capacity = capacity }

    subscript(key: Key) -> Value? { values[key] }

    /// Stores `value` under `key` and counts it as used.
    mutating func set(_ key: Key, _ value: Value) {
        values[key] = value
        use(key)
    }

    /// Counts `key` (which must be stored) as used last, dropping the least recently used
    /// key beyond `capacity`.
    mutating func use(_ key: Key) {
        keys.removeAll { $0 == key }
        keys.append(key)
        if keys.count > capacity { values.removeValue(forKey: keys.removeFirst()) }
    }

    mutating func remove(_ key: Key) {
        values.removeValue(forKey: key)
        keys.removeAll { $0 == key }
    }

    mutating func removeAll() {
        values = [:]
        keys = []
    }
}
