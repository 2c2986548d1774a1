/// The JetStream API requests brokerd serves, parsed from the subject they are published on
/// (`$JS.API.STREAM.INFO.<stream>`, ...). nil for any other subject: nats-server's "bad request".
enum JetStreamAPI: Equatable, Sendable {
    case info
    case streamCreate(String)
    case streamUpdate(String)
    case streamInfo(String)
    case streamDelete(String)
    case streamPurge(String)
    case streamMsgGet(String)
    case streamMsgDelete(String)
    case streamNames
    case streamList
    /// CONSUMER.CREATE.<stream>[.<name>[.<filter>]] (the filter may hold dots).
    case consumerCreate(stream: String, name: String?, filter: String?)
    case consumerDurableCreate(stream: String, durable: String)
    case consumerInfo(stream: String, consumer: String)
    case consumerDelete(stream: String, consumer: String)
    case consumerNames(String)
    case consumerList(String)
    case consumerMsgNext(stream: String, consumer: String)
    case consumerPause(stream: String, consumer: String)

    static let prefix = "$JS.API."

    init?(subject: String) {
        guard subject.hasPrefix(Self.prefix) else { return nil }
        let tokens = subject.dropFirst(Self.prefix.count).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        // What follows the verb, dots included: a dotted stream name then fails the name check (10042) or is not
        // found, as before; a consumer filter keeps its dots.
        func rest(_ index: Int) -> String? {
            index < tokens.count ? tokens[index...].joined(separator: ".") : nil
        }
        let verb = tokens.count > 1 ? tokens[1] : ""
        switch tokens[0] {
        case "INFO" where tokens.count == 1:
            self = .info
        case "STREAM":
            switch verb {
            case "NAMES" where tokens.count == 2: self = .streamNames
            case "LIST" where tokens.count == 2: self = .streamList
            case "CREATE": guard let name = rest(2) else { return nil }; self = .streamCreate(name)
            case "UPDATE": guard let name = rest(2) else { return nil }; self = .streamUpdate(name)
            case "INFO": guard let name = rest(2) else { return nil }; self = .streamInfo(name)
            case "DELETE": guard let name = rest(2) else { return nil }; self = .streamDelete(name)
            case "PURGE": guard let name = rest(2) else { return nil }; self = .streamPurge(name)
            case "MSG" where tokens.count > 3 && tokens[2] == "GET": self = .streamMsgGet(rest(3)!)
            case "MSG" where tokens.count > 3 && tokens[2] == "DELETE": self = .streamMsgDelete(rest(3)!)
            default: return nil
            }
        case "CONSUMER":
            switch verb {
            case "CREATE" where tokens.count > 2:
                self = .consumerCreate(stream: tokens[2], name: tokens.count > 3 ? tokens[3] : nil, filter: rest(4))
            case "DURABLE" where tokens.count > 4 && tokens[2] == "CREATE":
                self = .consumerDurableCreate(stream: tokens[3], durable: rest(4)!)
            case "INFO" where tokens.count > 2: self = .consumerInfo(stream: tokens[2], consumer: rest(3) ?? "")
            case "DELETE" where tokens.count > 2: self = .consumerDelete(stream: tokens[2], consumer: rest(3) ?? "")
            case "NAMES" where tokens.count > 2: self = .consumerNames(rest(2)!)
            case "LIST" where tokens.count > 2: self = .consumerList(rest(2)!)
            case "PAUSE" where tokens.count > 3: self = .consumerPause(stream: tokens[2], consumer: rest(3)!)
            case "MSG" where tokens.count > 3 && tokens[2] == "NEXT":
                self = .consumerMsgNext(stream: tokens[3], consumer: rest(4) ?? "")
            default: return nil
            }
        default:
            return nil
        }
    }
}
