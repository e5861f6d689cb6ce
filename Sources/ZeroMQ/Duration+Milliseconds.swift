extension Duration {
    /// This duration in whole milliseconds for a libzmq `int` option, rounded up so a
    /// positive duration never becomes 0 ("do not wait") and clamped to `0...Int32.max`.
    var zmqMilliseconds: Int32 {
        guard self > .zero else { return 0 }
        let (seconds, attoseconds) = components
        guard seconds < Int64(Int32.max / 1000) else { return .max }
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let millis = (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond
        return Int32(clamping: seconds * 1000 + millis)
    }
}

extension Optional<Duration> {
    /// libzmq's convention for optional durations: `nil` (wait forever) is -1.
    var zmqMilliseconds: Int32 { map(\.zmqMilliseconds) ?? -1 }
}
