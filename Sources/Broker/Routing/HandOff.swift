import NIOConcurrencyHelpers

/// Items handed from any thread to one consumer: `append` says "schedule a drain" for the first item since the
/// last `drain` only, so a burst costs one task and one short lock per item, not one task per item. Used for
/// everything that crosses threads in batches: messages other loops encoded for a client (`Outbound`),
/// JetStream's deliveries into an event loop (`SubjectSpace`), acks into JetStream's queue.
final class HandOff<Item>: @unchecked Sendable {
    private struct State {
        var items: [Item] = []
        /// What the waiting items weigh (bytes, for a client's backlog).
        var weight = 0
        var scheduled = false
    }

    private let box = NIOLockedValueBox(State())

    init() {}

    /// Adds `item`, weighing `weight`. `schedule`: the caller must schedule a `drain`; `waiting`: the weight of
    /// everything not drained yet.
    @discardableResult
    func append(_ item: Item, weight: Int = 0) -> (schedule: Bool, waiting: Int) {
        box.withLockedValue { state in
            state.items.append(item)
            state.weight += weight
            if state.scheduled { return (false, state.weight) }
            state.scheduled = true
            return (true, state.weight)
        }
    }

    /// Everything appended so far; the next `append` schedules again.
    func drain() -> [Item] {
        box.withLockedValue { state in
            defer {
                state.items.removeAll(keepingCapacity: true)
                state.weight = 0
                state.scheduled = false
            }
            return state.items
        }
    }
}
