import ConfigValues

/// A pipeline's listener as `/stats` shows it under "listener" (docs/operations.md, "Admin
/// API"): where it takes connections, how, and whether it still does.
struct ListenerStatus: Sendable, Equatable {
    /// How the pipeline takes connections.
    enum Kind: String, Sendable {
        /// Plain TCP on `address`.
        case tcp
        /// TLS terminated on `address` (`listen.tls`).
        case tls
        /// A connector: streams come over its connections to the relay at `address`
        /// (`listen.reverse`, docs/reverse-tunnel.md).
        case reverse
    }

    /// The bound address (the port filled in), or a connector's relay.
    let address: String
    let kind: Kind
    /// Every listening socket is open (a connector: still dialing its relay).
    let active: Bool

    /// `listening` or `closed`; a connector is `running` (dialing or connected: its own
    /// figures under "reverse" say which) or `stopped`.
    var state: String {
        switch (kind, active) {
        case (.reverse, true): "running"
        case (.reverse, false): "stopped"
        case (_, true): "listening"
        case (_, false): "closed"
        }
    }

    var json: JSONValue {
        ["address": .string(address), "kind": .string(kind.rawValue), "state": .string(state)]
    }
}
