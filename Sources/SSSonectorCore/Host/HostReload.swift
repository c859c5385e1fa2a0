import Dispatch
import NIOCore
import NIOSSL

private let reloadQueue = DispatchQueue(label: "sssonector.reload")

extension Host {
    /// `reloadNow()` on a queue of its own; the answer completes on `loop` (the admin API).
    func reload(completingOn loop: EventLoop) -> EventLoopFuture<[String]> {
        let promise = loop.makePromise(of: [String].self)
        reloadQueue.async { promise.succeed(self.reloadNow()) }
        return promise.futureResult
    }

    /// Reloads the pipeline files (SIGHUP, `POST /reload`): a valid new configuration takes
    /// new connections at once; open connections finish on the configuration they started
    /// with, whose stages are destroyed after the last one closes. An invalid configuration is
    /// refused whole and the running one stays. Returns the error lines (empty: reloaded).
    ///
    /// Blocks while it loads plugins, creates stages and binds new listeners: call it from a
    /// thread of its own (the signal thread), or through `reload(completingOn:)`.
    public func reloadNow() -> [String] {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        let set: PipelineSet
        switch PipelineSet.assemble(files: files, threadCount: threadCount, clock: clock, metrics: metrics,
                                    registry: registry, logger: logger, relayHub: relayHub, dataPath: dataPath) {
        case .success(let assembled): set = assembled
        case .failure(let errors):
            logger.error("reload refused; the running configuration stays", metadata: ["errors": "\(errors.lines.joined(separator: "; "))"])
            return errors.lines
        }
        lock.lock()
        defer { lock.unlock() }
        var errors: [String] = []
        reloadRelays(set.relays, errors: &errors)
        var kept: [PipelineListener] = []
        for runtime in set.runtimes {
            if let listener = listeners.first(where: {
                Self.sameListener($0.runtime.config.listen, runtime.config.listen) && $0.runtime.name == runtime.name
                    && $0.runtime.dataPath == runtime.dataPath
            }) {
                startPools(runtime)
                retire(listener.swap(to: runtime))
                scheduleTicks(runtime)
                kept.append(listener)
            } else {
                do {
                    kept.append(try listen(runtime))
                } catch {
                    errors += error.lines
                    runtime.destroyStages()
                }
            }
        }
        for listener in listeners where !kept.contains(where: { $0 === listener }) {
            _ = try? listener.close().wait()
            retire(listener.runtime)
        }
        listeners = kept
        logger.info("reloaded", metadata: ["pipelines": "\(kept.map(\.runtime.name).joined(separator: ","))"])
        return errors
    }

    /// A reload keeps a pipeline's listener when it listens the same way: the same address, or
    /// (a connector) the same relay, service, connections and TLS files.
    static func sameListener(_ a: ListenConfig, _ b: ListenConfig) -> Bool {
        a.reverse == b.reverse && a.address == b.address
    }

    /// Applies the relay files of a reload: new allow lists at once (connections no longer
    /// allowed are closed); a relay whose address or TLS changed is bound anew. With `lock` held.
    private func reloadRelays(_ next: [(config: RelayConfig, context: NIOSSLContext)], errors: inout [String]) {
        relayHub.configure(next.map(\.config))
        func unchanged(_ running: RelayListener, _ relay: RelayConfig) -> Bool {
            running.config.name == relay.name && running.config.address == relay.address && running.config.tls == relay.tls
        }
        let stale = relays.filter { running in !next.contains { unchanged(running, $0.config) } }
        for old in stale { _ = try? old.close().wait() }  // first: a new one may bind the same address
        relays.removeAll { running in stale.contains { $0 === running } }
        for relay in next where !relays.contains(where: { unchanged($0, relay.config) }) {
            do {
                _ = try bindRelay(relay)
            } catch {
                errors += error.lines
            }
        }
    }
}
