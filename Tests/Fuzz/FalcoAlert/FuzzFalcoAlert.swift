// libFuzzer target: the Falco alert check (Sources/Broker/Ingest/FalcoAlert.swift), the one validation every
// ingest path (HTTP, falco-pipe, falcosidekick's subjects) runs on bytes from the network.
//
// Beyond "no crash, no hang, no leak, no huge allocation", it checks what brokerd relies on:
// - an accepted alert's priority is one of Falco's, and its header block has exactly one line per header (no CR
//   or LF smuggled in from a field);
// - a consumer that parses the same bytes with a general JSON parser (Foundation's) reads the same priority,
//   rule, hostname, source and uuid as brokerd did (no duplicate key or escape that two readers see differently).
import FalcoAlertCheck
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFalcoAlert(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard case .success(let alert) = FalcoAlert.validate(bytes) else { return 0 }

    precondition(FalcoAlert.priorities.contains(alert.priority), "accepted an unknown priority")
    precondition(alert.subject == "FALCO." + alert.priority)
    let headers = alert.headerBlock()
    let lines = headers.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    let expected = 1 + [alert.rule, alert.hostname, alert.source].compactMap { $0 }.count + 2 + 1
    precondition(lines.count == expected + 1, "a header value holds a line break")
    precondition(!alert.messageID.isEmpty && !alert.messageID.utf8.contains { $0 < 0x20 || $0 == 0x20 || $0 == 0x7F })

    // What another consumer reads from the same bytes (when Foundation can parse it at all).
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return 0 }
    let theirs = (object["priority"] as? String).flatMap { FalcoAlert.canonicalPriority($0.utf8) }
    precondition(theirs == alert.priority, "another JSON reader sees priority \(String(describing: theirs)), brokerd \(alert.priority)")
    for (name, ours) in [("rule", alert.rule), ("hostname", alert.hostname), ("source", alert.source), ("uuid", alert.uuid)] {
        let value = object[name] as? String
        precondition(value == ours, "another JSON reader sees \(name) \(String(describing: value)), brokerd \(String(describing: ours))")
    }
    return 0
}
