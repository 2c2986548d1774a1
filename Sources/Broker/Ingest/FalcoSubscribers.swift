import NIOCore
import Protocol

/// `$FALCO.INGEST`: `brokerd falco-pipe` sends each line it reads here with a reply subject. brokerd checks it,
/// publishes it, and answers once it is accepted (stored and synced when a stream captures FALCO.>):
/// `{"ok":true,"subject":...,"id":...}`, or `{"error":...,"reason":...,"retry":bool}`.
final class FalcoPipeSubscriber: InternalSubscriber {
    let ingest: FalcoIngest

    init(ingest: FalcoIngest) { self.ingest = ingest }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        let replyTo = publish.reply.map(ByteBuffer.compactCopy(of:))
        let respond: @Sendable (String) -> Void = { text in
            guard let replyTo else { return }
            router.eventLoop.execute {
                router.reply(to: replyTo, ByteBuffer(string: text))
                router.flushPending()
            }
        }
        let body = Array(publish.payload.readableBytesView.dropFirst(publish.headerLength ?? 0))
        switch FalcoAlert.validate(body) {
        case .failure(let rejection):
            ingest.countRejected(.pipe, reason: rejection.reason.rawValue, detail: rejection.detail)
            respond(#"{"error":\#(JSONString.quoted(rejection.detail)),"reason":"\#(rejection.reason.rawValue)","retry":false}"#)
        case .success(let alert):
            if let violation = ingest.permissionViolation(for: alert) {
                ingest.countRejected(.pipe, reason: "permission", detail: violation)
                respond(#"{"error":\#(JSONString.quoted(violation)),"reason":"permission","retry":false}"#)
                return replyTo != nil
            }
            ingest.publish(alert, body: body, path: .pipe, via: router) { outcome in
                switch outcome {
                case .accepted:
                    respond(#"{"ok":true,"subject":"\#(alert.subject)","id":\#(JSONString.quoted(alert.messageID))}"#)
                case .failed(let description, let overloaded):
                    respond(#"{"error":\#(JSONString.quoted(description)),"reason":"\#(overloaded ? "overloaded" : "store_failed")","retry":true}"#)
                }
            }
        }
        return replyTo != nil
    }
}

/// `falco.>` (with `falco { map_sidekick_subjects: true }`): falcosidekick's NATS output publishes on
/// `falco.<lower-case priority>.<rule slug>` with no headers. The alert is checked as every ingest path checks
/// it and published again as `FALCO.<Priority>` with the Falco headers (keeping the reply subject, so a stream
/// that captures it answers the publisher). A bad alert is counted, logged and not published.
final class SidekickSubscriber: InternalSubscriber {
    let ingest: FalcoIngest

    init(ingest: FalcoIngest) { self.ingest = ingest }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        let body = publish.payload.readableBytesView.dropFirst(publish.headerLength ?? 0)
        let result = body.withContiguousStorageIfAvailable { FalcoAlert.validate(UnsafeRawBufferPointer($0)) }
            ?? FalcoAlert.validate(Array(body))
        switch result {
        case .failure(let rejection):
            ingest.countRejected(.sidekick, reason: rejection.reason.rawValue, detail: rejection.detail)
            return false
        case .success(let alert):
            if let violation = ingest.permissionViolation(for: alert) {
                ingest.countRejected(.sidekick, reason: "permission", detail: violation)
                return false
            }
            ingest.countAccepted(.sidekick)
            let mapped = FalcoIngest.message(alert, body: body, reply: publish.reply.map(ByteBuffer.compactCopy(of:)))
            return router.publishFromServer(mapped, toServices: true, answer: answer ?? PublishAnswer.forClient(mapped, via: router))
        }
    }
}
