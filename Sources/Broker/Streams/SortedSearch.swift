extension Array where Element: Comparable {
    /// In an ascending array: the index of the first element at least `value` (count: none). The per-subject
    /// sequences of a stream and the file store's chunk keys are searched with it.
    func firstIndex(atLeast value: Element) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
