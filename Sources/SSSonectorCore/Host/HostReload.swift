import Dispatch
import NIOCore

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
                                    registry: registry, logger: logger) {
        case .success(let assembled): set = assembled
        case .failure(let errors):
            logger.error("reload refused; the running configuration stays", metadata: ["errors": "\(errors.lines.joined(separator: "; "))"])
            return errors.lines
        }
        lock.lock()
        defer { lock.unlock() }
        var errors: [String] = []
        var kept: [PipelineListener] = []
        for runtime in set.runtimes {
            if let listener = listeners.first(where: { $0.runtime.name == runtime.name && $0.runtime.config.listen.address == runtime.config.listen.address }) {
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
}
