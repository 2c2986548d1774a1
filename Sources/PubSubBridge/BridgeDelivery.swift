import ClientLib
import Foundation
import NIOCore

/// Publishing to Pub/Sub and acknowledging to brokerd: retries, dead letters, holding messages meanwhile.
extension PubSubBridge {
    /// Publishes `items` until Pub/Sub takes them (then acks each to brokerd) or refuses them for good
    /// (then each goes to the dead-letter subject).
    func deliver(_ items: [Held], client: NATSClient) async {
        var attempt = 0
        var lastProgress = ContinuousClock.now
        // Draining (graceful shutdown): the attempt under way ends, no new one starts; unacked messages come again.
        while !Task.isCancelled && !(attempt > 0 && isDraining) {
            let result = await transport.publish(items.map(\.message))
            switch result {
            case .success(let ids) where ids.count == items.count:
                await confirm(items, client: client)
                stats.addBridged(items.count)
                stats.succeeded()
                return
            case .success(let ids):
                // Should not happen; treat as retryable so nothing is acked without its id.
                record(.http(code: 500, status: "INTERNAL", message: "\(ids.count) ids for \(items.count) messages"), attempt: attempt + 1)
                attempt += 1
                try? await Task.sleep(for: .nanoseconds(policy.delay(attempt: attempt, random: Double.random(in: 0..<1))))
            case .failure(let failure):
                attempt += 1
                switch policy.decide(failure, attempt: attempt, random: Double.random(in: 0..<1)) {
                case .retry(let after):
                    record(failure, attempt: attempt)
                    await sleepKeepingHold(after, items: items, client: client, lastProgress: &lastProgress)
                case .misconfigured(let reason):
                    record(failure, attempt: attempt)
                    logger.error("Pub/Sub refuses the bridge (credentials, permission or topic); retrying", metadata: ["error": "\(reason)"])
                    await sleepKeepingHold(min(policy.delay(attempt: attempt, random: 1), 30_000_000_000), items: items,
                                           client: client, lastProgress: &lastProgress)
                case .reject(let reason):
                    if items.count > 1 {
                        // A batch was refused: find the culprit by sending each message alone.
                        for item in items { await deliver([item], client: client) }
                    } else {
                        await deadLetter(items[0], reason: "Pub/Sub refused it: \(reason)", client: client)
                    }
                    return
                }
            }
        }
    }

    func record(_ failure: PublishFailure, attempt: Int) {
        stats.addRetry()
        stats.failed(failure.description)
        if attempt == 1 || attempt % 10 == 0 {
            logger.warning("Pub/Sub publish failed; retrying", metadata: ["error": "\(failure.description)", "attempt": "\(attempt)"])
        }
    }

    /// Sleeps for a retry; held messages get +WPI meanwhile so brokerd does not redeliver them.
    func sleepKeepingHold(_ nanoseconds: Int64, items: [Held], client: NATSClient, lastProgress: inout ContinuousClock.Instant) async {
        var remaining = Duration.nanoseconds(nanoseconds)
        while remaining > .zero && !Task.isCancelled {
            let step = min(remaining, .seconds(5))
            try? await Task.sleep(for: step)
            remaining -= step
            if lastProgress.duration(to: .now) >= Self.progressEvery {
                lastProgress = .now
                for item in items { try? await client.publish(item.ackSubject, "+WPI") }
            }
        }
    }

    /// Pub/Sub has these (or they were dead-lettered): one ack each to brokerd (ClientLib coalesces the
    /// writes). A lost ack only means a redelivery later (at least once).
    func confirm(_ items: [Held], client: NATSClient) async {
        for item in items { try? await client.publish(item.ackSubject, payload: ByteBuffer()) }
    }

    /// To `BRIDGE.DLQ.<topic>` with the reason, stored by BRIDGE_DLQ (PubAck awaited), then acked.
    func deadLetter(_ item: Held, reason: String, client: NATSClient) async {
        var headers = NATSHeaders()
        for (name, value) in item.original.headers?.fields ?? [] {
            // The dead-letter stream is shared by every bridge: keep the id, but not as its dedupe key.
            headers.append(name.lowercased() == "nats-msg-id" ? "Bridge-Msg-Id" : name, value)
        }
        headers.append("Bridge-Reason", reason.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))
        headers.append("Bridge-Subject", item.original.subject)
        headers.append("Bridge-Topic", "projects/\(config.project)/topics/\(config.topic)")
        var attempt = 0
        var stored = false
        while !Task.isCancelled {
            do {
                let reply = try await client.request(config.deadLetterSubject, payload: item.original.payload, headers: headers,
                                                     timeout: .seconds(5))
                if !String(buffer: reply.payload).contains("\"error\"") {
                    stored = true
                    break
                }
                logger.error("Dead-letter stream refused a message; retrying", metadata: ["reply": "\(String(buffer: reply.payload))"])
            } catch {
                logger.error("Cannot dead-letter a message yet; retrying", metadata: ["error": "\(error)"])
            }
            attempt += 1
            try? await Task.sleep(for: Self.brokerBackoff.delay(attempt: attempt))
        }
        guard stored else { return }  // stopped before BRIDGE_DLQ stored it: no ack, so it comes again
        await confirm([item], client: client)
        stats.addDeadLettered()
        logger.warning("Message dead-lettered", metadata: ["subject": "\(item.original.subject)", "reason": "\(reason)",
                                                          "to": "\(config.deadLetterSubject)"])
    }

    /// Lag: what the durable consumer still has for the bridge, once a second.
    func watchLag(_ client: NATSClient, stream: String) async {
        while !Task.isCancelled {
            if let info = try? await api(client, "CONSUMER.INFO.\(stream).\(config.durableName)", [:]), Self.errorCode(info) == nil {
                let pending = (info["num_pending"] as? NSNumber)?.int64Value ?? 0
                let acking = (info["num_ack_pending"] as? NSNumber)?.int64Value ?? 0
                stats.setLag(pending + acking)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
