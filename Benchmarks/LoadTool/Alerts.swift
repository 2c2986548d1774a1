import Foundation
import NIOCore

/// Falco alerts to replay: each line's JSON bytes, untouched, and the subject `FALCO.<priority>`.
struct Alerts {
    struct Alert {
        var subject: String
        var payload: ByteBuffer
    }

    var alerts: [Alert] = []
    /// Lines that are not a JSON object with a known string "priority" (reported, not sent).
    var skipped: [(line: Int, reason: String)] = []

    /// Falco's eight priorities, the subject token each maps to. Matching ignores case (falcosidekick sends
    /// lower case), so `notice` goes to FALCO.Notice.
    static let priorities = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"]
    private static let byLowercase: [String: String] = Dictionary(uniqueKeysWithValues: priorities.map { ($0.lowercased(), $0) })

    static func canonicalPriority(_ value: String) -> String? {
        byLowercase[value.lowercased()]
    }

    /// Reads a JSONL file; stops after `limit` valid alerts.
    static func load(path: String, limit: Int) throws -> Alerts {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BenchError.usage("cannot read --alerts \(path): \(error.localizedDescription)")
        }
        var result = Alerts()
        var lineNumber = 0
        var start = data.startIndex
        while start < data.endIndex, result.alerts.count < limit {
            let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            lineNumber += 1
            var line = data[start..<end]
            start = end < data.endIndex ? data.index(after: end) : end
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
                if !line.isEmpty || end < data.endIndex { result.skipped.append((lineNumber, "empty line")) }
                continue
            }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                result.skipped.append((lineNumber, "not a JSON object"))
                continue
            }
            guard let priority = object["priority"] as? String else {
                result.skipped.append((lineNumber, object["priority"] == nil ? "no priority" : "priority is not a string"))
                continue
            }
            guard let canonical = canonicalPriority(priority) else {
                result.skipped.append((lineNumber, "unknown priority \(priority.debugDescription)"))
                continue
            }
            var payload = ByteBufferAllocator().buffer(capacity: line.count)
            payload.writeBytes(line)
            result.alerts.append(Alert(subject: "FALCO." + canonical, payload: payload))
        }
        return result
    }
}
