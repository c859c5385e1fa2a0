/// Why a stage library or a stage instance could not be used. Every case renders as one line
/// that names the library (or stage) and says what was expected, for operators and for
/// `sssonector plugin check`.
public struct PluginError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for tests and for mapping to exit codes.
    public enum Kind: String, Sendable {
        case notFound = "not_found"
        case loadFailed = "load_failed"
        case noEntrySymbol = "no_entry_symbol"
        case entryFailed = "entry_failed"
        case incompatibleABI = "incompatible_abi"
        case malformedDescriptor = "malformed_descriptor"
        case missingHook = "missing_hook"
        case unknownType = "unknown_type"
        case configRejected = "config_rejected"
    }

    public let kind: Kind
    /// The library file (or the name that was searched for).
    public let library: String
    public let message: String

    public init(_ kind: Kind, library: String, _ message: String) {
        self.kind = kind
        self.library = library
        self.message = message
    }

    public var description: String { "\(library): \(message)" }
}
