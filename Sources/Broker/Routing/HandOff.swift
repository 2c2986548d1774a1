import NIOConcurrencyHelpers

/// Items handed from any thread to one consumer: `append` returns true for the first item since the last
/// `drain`, and only that caller schedules the drain. So a burst costs one task and one lock per item, not
/// one task per item (JetStream acks into its queue, deliveries into an event loop).
final class HandOff<Item>: @unchecked Sendable {
    private let box = NIOLockedValueBox<(items: [Item], scheduled: Bool)>(([], false))

    /// Adds `item`; true when the caller must schedule a `drain`.
    func append(_ item: Item) -> Bool {
        box.withLockedValue { state in
            state.items.append(item)
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
    }

    /// Everything appended so far; the next `append` schedules again.
    func drain() -> [Item] {
        box.withLockedValue { state in
            defer {
                state.items.removeAll(keepingCapacity: true)
                state.scheduled = false
            }
            return state.items
        }
    }
}
