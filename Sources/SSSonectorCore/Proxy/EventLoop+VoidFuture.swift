import NIOCore

extension EventLoop {
    /// Runs `body` now and returns the loop's cached succeeded future, or a failed one with the
    /// error it threw. For channel initializers on the per-connection path:
    /// `makeCompletedFuture(withResultOf:)` allocates a future (and looks up `Result`'s generic
    /// metadata when it is freed) for every connection.
    func makeVoidFuture(running body: () throws -> Void) -> EventLoopFuture<Void> {
        do {
            try body()
            return makeSucceededVoidFuture()
        } catch {
            return makeFailedFuture(error)
        }
    }
}
