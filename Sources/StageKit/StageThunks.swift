import Glibc
import StageABI

/// An instance as the C side holds it: the stage and its hooks, resolved once at create time
/// so a hook call is one indirect call, with no dynamic cast and no reference counting.
final class StageBox: @unchecked Sendable {  // fields are immutable; the stage is Sendable
    let stage: any Stage
    let open: (any OpenHook)?
    let filter: (any UpstreamFilterHook)?
    let select: (any UpstreamSelectHook)?
    let result: (any UpstreamResultHook)?
    let data: (any DataHook)?
    let close: (any CloseHook)?
    let tick: (any TickHook)?
    let stats: (any StatsHook)?
    let control: (any ControlHook)?
    let status: (any UpstreamStatusHook)?

    init(_ stage: any Stage) {
        self.stage = stage
        open = stage as? any OpenHook
        filter = stage as? any UpstreamFilterHook
        select = stage as? any UpstreamSelectHook
        result = stage as? any UpstreamResultHook
        data = stage as? any DataHook
        close = stage as? any CloseHook
        tick = stage as? any TickHook
        stats = stage as? any StatsHook
        control = stage as? any ControlHook
        status = stage as? any UpstreamStatusHook
    }

    @inline(__always)
    static func with<R>(_ inst: UnsafeMutableRawPointer?, _ body: (StageBox) -> R) -> R {
        Unmanaged<StageBox>.fromOpaque(inst!)._withUnsafeGuaranteedRef(body)
    }
}

/// The C functions every Swift stage type shares; `inst` tells them which instance.
enum StageThunks {
    static func descriptor(for stage: any Stage.Type) -> sss_stage_type {
        sss_stage_type(
            struct_size: UInt32(MemoryLayout<sss_stage_type>.size),
            flags: stage is any UpstreamSelectHook.Type ? SSS_TYPE_SELECTS_UPSTREAM : 0,
            name: UnsafePointer(strdup(stage.typeName)),
            description: UnsafePointer(strdup(stage.summary)),
            supported_events: StageModule.supportedEvents(of: stage),
            required_host_caps: 0,
            create: create, destroy: destroy, on_open: onOpen, on_filter_upstreams: onFilter,
            on_select_upstream: onSelect, on_upstream_result: onResult, on_data: onData,
            on_close: onClose, on_tick: onTick, on_stats: onStats, on_control: onControl,
            on_upstream_status: onStatus)
    }

    static let create: @convention(c) (UnsafePointer<sss_create_args>?, UnsafeMutablePointer<sss_create_result>?) -> sss_status = { args, out in
        guard let args, let out, let host = args.pointee.host else { return SSS_E_ARGUMENT }
        let a = args.pointee
        func fail(_ text: String) -> sss_status {
            StageModule.writeError(text, into: a.err_buf, capacity: a.err_cap)
            return SSS_E_CONFIG
        }
        let typeName = a.type_name.string
        guard let type = StageModule.type(named: typeName) else {
            StageModule.writeError("no stage type '\(typeName)' in this library", into: a.err_buf, capacity: a.err_cap)
            return SSS_E_UNSUPPORTED
        }
        let text = a.config_json.string
        let config: JSONValue
        do {
            config = text.isEmpty ? .object([]) : try JSONValue.parse(text)
        } catch {
            return fail("\(error)")
        }
        var upstreams: [(id: UInt64, name: String, address: String, weight: UInt32)] = []
        if let set = a.upstreams {
            for u in UpstreamList(raw: set) { upstreams.append((u.id, u.name, u.address, u.weight)) }
        }
        let setup = StageSetup(config: config, configJSON: text, pipelineName: a.pipeline_name.string,
                               instanceName: a.instance_name.string, threadCount: Int(a.thread_count),
                               upstreams: upstreams, host: StageHost(api: host))
        let stage: any Stage
        do {
            stage = try type.init(setup: setup)
        } catch {
            return fail("\(error)")
        }
        let supported = StageModule.supportedEvents(of: type)
        var events = supported & ~stage.disabledEvents.rawValue
        if events & SSS_EV_OPEN != 0 { events |= SSS_EV_CLOSE }  // state set at open is freed at close
        out.pointee.inst = Unmanaged.passRetained(StageBox(stage)).toOpaque()
        out.pointee.events = events
        out.pointee.tick_interval_ms = events & SSS_EV_TICK != 0 ? stage.tickIntervalMilliseconds : 0
        return SSS_OK
    }

    static let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { inst in
        guard let inst else { return }
        Unmanaged<StageBox>.fromOpaque(inst).release()
    }

    static let onOpen: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<sss_open_result>?) -> UInt32 = { inst, conn, slot, out in
        guard let conn, let out else { return SSS_ACCEPT }
        let verdict = StageBox.with(inst) { $0.open?.open(StageConnection(conn, slot: slot)) } ?? .accept
        return write(verdict, into: out)
    }

    /// Writes `verdict` into the host's open result; returns the ABI verdict.
    static func write(_ verdict: OpenVerdict, into out: UnsafeMutablePointer<sss_open_result>) -> UInt32 {
        switch verdict {
        case .accept:
            return SSS_ACCEPT
        case .acceptWithout(let events):
            out.pointee.events &= ~events.rawValue
            return SSS_ACCEPT
        case .reject(let reason, let text):
            out.pointee.reason_code = reason.rawValue
            StageModule.writeError(text, into: out.pointee.reason_buf, capacity: out.pointee.reason_cap)
            return SSS_REJECT
        case .rejectCustom(let code, let text):
            out.pointee.reason_code = code
            StageModule.writeError(text, into: out.pointee.reason_buf, capacity: out.pointee.reason_cap)
            return SSS_REJECT
        case .pending(let timeout, let fallback):
            let end = MemoryLayout<sss_open_result>.offset(of: \sss_open_result.fallback_reason_code)! + MemoryLayout<UInt32>.size
            // A host before 1.3 cannot wait: the fallback is the verdict.
            guard Int(out.pointee.struct_size) >= end else { return write(fallback.settled, into: out) }
            let code = write(fallback.settled, into: out)
            out.pointee.pending_timeout_ns = timeout
            out.pointee.fallback_verdict = code
            out.pointee.fallback_reason_code = out.pointee.reason_code
            out.pointee.reason_code = 0
            return SSS_PENDING
        }
    }

    static let onFilter: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_upstream_set>?, UnsafeMutablePointer<UInt8>?) -> Void = { inst, conn, slot, set, eligible in
        guard let conn, let set, let eligible else { return }
        StageBox.with(inst) { box in
            var e = EligibleUpstreams(flags: eligible, count: Int(set.pointee.count))
            box.filter?.filterUpstreams(StageConnection(conn, slot: slot), UpstreamList(raw: set), eligible: &e)
        }
    }

    static let onStatus: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_upstream_set>?, UInt64, UnsafeMutablePointer<UInt8>?) -> Void = { inst, set, now, status in
        guard let set, let status else { return }
        StageBox.with(inst) { box in
            var report = UpstreamStatusReport(flags: status, count: Int(set.pointee.count))
            box.status?.upstreamStatus(UpstreamList(raw: set), now: now, report: &report)
        }
    }

    static let onSelect: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_upstream_set>?, UnsafePointer<UInt8>?, UnsafeMutablePointer<UInt32>?) -> UInt32 = { inst, conn, slot, set, eligible, outIndex in
        guard let conn, let set, let eligible, let outIndex else { return SSS_SELECT_NO_OPINION }
        let e = EligibleUpstreams(flags: UnsafeMutablePointer(mutating: eligible), count: Int(set.pointee.count))
        let answer = StageBox.with(inst) {
            $0.select?.selectUpstream(StageConnection(conn, slot: slot), UpstreamList(raw: set), eligible: e)
        } ?? .noOpinion
        switch answer {
        case .noOpinion: return SSS_SELECT_NO_OPINION
        case .reject: return SSS_SELECT_REJECT
        case .chosen(let index):
            outIndex.pointee = UInt32(truncatingIfNeeded: index)
            return SSS_SELECT_CHOSEN
        }
    }

    static let onResult: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_upstream_result>?, UnsafeMutablePointer<sss_retry_decision>?) -> Void = { inst, conn, slot, result, decision in
        guard let conn, let result else { return }
        // Field by field: a host older than 1.2 passes a smaller struct (no flags).
        let r = result
        let hasFlags = r.pointee.struct_size >= UInt32(MemoryLayout<sss_upstream_result>.offset(of: \.flags)! + 4)
        let info = ConnectResult(
            outcome: ConnectOutcome(rawValue: r.pointee.outcome) ?? .other, upstreamIndex: Int(r.pointee.upstream_index),
            upstreamID: r.pointee.upstream_id, attempt: Int(r.pointee.attempt), osErrno: r.pointee.os_errno,
            latencyNanoseconds: r.pointee.latency_ns, remainingUntried: Int(r.pointee.remaining_untried),
            pooled: hasFlags && r.pointee.flags & SSS_RESULT_POOLED != 0)
        let advice = StageBox.with(inst) { $0.result?.upstreamResult(StageConnection(conn, slot: slot), info) } ?? .noOpinion
        guard let decision else { return }
        switch advice {
        case .noOpinion: break
        case .giveUp: decision.pointee.action = SSS_RETRY_GIVE_UP
        case .retry(let after):
            decision.pointee.action = SSS_RETRY_AFTER
            decision.pointee.retry_after_ns = after
        }
    }

    static let onData: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_data_args>?, UnsafeMutablePointer<sss_data_result>?) -> UInt32 = { inst, conn, slot, args, out in
        guard let conn, let args, let out else { return SSS_DATA_CONTINUE }
        let a = args.pointee
        let offer = DataOffer(
            direction: a.dir == SSS_DIR_DOWN ? .down : .up, offset: a.offset, available: a.avail,
            buffered: a.buffered, now: a.now_ns, endOfStream: a.flags & SSS_DATA_EOF != 0,
            isReoffer: a.flags & SSS_DATA_REOFFER != 0, rawSlices: a.slices, sliceCount: Int(a.slice_count))
        let decision = StageBox.with(inst) { $0.data?.data(StageConnection(conn, slot: slot), offer) } ?? .passAll
        switch decision {
        case .passAll:
            return SSS_DATA_CONTINUE
        case .pass(let count, let retry):
            out.pointee.granted = min(count, a.avail)
            out.pointee.retry_after_ns = retry
            return SSS_DATA_CONTINUE
        case .close(let reason):
            out.pointee.close_reason = reason.rawValue
            return SSS_DATA_CLOSE
        }
    }

    static let onClose: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutableRawPointer?, UnsafePointer<sss_close_info>?) -> Void = { inst, conn, slot, info in
        if let conn, let info {
            let i = info.pointee
            let summary = CloseSummary(
                cause: CloseCause(rawValue: i.cause) ?? .error,
                rejectedBy: i.rejected_by < 0 ? nil : Int(i.rejected_by),
                rejectedByName: i.rejected_by_name.string, reasonCode: i.reason_code,
                reasonText: i.reason_text.string,
                upstreamIndex: i.upstream_index < 0 ? nil : Int(i.upstream_index),
                upstreamID: i.upstream_id, attempts: Int(i.attempts), bytesUp: i.bytes_up,
                bytesDown: i.bytes_down, durationNanoseconds: i.duration_ns,
                connectLatencyNanoseconds: i.connect_latency_ns,
                closedWhilePending: closeFlags(info) & SSS_CLOSE_WHILE_PENDING != 0)
            var slotCopy = slot
            withUnsafeMutablePointer(to: &slotCopy) { slotPointer in
                StageBox.with(inst) { $0.close?.close(StageConnection(conn, slot: slotPointer), summary) }
            }
        }
        if let slot { Unmanaged<AnyObject>.fromOpaque(slot).release() }
    }

    /// `sss_close_info.flags`, or 0 from a host before 1.3.
    static func closeFlags(_ info: UnsafePointer<sss_close_info>) -> UInt32 {
        let end = MemoryLayout<sss_close_info>.offset(of: \sss_close_info.flags)! + MemoryLayout<UInt32>.size
        return Int(info.pointee.struct_size) >= end ? info.pointee.flags : 0
    }

    static let onTick: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { inst, now in
        StageBox.with(inst) { $0.tick?.tick(now: now) }
    }

    static let onStats: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_sink>?) -> sss_status = { inst, sink in
        guard let sink else { return SSS_E_ARGUMENT }
        guard let json = StageBox.with(inst, { $0.stats?.stats() }) else { return SSS_E_UNSUPPORTED }
        return write(json.jsonText, to: sink)
    }

    static let onControl: @convention(c) (UnsafeMutableRawPointer?, sss_str, UnsafePointer<sss_sink>?) -> sss_status = { inst, command, sink in
        guard let sink else { return SSS_E_ARGUMENT }
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(command.string)
        } catch {
            _ = write(JSONValue.object([("error", .string("\(error)"))]).jsonText, to: sink)
            return SSS_E_ARGUMENT
        }
        let answer = StageBox.with(inst) { $0.control?.control(parsed) } ?? .badCommand("no control hook")
        switch answer {
        case .ok(let json):
            return write(json.jsonText, to: sink)
        case .badCommand(let message):
            _ = write(JSONValue.object([("error", .string(message))]).jsonText, to: sink)
            return SSS_E_ARGUMENT
        }
    }

    private static func write(_ text: String, to sink: UnsafePointer<sss_sink>) -> sss_status {
        var text = text
        return text.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { sink.pointee.write(sink.pointee.ctx, $0.baseAddress, UInt64($0.count)) }
        }
    }
}
