/// Google Cloud Pub/Sub's limits. The emulator enforces none of them but the per-request count, so the
/// bridge checks them itself: a message the real service would refuse goes to the dead-letter subject.
public enum PubSubLimits {
    public static let maxMessageBytes = 10_000_000          // data + attributes + ordering key
    public static let maxAttributes = 100
    public static let maxAttributeKeyBytes = 256
    public static let maxAttributeValueBytes = 1024
    public static let maxOrderingKeyBytes = 1024
    public static let maxRequestMessages = 1000
    public static let maxRequestBytes = 10_000_000
}
