import ClientLib
import Foundation
import NIOCore

/// The JetStream side of the bridge, through brokerd's `$JS.API`: the stream that captures the subjects, the
/// durable consumer with explicit acks, and the shared dead-letter stream.
extension PubSubBridge {
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    func api(_ client: NATSClient, _ subject: String, _ body: [String: Any]) async throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let reply: NATSMessage
        do {
            reply = try await client.request("$JS.API." + subject, payload: ByteBuffer(bytes: data), timeout: .seconds(5))
        } catch NATSError.noResponders {
            throw SetupError(description: "JetStream is not enabled on brokerd (start it with -js or a jetstream block)")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(reply.payload.readableBytesView)) as? [String: Any] else {
            throw SetupError(description: "bad JetStream response to \(subject)")
        }
        return object
    }

    static func errorCode(_ response: [String: Any]) -> (Int, String)? {
        guard let error = response["error"] as? [String: Any] else { return nil }
        return ((error["err_code"] as? NSNumber)?.intValue ?? 0, error["description"] as? String ?? "error")
    }

    /// The stream to read (found or created), with the durable consumer and the dead-letter stream in place.
    func setUp(_ client: NATSClient) async throws -> String {
        var streamName = config.stream
        if streamName == nil {
            let names = try await api(client, "STREAM.NAMES", ["subject": config.subjects[0]])
            streamName = (names["streams"] as? [String])?.first
        }
        let name = streamName ?? config.defaultStreamName
        let info = try await api(client, "STREAM.INFO.\(name)", [:])
        var streamSubjects: [String] = []
        if let (code, _) = Self.errorCode(info), code == 10059 {
            let created = try await api(client, "STREAM.CREATE.\(name)", ["name": name, "subjects": config.subjects, "storage": "file"])
            if let (_, description) = Self.errorCode(created) {
                throw SetupError(description: "cannot create stream \(name) for \(config.subjects): \(description)")
            }
            logger.info("Bridge created its stream", metadata: ["stream": "\(name)", "subjects": "\(config.subjects)"])
            streamSubjects = config.subjects
        } else if let (_, description) = Self.errorCode(info) {
            throw SetupError(description: "stream \(name): \(description)")
        } else {
            streamSubjects = ((info["config"] as? [String: Any])?["subjects"] as? [String]) ?? []
            if Set(streamSubjects) != Set(config.subjects) && config.subjects.count > 1 {
                // One consumer filter can select one subject set only: several subjects need a stream of
                // exactly those subjects (else some would be missed, or others bridged).
                throw SetupError(description: "stream \(name) captures \(streamSubjects), the bridge wants \(config.subjects): give the bridge a stream of exactly these subjects (gcp_pubsub.stream) or one subject")
            }
        }
        var consumer: [String: Any] = [
            "durable_name": config.durableName, "ack_policy": "explicit", "deliver_policy": "all",
            "ack_wait": Self.ackWait, "max_ack_pending": Self.maxAckPending, "max_deliver": -1,
        ]
        if streamSubjects != config.subjects, config.subjects.count == 1 { consumer["filter_subject"] = config.subjects[0] }
        let created = try await api(client, "CONSUMER.DURABLE.CREATE.\(name).\(config.durableName)",
                                    ["stream_name": name, "config": consumer])
        if let (code, description) = Self.errorCode(created) {
            // An existing durable with another configuration (an older version, or set up by hand): use it.
            guard code == 10148 || code == 10013 else {
                throw SetupError(description: "consumer \(config.durableName) on \(name): \(description)")
            }
            logger.warning("Bridge uses the existing consumer as it is", metadata: ["consumer": "\(config.durableName)", "note": "\(description)"])
        }
        // Explicit acks, one per message: under ack policy all an ack would also cover deliveries the bridge
        // never received (lost with a connection, or held by a previous run), and lose them.
        let consumerInfo = try await api(client, "CONSUMER.INFO.\(name).\(config.durableName)", [:])
        if let policy = (consumerInfo["config"] as? [String: Any])?["ack_policy"] as? String, policy != "explicit" {
            throw SetupError(description: "consumer \(config.durableName) on \(name) has ack policy \(policy); the bridge needs explicit acks (delete the consumer or set another `durable`)")
        }
        let dlq = try await api(client, "STREAM.INFO.\(Self.dlqStream)", [:])
        if let (code, _) = Self.errorCode(dlq), code == 10059 {
            let made = try await api(client, "STREAM.CREATE.\(Self.dlqStream)", ["name": Self.dlqStream, "subjects": ["BRIDGE.DLQ.>"], "storage": "file"])
            if let (code, description) = Self.errorCode(made), code != 10058 {
                throw SetupError(description: "cannot create \(Self.dlqStream): \(description)")
            }
        }
        return name
    }
}
