import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where log lines go: standard error, or the file given by `-l/--log` (appended to).
final class LogSink: Sendable {
    private let handle: NIOLockedValueBox<FileHandle>

    init(path: String?) throws {
        guard let path else {
            handle = NIOLockedValueBox(FileHandle.standardError)
            return
        }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        file.seekToEndOfFile()
        handle = NIOLockedValueBox(file)
    }

    func write(_ line: String) {
        handle.withLockedValue { $0.write(Data(line.utf8)) }
    }
}

/// Log lines in nats-server's shape: `[pid] 2026/11/23 02:19:28.123456 [INF] message key=value`.
struct BrokerLogHandler: LogHandler {
    let label: String
    let sink: LogSink
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, sink: LogSink) {
        self.label = label
        self.sink = sink
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level, message = event.message, explicit = event.metadata
        let merged = metadata.merging(explicit ?? [:]) { _, new in new }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let tag: String
        switch level {
        case .trace: tag = "TRC"
        case .debug: tag = "DBG"
        case .info, .notice: tag = "INF"
        case .warning: tag = "WRN"
        case .error: tag = "ERR"
        case .critical: tag = "FTL"
        }
        sink.write("[\(getpid())] \(Self.timestamp()) [\(tag)] \(message)\(fields.isEmpty ? "" : " " + fields)\n")
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var seconds = time_t(tv.tv_sec)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return String(format: "%04d/%02d/%02d %02d:%02d:%02d.%06d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(tv.tv_usec))
    }
}
