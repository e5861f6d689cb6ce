import Foundation
import Synchronization

/// Runs `count` independent items on `threads` threads of this process, each item on one
/// thread with that thread's own `KernelWorkspace`. Items are taken in index order from a
/// shared counter; after the first error no new item starts and that error is thrown.
public enum ParallelWork {
    public static func run(count: Int, threads: Int,
                           _ item: @escaping @Sendable (_ index: Int, _ workspace: KernelWorkspace) throws -> Void) async throws {
        try await run(count: count, threads: threads, pool: nil, item)
    }

    /// Like `run(count:threads:_:)`, with thread t using `pool`'s workspace t (a new one past
    /// the pool's size), so that successive runs reuse their buffers.
    public static func run(count: Int, threads: Int, pool: WorkspacePool?,
                           _ item: @escaping @Sendable (_ index: Int, _ workspace: KernelWorkspace) throws -> Void) async throws {
        guard count > 0 else { return }
        pool?.enter()
        defer { pool?.leave() }
        let state = Mutex<(next: Int, error: (any Error)?)>((0, nil))
        let group = DispatchGroup()
        for t in 0..<min(max(threads, 1), count) {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let workspace = pool?.workspace(t) ?? KernelWorkspace()
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

/// Workspaces kept for the threads of successive `ParallelWork.run` calls, so that their
/// buffers are allocated and faulted in once, not once per run.
///
/// `@unchecked Sendable`: during a run, thread t alone uses workspace t, and two runs never
/// use one pool at the same time (checked).
public final class WorkspacePool: @unchecked Sendable {
    private let workspaces: [KernelWorkspace]
    private let busy = Atomic<Bool>(false)

    /// A pool for runs of up to `threads` threads.
    public init(threads: Int) {
        workspaces = (0..<max(threads, 1)).map { _ in KernelWorkspace() }
    }

    func workspace(_ thread: Int) -> KernelWorkspace? { thread < workspaces.count ? workspaces[thread] : nil }

    func enter() {
        precondition(busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged,
                     "a WorkspacePool used by two runs at once")
    }

    func leave() { busy.store(false, ordering: .releasing) }
}
