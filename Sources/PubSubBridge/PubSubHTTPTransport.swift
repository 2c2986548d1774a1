import AsyncHTTPClient
import Broker
import Foundation
import NIOCore
import NIOHTTP1

/// Pub/Sub's REST publish over AsyncHTTPClient: `POST {endpoint}/v1/projects/{p}/topics/{t}:publish`.
/// HTTPS to Google with a bearer token, or plain HTTP to the emulator without one. Every request has a
/// timeout (the emulator hangs for good on a request over ~11 MB).
public final class PubSubHTTPTransport: PubSubTransport {
    let url: String
    let client: HTTPClient
    let tokens: TokenProvider
    let timeout: Duration

    /// `endpoint`: the config's, else `http://$PUBSUB_EMULATOR_HOST`, else `https://pubsub.googleapis.com`.
    public init(config: BridgeConfig, client: HTTPClient, tokens: TokenProvider, environment: [String: String]) {
        let endpoint = config.endpoint
            ?? environment["PUBSUB_EMULATOR_HOST"].map { "http://" + $0 }
            ?? "https://pubsub.googleapis.com"
        let root = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.url = "\(root)/v1/projects/\(config.project)/topics/\(config.topic):publish"
        self.client = client
        self.tokens = tokens
        self.timeout = config.requestTimeout
    }

    public func publish(_ messages: [PubSubMessage]) async -> Result<[String], PublishFailure> {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        do {
            if let token = try await tokens.token() {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            }
        } catch {
            return .failure(.http(code: 401, status: "UNAUTHENTICATED", message: "no token: \(error)"))
        }
        request.body = .bytes(ByteBuffer(bytes: PubSubMessage.publishBody(messages)))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: TimeAmount(timeout))
            body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .failure(.timeout)
        } catch {
            return .failure(.connection("\(error)"))
        }
        let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        guard response.status == .ok else {
            let error = object?["error"] as? [String: Any]
            let message = error?["message"] as? String ?? String(buffer: body).prefix(300).description
            return .failure(.http(code: Int(response.status.code), status: error?["status"] as? String, message: message))
        }
        guard let ids = object?["messageIds"] as? [String] else {
            return .failure(.http(code: 500, status: "INTERNAL", message: "no messageIds in the answer"))
        }
        return .success(ids)
    }
}
