/// What went wrong talking to Docker, with where and why.
public enum DockerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `DOCKER_HOST` / `--docker-host` could not be understood.
    case invalidHost(String, String)
    /// Nothing listens there: socket file missing, connection refused. Reported once, retried quietly.
    case unavailable(endpoint: String, reason: String)
    /// No (complete) answer within the timeout.
    case timeout(request: String, seconds: Double)
    /// The daemon answered with an error status.
    case httpStatus(request: String, status: Int, body: String)
    /// The reply could not be decoded.
    case malformedReply(String, String, snippet: String)
    /// Transport failure after connecting (connection reset, closed mid-reply, ...).
    case transport(request: String, reason: String)
    /// The `/events` stream ended (daemon stopped or restarted).
    case eventsStreamEnded

    public var description: String {
        switch self {
        case .invalidHost(let h, let why): return "invalid Docker host \"\(h)\": \(why)"
        case .unavailable(let e, let why): return "Docker not available at \(e): \(why)"
        case .timeout(let r, let s): return "Docker request \(r) timed out after \(s) s"
        case .httpStatus(let r, let st, let body): return "Docker request \(r) failed: HTTP \(st)\(body.isEmpty ? "" : ": \(body)")"
        case .malformedReply(let what, let why, let snippet): return "malformed Docker reply to \(what): \(why) (reply starts: \(snippet))"
        case .transport(let r, let why): return "Docker request \(r) failed: \(why)"
        case .eventsStreamEnded: return "Docker /events stream ended"
        }
    }

    /// Up to 120 printable characters of a reply, for messages.
    static func snippet(_ bytes: [UInt8]) -> String {
        var s = String(decoding: bytes.prefix(120), as: UTF8.self)
        s = String(s.map { $0.isNewline ? " " : $0 })
        return bytes.count > 120 ? s + "…" : s
    }
}
