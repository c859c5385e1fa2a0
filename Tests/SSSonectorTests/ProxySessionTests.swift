import Glibc
import NIOCore
import StageABI
import Testing
@testable import SSSonectorCore

/// The relay's logic without sockets: one `ProxySession` on an embedded event loop and a manual
/// clock, with fake sides and a scripted dialer (`SessionRig`). Assertions are on what each side
/// was asked to do, the pipeline's figures and the close cause the stage was told.
@Suite struct ProxySessionTests {
    @Test func bytesFromBeforeTheConnectGoOutFirstAndEachHalfCloseFollowsItsBytes() throws {
        let rig = try SessionRig(plans: [.wait])
        let upstream = FakeEndpoint()
        rig.session.start(peerIdentity: nil)
        #expect(rig.session.state == .connecting)
        // While connecting the client's reads are held back; what already came is kept.
        #expect(!rig.session.mayRead(.client))
        rig.session.readSuppressed(.client)
        rig.send("early ", from: .client)
        rig.dialer.completeWaiting(with: upstream)
        #expect(rig.session.state == .relaying)
        #expect(upstream.deliveredText == "early ")
        #expect(rig.client.resumedReads == 1)  // the held-back read is issued once connected
        rig.send("bytes", from: .client)
        rig.session.inputClosed(.client)
        #expect(upstream.deliveredText == "early bytes" && upstream.outputShut)
        #expect(!rig.client.outputShut && rig.session.state == .relaying)  // half-closed: the other way still runs
        rig.send("answer", from: .upstream)
        #expect(rig.client.deliveredText == "answer")
        rig.session.inputClosed(.upstream)
        #expect(rig.client.outputShut)
        // The first FIN leaves the connection open; the second is followed by the close, which
        // a transport may let send it.
        #expect(upstream.shutdownsBeforeClose == 0 && rig.client.shutdownsBeforeClose == 1)
        #expect(rig.session.state == .closed && rig.client.closed && upstream.closed)
        #expect(rig.closeRecord == "close clientEOF up=11 down=6 attempts=1 rejected_by= reason=0")
        #expect(rig.figure(.bytesUp) == 11 && rig.figure(.bytesDown) == 6 && rig.figure(.active) == 0)
    }

    @Test func aFINBeforeTheConnectIsForwardedAfterTheBytesOnceConnected() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(plans: [.wait])
        rig.session.start(peerIdentity: nil)
        rig.send("request", from: .client)
        rig.session.inputClosed(.client)
        rig.dialer.completeWaiting(with: upstream)
        #expect(upstream.deliveredText == "request" && upstream.outputShut)
        rig.send("reply", from: .upstream)
        rig.session.inactive(.upstream)  // the upstream's orderly close after its reply
        #expect(rig.client.deliveredText == "reply" && rig.client.outputShut)
        #expect(rig.closeRecord == "close clientEOF up=7 down=5 attempts=1 rejected_by= reason=0")
    }

    @Test func anUpstreamsFINThatCameWithItsEarlyBytesIsForwardedOnceConnected() throws {
        // A tunnel stream reads the connector's answer and what follows it before the attempt
        // completes: a greeting and its FIN can be there before the session relays.
        let upstream = FakeEndpoint()
        let rig = try SessionRig(plans: [.wait])
        rig.session.start(peerIdentity: nil)
        rig.session.read(.upstream, ByteBuffer(string: "hello"))
        rig.session.inputClosed(.upstream)
        rig.dialer.completeWaiting(with: upstream)
        #expect(rig.client.deliveredText == "hello" && rig.client.outputShut)
        rig.send("still talking", from: .client)
        rig.session.inputClosed(.client)
        #expect(upstream.deliveredText == "still talking" && upstream.outputShut)
        #expect(rig.client.shutdownsBeforeClose == 0 && upstream.shutdownsBeforeClose == 1)
        #expect(rig.closeRecord == "close upstreamEOF up=13 down=5 attempts=1 rejected_by= reason=0")
    }

    @Test func theConnectionEndsOnlyWhenBothHalfClosesAreDelivered() throws {
        let upstream = FakeEndpoint()
        upstream.shutdownCompletesAtOnce = false
        let rig = try SessionRig(plans: [.connect(upstream)])
        rig.session.start(peerIdentity: nil)
        rig.send("up", from: .client)
        rig.session.inputClosed(.client)  // upstream's shutdown is held: its FIN is not out yet
        rig.send("down", from: .upstream)
        rig.session.inputClosed(.upstream)
        #expect(rig.client.outputShut)
        #expect(rig.session.state == .relaying)  // one half-close still in flight
        #expect(rig.client.shutdownsBeforeClose == 0)  // so the client's FIN is not the last step
        upstream.completeShutdown()
        #expect(rig.session.state == .closed)
        #expect(rig.closeRecord == "close clientEOF up=2 down=4 attempts=1 rejected_by= reason=0")
    }

    @Test func aShutdownThatFailsEndsTheConnectionAsAnErrorOfThatSide() throws {
        let upstream = FakeEndpoint()
        upstream.shutdownCompletesAtOnce = false
        let rig = try SessionRig(plans: [.connect(upstream)])
        rig.session.start(peerIdentity: nil)
        rig.session.inputClosed(.client)
        upstream.completeShutdown(IOError(errnoCode: ECONNRESET, reason: "write"))
        #expect(rig.closeRecord == "close upstreamReset up=0 down=0 attempts=1 rejected_by= reason=0")
    }

    @Test func anUnwritableSinkStopsTheSourceAndAWritableOneResumesIt() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(plans: [.connect(upstream, writable: false)])
        rig.session.start(peerIdentity: nil)
        #expect(!rig.session.mayRead(.client))  // handed over unwritable
        #expect(rig.session.mayRead(.upstream))
        rig.session.readSuppressed(.client)
        rig.session.writabilityChanged(.upstream, writable: true)
        #expect(rig.client.resumedReads == 1)
        rig.session.writabilityChanged(.client, writable: false)
        #expect(!rig.session.mayRead(.upstream) && rig.session.mayRead(.client))
        rig.session.readSuppressed(.upstream)
        rig.session.writabilityChanged(.client, writable: true)
        #expect(upstream.resumedReads == 1 && rig.client.resumedReads == 1)
    }

    @Test func heldBytesAboveTheBufferLimitStopReadingUntilTheStageReleasesThem() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(connection: #"{"buffer_limit": "4KiB"}"#,
                                 stages: [("scriptstage", #"{"grant": "1000", "retry_after": "10ms", "directions": "up"}"#)],
                                 plans: [.connect(upstream)])
        rig.session.start(peerIdentity: nil)
        rig.send(String(repeating: "x", count: 6000), from: .client)
        #expect(upstream.delivered.count == 1000)  // the stage granted 1,000 bytes
        #expect(!rig.session.mayRead(.client))  // 5,000 held: above the 4 KiB limit
        rig.session.readSuppressed(.client)
        rig.advance(milliseconds: 9)
        #expect(upstream.delivered.count == 1000)
        rig.advance(milliseconds: 1)  // the re-offer: 1,000 more, 4,000 held, below the limit
        #expect(upstream.delivered.count == 2000)
        #expect(rig.client.resumedReads == 1)
        for _ in 0..<4 { rig.advance(milliseconds: 10) }
        #expect(upstream.delivered.count == 6000)
        #expect(rig.events().contains("data up offset=0 avail=6000 eof=false reoffer=false"))
        #expect(rig.events().contains("data up offset=5000 avail=1000 eof=false reoffer=true"))
        #expect(rig.client.delivered.isEmpty)
    }

    @Test func aRefusedConnectMovesToTheNextUpstreamAtOnce() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(upstreams: ["a", "b"], plans: [.refuse, .connect(upstream)])
        rig.session.start(peerIdentity: nil)
        #expect(rig.session.state == .relaying)
        #expect(Set(rig.dialer.dialed) == ["a", "b"])
        #expect(rig.figure(.failedConnects) == 1 && rig.figure(.connects) == 1)
        rig.session.failed(.client, IOError(errnoCode: ECONNRESET, reason: "read"))
        #expect(rig.closeRecord == "close clientReset up=0 down=0 attempts=2 rejected_by= reason=0")
    }

    @Test func retriesWaitTheRetryIntervalOnTheLoopsClock() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(connection: #"{"retry_attempts": 2, "retry_interval": "100ms"}"#,
                                 plans: [.refuse, .refuse, .connect(upstream)])
        rig.session.start(peerIdentity: nil)
        #expect(rig.dialer.dialed == ["a"])
        rig.advance(milliseconds: 99)
        #expect(rig.dialer.dialed.count == 1)
        rig.advance(milliseconds: 1)
        #expect(rig.dialer.dialed.count == 2)
        rig.advance(milliseconds: 100)
        #expect(rig.dialer.dialed.count == 3 && rig.session.state == .relaying)
        #expect(rig.figure(.failedConnects) == 2)
    }

    @Test func theLastFailedRetryClosesWithConnectFailed() throws {
        let rig = try SessionRig(connection: #"{"retry_attempts": 1, "retry_interval": "50ms"}"#, plans: [.refuse, .refuse])
        rig.session.start(peerIdentity: nil)
        rig.advance(milliseconds: 50)
        #expect(rig.dialer.dialed == ["a", "a"])
        #expect(rig.client.closed)
        #expect(rig.closeRecord == "close connectFailed up=0 down=0 attempts=2 rejected_by= reason=\(SSS_REASON_CONNECT_FAILED)")
    }

    @Test func aClientThatLeavesDuringTheConnectCancelsTheAttempt() throws {
        let rig = try SessionRig(plans: [.wait])
        rig.session.start(peerIdentity: nil)
        rig.session.inactive(.client)  // no FIN first: a reset
        #expect(rig.dialer.cancelled == 1)
        #expect(rig.closeRecord == "close clientReset up=0 down=0 attempts=1 rejected_by= reason=0")
        rig.dialer.completeWaiting(with: FakeEndpoint())  // a late completion is gone with the attempt
        #expect(rig.figure(.connects) == 0)
    }

    @Test func theIdleTimeoutCountsFromTheLastByteEitherWay() throws {
        let rig = try SessionRig(connection: #"{"idle_timeout": "1s"}"#, plans: [.connect(FakeEndpoint())])
        rig.session.start(peerIdentity: nil)
        rig.advance(milliseconds: 600)
        rig.send("ping", from: .upstream)
        rig.advance(milliseconds: 900)  // 1.5 s after the start, 0.9 s after the last byte
        #expect(rig.session.state == .relaying)
        rig.advance(milliseconds: 100)
        #expect(rig.session.state == .closed)
        #expect(rig.closeRecord == "close idleTimeout up=0 down=4 attempts=1 rejected_by= reason=0")
    }

    @Test func aPooledConnectionsGreetingIsTheFirstByteDown() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(plans: [.connect(upstream, greeting: "220 ready\r\n", pooled: true)])
        rig.session.start(peerIdentity: nil)
        rig.send("+more", from: .upstream)
        #expect(rig.client.deliveredText == "220 ready\r\n+more")
        #expect(rig.events().contains("result connected attempt=1 upstream=0 untried=0 pooled"))
    }

    @Test func anOrderlyCloseWithoutAFINIsAResetOfThatSide() throws {
        let upstream = FakeEndpoint()
        let rig = try SessionRig(plans: [.connect(upstream)])
        rig.session.start(peerIdentity: nil)
        rig.send("partial", from: .client)
        rig.session.inactive(.upstream)
        #expect(rig.closeRecord == "close upstreamReset up=7 down=0 attempts=1 rejected_by= reason=0")
        #expect(rig.client.closed)
    }

    @Test func aRejectingStageClosesBeforeAnyConnect() throws {
        let rig = try SessionRig(stages: [("scriptstage", #"{"reject": "policy"}"#)], plans: [])
        rig.session.start(peerIdentity: nil)
        #expect(rig.dialer.dialed.isEmpty && rig.client.closed)
        #expect(rig.runtime.counters.rejectedByReason["policy"] == 1)
    }
}
