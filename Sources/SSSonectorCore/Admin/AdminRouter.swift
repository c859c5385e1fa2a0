import ConfigValues
import NIOCore
import NIOHTTP1

/// One admin API answer.
struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType = "application/json"
    var body: String
    /// Headers beyond content type and length (the status page's security policy).
    var headers: [(name: String, value: String)] = []

    static func json(_ status: HTTPResponseStatus, _ value: JSONValue) -> AdminResponse {
        AdminResponse(status: status, body: value.jsonText + "\n")
    }

    static func error(_ status: HTTPResponseStatus, _ message: String) -> AdminResponse {
        .json(status, ["error": .string(message)])
    }
}

/// Routes admin requests (docs/operations.md, "Admin API"). Stage stats and control run on the host's control loop, as
/// the ABI requires; everything else reads thread-safe state.
struct AdminRouter: Sendable {
    let host: Host
    let metrics: HostMetrics
    let control: EventLoop
    /// Required bearer token, if any.
    let token: String?

    func route(method: HTTPMethod, uri: String, authorization: String?, body: String, on loop: EventLoop) -> EventLoopFuture<AdminResponse> {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        // The status page carries no data and no secret: it fetches `/stats` with the token the
        // operator types into it, so it is served without one (and asks for it on a 401).
        if path == "/" {
            return loop.makeSucceededFuture(method == .GET ? StatusPage.response : methodNotAllowed("GET"))
        }
        if let token, authorization != "Bearer \(token)" {
            return loop.makeSucceededFuture(.error(.unauthorized, "missing or wrong bearer token"))
        }
        let parts = path.split(separator: "/").map(String.init)
        switch (parts.first, parts.count) {
        case ("healthz", 1):
            guard method == .GET else { return loop.makeSucceededFuture(methodNotAllowed("GET")) }
            let up = host.isListening
            return loop.makeSucceededFuture(AdminResponse(status: up ? .ok : .serviceUnavailable, contentType: "text/plain",
                                                          body: up ? "ok\n" : "not listening\n"))
        case ("stats", 1):
            guard method == .GET else { return loop.makeSucceededFuture(methodNotAllowed("GET")) }
            let runtimes = host.runtimes
            let listeners = host.listenerStatus
            let connectors = host.connectors
            let relay = host.hasRelay ? host.relayHub : nil
            return control.submit {
                AdminResponse.json(.ok, StatsDocument.build(runtimes, listeners: listeners, connectors: connectors, relay: relay) {
                    $0.statsJSON()
                })
            }.hop(to: loop)
        case ("metrics", 1):
            guard method == .GET else { return loop.makeSucceededFuture(methodNotAllowed("GET")) }
            metrics.refresh(host.runtimes, connectors: host.connectors, relay: host.hasRelay ? host.relayHub : nil)
            return loop.makeSucceededFuture(AdminResponse(status: .ok, contentType: "text/plain; version=0.0.4",
                                                          body: host.metrics.prometheusText()))
        case ("reload", 1):
            guard method == .POST else { return loop.makeSucceededFuture(methodNotAllowed("POST")) }
            return host.reload(completingOn: loop).map { errors in
                errors.isEmpty ? .json(.ok, ["reloaded": true])
                    : .json(.badRequest, ["error": "reload refused; the running configuration stays",
                                          "errors": .array(errors.map { .string($0) })])
            }
        case ("pipelines", _):
            return pipelineRoute(method: method, parts: Array(parts.dropFirst()), body: body, on: loop)
        default:
            return loop.makeSucceededFuture(.error(.notFound, "no such endpoint: \(path)"))
        }
    }

    private func methodNotAllowed(_ allowed: String) -> AdminResponse {
        .error(.methodNotAllowed, "method not allowed; use \(allowed)")
    }

    private func pipelineRoute(method: HTTPMethod, parts: [String], body: String, on loop: EventLoop) -> EventLoopFuture<AdminResponse> {
        guard let name = parts.first, let runtime = host.runtimes.first(where: { $0.name == name }) else {
            return loop.makeSucceededFuture(.error(.notFound, "no pipeline named \(parts.first ?? "")"))
        }
        switch (parts.dropFirst().first, parts.count) {
        case ("stages", 4) where parts[3] == "control":
            guard method == .POST else { return loop.makeSucceededFuture(methodNotAllowed("POST")) }
            guard let stage = runtime.chain.stages.first(where: { $0.name == parts[2] }) else {
                return loop.makeSucceededFuture(.error(.notFound, "pipeline \(name) has no stage named \(parts[2])"))
            }
            guard (try? JSONValue.parse(body)) != nil else {
                return loop.makeSucceededFuture(.error(.badRequest, "the body must be a JSON command"))
            }
            return control.submit { ControlAnswer.response(stage: stage, body: body) }.hop(to: loop)
        case ("upstreams", 2):
            guard method == .POST else { return loop.makeSucceededFuture(methodNotAllowed("POST")) }
            return loop.makeSucceededFuture(addUpstream(runtime, body))
        case ("upstreams", 3):
            let upstream = parts[2]
            switch method {
            case .DELETE:
                guard runtime.upstreams.drain(name: upstream) else { return loop.makeSucceededFuture(.error(.notFound, "no upstream named \(upstream)")) }
                return loop.makeSucceededFuture(.json(.accepted, ["upstream": .string(upstream), "draining": true]))
            case .PATCH:
                return loop.makeSucceededFuture(patchUpstream(runtime, upstream, body))
            default:
                return loop.makeSucceededFuture(methodNotAllowed("DELETE or PATCH"))
            }
        default:
            return loop.makeSucceededFuture(.error(.notFound, "no such endpoint under /pipelines/\(name)"))
        }
    }

    private func addUpstream(_ runtime: PipelineRuntime, _ body: String) -> AdminResponse {
        do {
            let o = try ConfigObject(try JSONValue.parse(body), path: "")
            let name = try o.requiredString("name")
            let address = try o.requiredString("address")
            let weight = try o.int("weight", default: 1, in: 0...1_000_000)
            try o.finish()
            guard case .success(let endpoint) = EndpointAddress.parse(address, allowPortZero: false) else {
                return .error(.badRequest, "address: expected \"host:port\", found \"\(address)\"")
            }
            guard runtime.upstreams.add(name: name, address: endpoint.description, weight: UInt32(weight)) else {
                return .error(.conflict, "an upstream named \(name) exists")
            }
            return .json(.created, ["name": .string(name), "address": .string(endpoint.description), "weight": .int(weight)])
        } catch let error as ConfigError {
            return .error(.badRequest, error.description)
        } catch {
            return .error(.badRequest, "\(error)")
        }
    }

    /// `{"weight": N}` changes a weight, `{"draining": false}` restores a draining upstream
    /// (`true` drains it, as DELETE does); either or both.
    private func patchUpstream(_ runtime: PipelineRuntime, _ name: String, _ body: String) -> AdminResponse {
        do {
            let o = try ConfigObject(try JSONValue.parse(body), path: "")
            let weight = try o.int("weight", in: 0...1_000_000)
            let draining = try o.bool("draining")
            try o.finish()
            guard weight != nil || draining != nil else { return .error(.badRequest, "expected \"weight\" or \"draining\"") }
            guard runtime.upstreams.update(name: name, weight: weight.map { UInt32($0) }, draining: draining) else {
                return .error(.notFound, "no upstream named \(name)")
            }
            var answer: [(String, JSONValue)] = [("upstream", .string(name))]
            if let weight { answer.append(("weight", .int(weight))) }
            if let draining { answer.append(("draining", .bool(draining))) }
            return .json(.ok, .object(answer))
        } catch let error as ConfigError {
            return .error(.badRequest, error.description)
        } catch {
            return .error(.badRequest, "\(error)")
        }
    }
}
