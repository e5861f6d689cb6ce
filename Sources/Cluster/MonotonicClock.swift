import Dispatch

/// Seconds on a monotonic clock: the only clock the cluster's state machines are fed.
enum MonotonicClock {
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
