import NIOCore
import SluiceCore

/// One HTTP request of a network flusher: where, with which headers, its (compressed) body and the
/// events it carries. Built once; a retry sends the same bytes.
public struct HTTPPost: Sendable {
    public var url: String
    public var headers: [(String, String)]
    public var body: ByteBuffer
    public var events: Int
    public init(url: String, headers: [(String, String)], body: ByteBuffer, events: Int) {
        self.url = url
        self.headers = headers
        self.body = body
        self.events = events
    }
}

/// The request of flushers that send one or more independent posts per request (flusher_http: one
/// per event with `custom_single`, one per batch with `jsonline`). A retry sends only the posts
/// that were not taken.
public struct HTTPPostsRequest: FlushRequest {
    public var posts: [HTTPPost]
    /// Events with nothing to write (a parsed event whose fields were all removed) in no post:
    /// counted with the request, so they are counted sent once it is delivered, as the flushers
    /// that write a batch whole count them (a retried part carries none).
    public var emptyEvents: Int
    public init(posts: [HTTPPost], emptyEvents: Int = 0) {
        self.posts = posts
        self.emptyEvents = emptyEvents
    }
    public var byteCount: Int { posts.reduce(0) { $0 + $1.body.readableBytes } }
    public var eventCount: Int { posts.reduce(0) { $0 + $1.events } + emptyEvents }

    /// Sends every post once, `parallel` at a time, and combines their outcomes: the posts to
    /// retry go into the retried request, refused ones are counted as rejected.
    public func send(with sender: HTTPSender, policy: HTTPStatusPolicy, parallel: Int) async -> SendOutcome<HTTPPostsRequest> {
        if posts.count == 1 {
            let outcome: SendOutcome<HTTPPostsRequest> = policy.outcome(await sender.send(url: posts[0].url, headers: posts[0].headers, body: posts[0].body))
            return outcome
        }
        var results = [SendOutcome<HTTPPostsRequest>?](repeating: nil, count: posts.count)
        await withTaskGroup(of: (Int, SendOutcome<HTTPPostsRequest>).self) { group in
            var next = 0
            func add() {
                let i = next
                let p = posts[i]
                group.addTask { (i, policy.outcome(await sender.send(url: p.url, headers: p.headers, body: p.body))) }
                next += 1
            }
            while next < min(parallel, posts.count) { add() }
            for await (i, o) in group {
                results[i] = o
                if next < posts.count { add() }
            }
        }
        var retry: [HTTPPost] = []
        var rejected = 0
        var delivered = 0
        var asked: Duration?
        var reason = ""
        for (i, r) in results.enumerated() {
            switch r {
            case .delivered?: delivered += 1
            case .retry(let after, let why)?:
                retry.append(posts[i])
                if let a = after { asked = max(asked ?? .zero, a) }
                reason = why
            case .rejected(let why)?:
                rejected += posts[i].events
                if reason.isEmpty { reason = why }
            default:
                retry.append(posts[i])
            }
        }
        if retry.isEmpty && rejected == 0 { return .delivered }
        if delivered == 0 && rejected == 0 { return .retry(after: asked, reason: reason) }
        if delivered == 0 && retry.isEmpty { return .rejected(reason: reason) }
        return .partial(retry: HTTPPostsRequest(posts: retry), rejected: rejected, reason: reason)
    }
}

/// `?k=v&...` appended to a URL, percent-encoded.
public enum URLQuery {
    public static func append(_ pairs: [(String, String)], to url: String) -> String {
        guard !pairs.isEmpty else { return url }
        var s = url
        s += url.contains("?") ? "&" : "?"
        s += pairs.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
        return s
    }

    /// RFC 3986 unreserved characters stay, everything else is %XX.
    public static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
