import ConfigValues
import Locking
import NIOCore
import NIOHTTP2

/// The relay's table of services and the connector connections registered for each
/// (docs/reverse-tunnel.md). Shared by the relay listeners (which register connections) and the
/// pipelines whose upstreams name a service (which open streams): thread-safe.
final class RelayHub: Sendable {
    private struct Service {
        var allow: Set<String>
        var connections: [TunnelConnection] = []
        let figures = FigureValues<RelayServiceFigure>()
    }

    private let services = Locked<[String: Service]>([:])
    /// Service names in the order the relay files declare them (`/stats`).
    private let order = Locked<[String]>([])
    let figures = FigureValues<RelayFigure>()

    init() {}

    /// Takes the services and allow lists of `relays` (start and reload). A service no file
    /// declares any more keeps its figures but no allow list; connections whose identity is no
    /// longer allowed are closed.
    func configure(_ relays: [RelayConfig]) {
        var declared: [String: Set<String>] = [:]
        var names: [String] = []
        for relay in relays {
            for service in relay.services {
                declared[service.name, default: []].formUnion(service.allow)
                if !names.contains(service.name) { names.append(service.name) }
            }
        }
        let dropped: [TunnelConnection] = services.withLock { table in
            var dropped: [TunnelConnection] = []
            for name in Set(table.keys).union(declared.keys) {
                var entry = table[name] ?? Service(allow: [])
                entry.allow = declared[name] ?? []
                let (kept, gone) = entry.connections.partitioned { entry.allow.contains($0.identity) }
                entry.connections = kept
                dropped += gone
                table[name] = entry
            }
            return dropped
        }
        order.withLock { $0 = names }
        for connection in dropped { connection.refuse("identity \"\(connection.identity)\" is no longer allowed for service \"\(connection.service)\"") }
    }

    /// Whether some relay file declares `service`.
    func declares(_ service: String) -> Bool {
        services.withLock { $0[service].map { !$0.allow.isEmpty } ?? false }
    }

    /// Which of a certificate's `names` may serve `service`: the identity it registers under,
    /// or why not.
    func authorize(names: [String], service: String) -> Result<String, RegistrationRefusal> {
        services.withLock { table in
            guard let entry = table[service], !entry.allow.isEmpty else {
                figures.add(.unknownServices)
                return .failure(RegistrationRefusal(message: "no relay file declares service \"\(service)\""))
            }
            guard let identity = names.first(where: entry.allow.contains) else {
                entry.figures.add(.refused)
                let shown = names.isEmpty ? "(no CN or SAN)" : names.joined(separator: ", ")
                return .failure(RegistrationRefusal(message: "certificate \(shown) is not allowed to serve \"\(service)\""))
            }
            return .success(identity)
        }
    }

    func register(_ connection: TunnelConnection) {
        services.withLock { table in
            table[connection.service, default: Service(allow: [])].connections.append(connection)
            table[connection.service]?.figures.add(.connections)
        }
    }

    func unregister(_ connection: TunnelConnection) {
        services.withLock { table in
            guard var entry = table[connection.service],
                  let index = entry.connections.firstIndex(where: { $0 === connection }) else { return }
            entry.connections.remove(at: index)
            entry.figures.subtract(.connections)
            table[connection.service] = entry
        }
    }

    /// The connection to carry a new stream of `service` for a client on `loop`: the one with
    /// the fewest open streams, preferring connections on `loop` (no hop between threads).
    func pick(service: String, loop: EventLoop) -> (TunnelConnection, FigureValues<RelayServiceFigure>)? {
        services.withLock { table in
            guard let entry = table[service] else { return nil }
            func fewest(_ candidates: some Sequence<TunnelConnection>) -> TunnelConnection? {
                candidates.min { $0.openStreams < $1.openStreams }
            }
            let chosen = fewest(entry.connections.lazy.filter { $0.loop === loop }) ?? fewest(entry.connections)
            guard let chosen else {
                entry.figures.add(.unserved)
                return nil
            }
            return (chosen, entry.figures)
        }
    }

    /// `/stats` "relay": per service its connectors and figures.
    var json: JSONValue {
        let names = order.withLock { $0 }
        let table = services.withLock { $0 }
        var entries: [(String, JSONValue)] = []
        for name in names + table.keys.filter({ !names.contains($0) }).sorted() {
            guard let entry = table[name] else { continue }
            let connectors: [JSONValue] = entry.connections.map { c in
                ["identity": .string(c.identity), "address": .string(c.address), "streams": .int(Int64(c.openStreams))]
            }
            entries.append((name, .object([("connectors", .array(connectors))] + entry.figures.json)))
        }
        return .object(figures.json + [("services", .object(entries))])
    }

    /// Every connector connection's figures, by service (metrics).
    var serviceFigures: [(String, FigureValues<RelayServiceFigure>)] {
        services.withLock { table in table.map { ($0.key, $0.value.figures) }.sorted { $0.0 < $1.0 } }
    }
}

/// Why a connector may not register.
struct RegistrationRefusal: Error {
    let message: String
}

extension Array {
    /// The elements that satisfy `belongs`, and the others, each in order.
    func partitioned(_ belongs: (Element) -> Bool) -> ([Element], [Element]) {
        var yes: [Element] = []
        var no: [Element] = []
        for element in self { if belongs(element) { yes.append(element) } else { no.append(element) } }
        return (yes, no)
    }
}
