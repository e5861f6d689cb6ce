import Foundation
import Synchronization

/// Runs `count` independent items on `threads` threads of this process, each item on one
/// thread with that thread's own `KernelWorkspace`. Items are taken in index order from a
/// shared counter; after the first error no new item starts and that error is thrown.
public enum ParallelWork {
    public static func run(count: Int, threads: Int,
                           _ item: @escaping @Sendable (_ index: Int, _ workspace: KernelWorkspace) throws -> Void) async throws {
        guard count > 0 else { return }
        let state = Mutex<(next: Int, error: (any Error)?)>((0, nil))
        let group = DispatchGroup()
        for _ in 0..<min(max(threads, 1), count) {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let workspace = KernelWorkspace()
                while true {
                    let index: Int? = state.withLock { state in
                        guard state.error == nil, state.next < count else { return nil }
                        defer { state.next += 1 }
                        return state.next
                    }
                    guard let index else { return }
                    do {
                        try item(index, workspace)
                    } catch {
                        state.withLock { if $0.error == nil { $0.error = error } }
                        return
                    }
                }
            }
            thread.stackSize = 1 << 22
            thread.start()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            group.notify(queue: .global()) { continuation.resume() }
        }
        if let error = state.withLock({ $0.error }) { throw error }
    }
}
