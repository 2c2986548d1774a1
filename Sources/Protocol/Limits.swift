/// Protocol limits, named after and defaulting to nats-server's (server/const.go).
public enum Limits {
    /// MAX_PAYLOAD_SIZE: 1 MiB.
    public static let defaultMaxPayload = 1024 * 1024
    /// MAX_CONTROL_LINE_SIZE: 4 KiB.
    public static let defaultMaxControlLine = 4096
    /// MAX_PENDING_SIZE: 64 MiB of outbound bytes before a client is a slow consumer.
    public static let defaultMaxPending = 64 * 1024 * 1024
    /// DEFAULT_MAX_CONNECTIONS: 64K.
    public static let defaultMaxConnections = 64 * 1024
}
