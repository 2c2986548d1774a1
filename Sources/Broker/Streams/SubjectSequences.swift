/// One subject's stored sequences, ascending. The oldest ones leave first almost always (limits, max_age, acks
/// under workqueue retention): removing the first only moves where the list starts, and the dead front is
/// dropped once it is half of the storage, so a removal costs O(1) amortized rather than moving every sequence
/// after it (with 100,000 messages on one subject and max_msgs reached, moving them halved the publish rate).
/// Any other removal finds its sequence by a binary search.
struct SubjectSequences: RandomAccessCollection, ExpressibleByArrayLiteral, Sendable {
    private var storage: [UInt64] = []
    private var start = 0

    init() {}

    init(arrayLiteral elements: UInt64...) {
        storage = elements
    }

    var startIndex: Int { 0 }
    var endIndex: Int { storage.count - start }
    subscript(position: Int) -> UInt64 { storage[start + position] }

    /// The sequences as a slice of the storage (no copy).
    var elements: ArraySlice<UInt64> { storage[start...] }

    /// Adds the newest sequence (above every one held).
    mutating func append(_ sequence: UInt64) {
        storage.append(sequence)
    }

    mutating func append(contentsOf sequences: [UInt64]) {
        storage.append(contentsOf: sequences)
    }

    /// Puts `sequence` back in its place (a rollback restores an older message).
    mutating func insert(_ sequence: UInt64) {
        let index = firstIndex(atLeast: sequence)
        if index < count, self[index] == sequence { return }
        storage.insert(sequence, at: start + index)
    }

    /// Removes `sequence` when held; true when it was.
    @discardableResult
    mutating func remove(_ sequence: UInt64) -> Bool {
        let index = firstIndex(atLeast: sequence)
        guard index < count, self[index] == sequence else { return false }
        if index == 0 {
            removeFirst()
        } else {
            storage.remove(at: start + index)
        }
        return true
    }

    mutating func removeFirst() {
        precondition(start < storage.count, "removeFirst on no sequences")
        start += 1
        if start == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 1024)
            start = 0
        } else if start >= 512, start * 2 >= storage.count {
            storage.removeFirst(start)
            start = 0
        }
    }
}
