/// One value of a configuration file.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case array([ConfigValue])
    case map(ConfigMap)

    /// A short description for error messages, e.g. `string "abc"` or `integer 5`.
    public var summary: String {
        switch self {
        case .string(let s): return "string \"\(s)\""
        case .integer(let n): return "integer \(n)"
        case .float(let d): return "float \(d)"
        case .bool(let b): return "boolean \(b)"
        case .array: return "an array"
        case .map: return "a map"
        }
    }
}
