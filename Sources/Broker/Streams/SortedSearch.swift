extension RandomAccessCollection where Element: Comparable, Index == Int {
    /// In an ascending collection: the index of the first element at least `value` (endIndex: none). The
    /// per-subject sequences of a stream and the file store's chunk keys are searched with it.
    func firstIndex(atLeast value: Element) -> Int {
        var low = startIndex, high = endIndex
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
