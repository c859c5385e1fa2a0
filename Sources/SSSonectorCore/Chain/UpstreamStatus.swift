import StageABI

extension StageChain {
    /// Each upstream's `SSS_STATUS_*` bits as the stages report them (ABI 1.2,
    /// `on_upstream_status`), over a view with live `active` figures. The host's only source of
    /// upstream health: `/stats` shows it as `healthy`, the warm pool refills only upstreams
    /// no stage flags. Called per pool maintenance pass and per `/stats`, not per connection.
    public func upstreamStatus(of snapshot: UpstreamSnapshot, now: UInt64) -> [UInt8] {
        var status = [UInt8](repeating: 0, count: snapshot.count)
        let reporters = stages.filter(\.reportsUpstreamStatus)
        guard !reporters.isEmpty, snapshot.count > 0 else { return status }
        let items = UnsafeMutablePointer<sss_upstream>.allocate(capacity: snapshot.count)
        let set = UnsafeMutablePointer<sss_upstream_set>.allocate(capacity: 1)
        defer {
            items.deallocate()
            set.deallocate()
        }
        snapshot.fillView(items: items, set: set)
        status.withUnsafeMutableBufferPointer { out in
            for stage in reporters { stage.reportUpstreamStatus(UnsafePointer(set), now: now, into: out.baseAddress!) }
        }
        return status
    }
}
