import Foundation
import HummingbirdCore
import NIOCore

/// What `bunker serve` allows a client: how long a connection may sit idle or take to send a
/// request, and how many failed logins an address may have. README.md ("Limits") documents the
/// defaults; tests pass smaller ones.
public struct ServerLimits: Sendable {
    /// A connection is closed when nothing arrives on it for this long while no response is
    /// being written: between requests (keep-alive), before a request's head is complete, or
    /// between two pieces of its body.
    public var idleTimeout: TimeAmount = .seconds(30)
    /// A request's head and whole body must arrive within this time of its head; a client
    /// trickling its body slower than that is disconnected.
    public var requestTimeout: TimeAmount = .seconds(60)
    /// Failed logins an address may have within ``failedLoginWindow`` seconds before its logins
    /// are answered 429.
    public var maxFailedLogins = 10
    public var failedLoginWindow: TimeInterval = 300

    public init() {}

    /// The HTTP/1.1 channel with these timeouts.
    var http1: HTTP1Channel.Configuration {
        let requestTimeout = requestTimeout
        return HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestTimeoutHandler(timeout: requestTimeout)],
            idleTimeout: idleTimeout)
    }

    var loginPolicy: LoginThrottle.Policy {
        LoginThrottle.Policy(maxFailures: maxFailedLogins, window: failedLoginWindow)
    }
}

/// Closes a connection whose request has not arrived whole (head to end) within `timeout` of its
/// head. Hummingbird's idle timeout is reset by every piece of a body, so alone it would let a
/// client hold a connection open with a byte now and then.
final class RequestTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// NIO's HTTP request part, as Hummingbird's HTTP/1.1 channel reads it.
    typealias InboundIn = HTTP1Channel.Value.InboundElement
    typealias InboundOut = HTTP1Channel.Value.InboundElement

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            let channel = context.channel
            deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        case .body:
            break
        case .end:
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}

extension NIOAsyncChannel {
    /// What the channel reads (the generic parameter, under a name that can be used from
    /// outside: NIO's HTTP part types live in a module Bunker does not depend on directly).
    typealias InboundElement = Inbound
}
