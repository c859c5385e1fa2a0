/// The relay's figures for one service (`/stats` "relay.services.NAME", docs/reverse-tunnel.md).
public enum RelayServiceFigure: Int, FigureList {
    case connections, streams, streamsTotal, bytesUp, bytesDown, refused, unserved

    public var name: FigureName {
        let service = "Reverse-tunnel service"
        return switch self {
        case .connections:
            FigureName("connections", .gauge, metric: "relay_connections", help: "\(service): registered connector connections.")
        case .streams: FigureName("streams", .gauge, metric: "relay_streams", help: "\(service): open streams (client connections carried).")
        case .streamsTotal: FigureName("streams_total", .counter, metric: "relay_streams_total", help: "\(service): streams opened.")
        case .bytesUp: FigureName("bytes_up", .counter, metric: "relay_bytes_up_total", help: "\(service): bytes sent to connectors (counted when a stream ends).")
        case .bytesDown: FigureName("bytes_down", .counter, metric: "relay_bytes_down_total", help: "\(service): bytes received from connectors (counted when a stream ends).")
        case .refused:
            FigureName("refused", .counter, metric: "relay_registrations_refused_total", help: "\(service): connectors refused (identity not allowed).")
        case .unserved:
            FigureName("unserved", .counter, metric: "relay_unserved_total", help: "\(service): client connections that found no connector registered.")
        }
    }
}

/// The relay's figures that belong to no service (`/stats` "relay").
public enum RelayFigure: Int, FigureList {
    case handshakeFailures, unknownServices

    public var name: FigureName {
        switch self {
        case .handshakeFailures:
            FigureName("handshake_failures", .counter, metric: "relay_handshake_failures_total",
                       help: "Connector TLS handshakes that failed (no certificate, another CA, expired, not TLS).")
        case .unknownServices:
            FigureName("unknown_services", .counter, metric: "relay_unknown_services_total",
                       help: "Connectors that asked to serve a service no relay file declares.")
        }
    }
}

/// A connector pipeline's figures (`/stats` "pipelines.NAME.reverse").
public enum ConnectorFigure: Int, FigureList {
    case connected, connects, reconnects, refusals, streams

    public var name: FigureName {
        switch self {
        case .connected: FigureName("connected", .gauge, metric: "connector_connections", help: "Connector: registered connections to the relay.")
        case .connects: FigureName("connects", .counter, metric: "connector_registrations_total", help: "Connector: connections the relay registered.")
        case .reconnects: FigureName("reconnects", .counter, metric: "connector_reconnects_total", help: "Connector: connection attempts after a lost or failed one.")
        case .refusals:
            FigureName("refusals", .counter, metric: "connector_refusals_total",
                       help: "Connector: connections the relay refused (TLS handshake or registration); each backs off long.")
        case .streams: FigureName("streams_total", .counter, metric: "connector_streams_total", help: "Connector: streams the relay opened.")
        }
    }
}
