import Synchronization

/// Wakes one waiting task: the bridge's pump sleeps on it until there is something to do (a batch may be
/// ready, a pull request ended, room was freed, the bridge is draining) or a deadline passes. A ring while
/// nobody waits is kept, so a wake-up between "nothing to do" and `wait` is never lost (at worst one extra
/// look). Rung from any thread, the event loop's included: ringing never suspends.
final class Doorbell: Sendable {
    private enum State {
        case idle
        case rung
        case waiting(CheckedContinuation<Void, Never>)
    }

    private let state = Mutex<State>(.idle)

    func ring() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if case .waiting(let continuation) = state {
                state = .idle
                return continuation
            }
            state = .rung
            return nil
        }
        waiter?.resume()
    }

    /// Returns at a ring (or at once if one came since the last wait), at `deadline`, or when cancelled.
    /// One waiter at a time.
    func wait(until deadline: ContinuousClock.Instant?) async {
        if state.withLock({ state in
            guard case .rung = state else { return false }
            state = .idle
            return true
        }) { return }
        guard let deadline else { return await waitForRing() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForRing() }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { state in
                    if case .rung = state {
                        state = .idle
                        return true
                    }
                    // Checked under the lock: a cancellation handler that already ran found nobody to resume.
                    if Task.isCancelled { return true }
                    state = .waiting(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
                guard case .waiting(let continuation) = state else { return nil }
                state = .idle
                return continuation
            }
            waiter?.resume()
        }
    }
}

/// At most `n` holders at once; waiters are served in order, and a cancelled waiter leaves the line.
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    init(_ n: Int) { state = Mutex(State(available: n)) }

    /// True once a permit is held; false when the task was cancelled while waiting.
    func acquire() async -> Bool {
        let id: UInt64? = state.withLock { state in
            if state.available > 0 {
                state.available -= 1
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let cancelled: Bool = state.withLock { state in
                    if Task.isCancelled { return true }
                    state.waiters.append((id, continuation))
                    return false
                }
                if cancelled { continuation.resume(returning: false) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
    }

    /// Hands the permit to the first waiter, or puts it back.
    func release() {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        waiter?.resume(returning: true)
    }
}

/// Opens once; every waiter (before or after) goes on then. Marks the end of one batch's delivery, so the next
/// batch with the same ordering key can start.
final class Latch: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    var isOpen: Bool { state.withLock { $0.open } }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Not cancellable: what it waits for always opens it (a delivery ends, cancelled or not).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let openNow: Bool = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if openNow { continuation.resume() }
        }
    }
}

/// The last batch per ordering key, so the next batch of that key waits for it. Finished ones are dropped
/// (keys come from alert content: hostnames, rules).
final class KeyChains: Sendable {
    private let chains = Mutex<[String: Latch]>([:])

    func last(for key: String) -> Latch? { chains.withLock { $0[key] } }

    func set(_ latch: Latch, for key: String) {
        chains.withLock { chains in
            chains[key] = latch
            if chains.count > 1024 { chains = chains.filter { !$0.value.isOpen } }
        }
    }
}
