import SluiceConfig
import SluiceCore
import SluiceSystem

/// TLS settings of a network flusher: `Authentication.TLS` (the incumbent's names).
public struct HTTPTLSOptions: Sendable, Equatable {
    /// PEM file of the CA certificates to trust (instead of the system's).
    public var caFile: String?
    /// PEM client certificate and key, for mutual TLS.
    public var certFile: String?
    public var keyFile: String?
    /// Accept any server certificate (tests only: it removes the protection TLS gives).
    public var insecureSkipVerify = false
    public init() {}
}

/// Credentials a network flusher sends with every request.
public enum HTTPAuth: Sendable, Equatable {
    case basic(username: String, password: String)
    case bearer(token: String)
}

/// What a network flusher's HTTP client is built with: timeouts, TLS, authentication, fixed
/// headers, body compression, connections. Read from a flusher's config by
/// `HTTPClientOptions.read(...)`; every string that carries a secret may use `${ENV}`.
public struct HTTPClientOptions: Sendable {
    public var connectTimeout: Duration = .seconds(10)
    /// The whole request, sending and waiting for the answer.
    public var requestTimeout: Duration = .seconds(60)
    public var tls: HTTPTLSOptions?
    public var auth: HTTPAuth?
    /// Sent with every request, after the flusher's own (`Content-Type`) so they may override them.
    public var headers: [(String, String)] = []
    public var compression: BodyCompression = .none
    /// Connections kept per host (at least the flusher's requests in flight).
    public var maxConnectionsPerHost = 8
    public init() {}

    /// The `Authentication` block's fields, shared by every network flusher's spec:
    /// `PlainText {Username, Password}`, `Bearer {Token}` (Sluice's), `TLS {CAFile, CertFile,
    /// KeyFile, InsecureSkipVerify}`.
    public static let authenticationField = FieldSpec(
        name: "Authentication",
        type: .object(fields: [
            FieldSpec(name: "PlainText", type: .object(fields: [
                FieldSpec(name: "Username", type: .string, doc: "Basic-auth user (`${ENV}` references allowed).", defaultValue: nil),
                FieldSpec(name: "Password", type: .string, doc: "Basic-auth password (`${ENV}` references allowed).", defaultValue: nil),
                FieldSpec(name: "Database", type: .string, doc: "flusher_clickhouse: the database of the tables.", defaultValue: nil),
            ]), doc: "Basic authentication.", defaultValue: nil),
            FieldSpec(name: "Bearer", type: .object(fields: [
                FieldSpec(name: "Token", type: .string, doc: "Sent as `Authorization: Bearer <Token>` (`${ENV}` references allowed).", defaultValue: nil),
            ]), doc: "Sluice: bearer-token authentication.", defaultValue: nil),
            FieldSpec(name: "TLS", type: .object(fields: [
                FieldSpec(name: "Enabled", type: .bool, doc: "Accepted for the incumbent's configs; TLS is used when the address is `https://`.", defaultValue: nil),
                FieldSpec(name: "CAFile", type: .string, doc: "PEM file of the CA certificates to trust.", defaultValue: nil),
                FieldSpec(name: "CertFile", type: .string, doc: "PEM client certificate (mutual TLS).", defaultValue: nil),
                FieldSpec(name: "KeyFile", type: .string, doc: "PEM private key of CertFile.", defaultValue: nil),
                FieldSpec(name: "InsecureSkipVerify", type: .bool, doc: "Do not verify the server's certificate (tests only).", defaultValue: "false"),
                FieldSpec(name: "MinVersion", type: .string, doc: "Accepted; TLS 1.2 is the minimum.", defaultValue: nil),
                FieldSpec(name: "MaxVersion", type: .string, doc: "Accepted; the newest version both sides speak is used.", defaultValue: nil),
            ]), doc: "TLS for `https://` addresses.", defaultValue: nil),
        ], allowUnknown: false),
        doc: "Credentials and TLS, as in the incumbent's flushers.", defaultValue: nil)

    /// The `Compression` field of flushers that compress bodies.
    public static func compressionField(default d: String) -> FieldSpec {
        FieldSpec(name: "Compression", type: .string, doc: "Request body compression: `gzip`, `zstd`, `snappy` or none (empty); sent with `Content-Encoding`.", defaultValue: d.isEmpty ? nil : d)
    }

    /// Reads `Authentication` (and the username / password it holds) from `c`.
    public mutating func readAuthentication(_ c: ConfigObject) throws(ConfigError) {
        guard let a = try c.object("Authentication") else { return }
        if let p = try a.object("PlainText") {
            let user = try p.expandedString("Username") ?? ""
            let password = try p.expandedString("Password") ?? ""
            if !user.isEmpty || !password.isEmpty { auth = .basic(username: user, password: password) }
        }
        if let b = try a.object("Bearer"), let token = try b.expandedString("Token") {
            guard auth == nil else { throw a.error(at: "Bearer", "set PlainText or Bearer, not both") }
            auth = .bearer(token: token)
        }
        if let t = try a.object("TLS") {
            var tls = HTTPTLSOptions()
            for (key, path) in [("CAFile", \HTTPTLSOptions.caFile), ("CertFile", \.certFile), ("KeyFile", \.keyFile)] {
                if let f = try t.string(key), !f.isEmpty {
                    guard Sys.exists(f) else { throw t.error(at: key, "no such file: \(f)") }
                    tls[keyPath: path] = f
                }
            }
            if (tls.certFile == nil) != (tls.keyFile == nil) { throw t.error(at: tls.certFile == nil ? "KeyFile" : "CertFile", "CertFile and KeyFile go together") }
            tls.insecureSkipVerify = try t.bool("InsecureSkipVerify") ?? false
            self.tls = tls
        }
    }

    /// Requests in flight: the flusher's `Concurrency` when the config sets it (≥ 1), else the
    /// global `send_request_concurrency`.
    public static func concurrency(_ c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Int {
        guard let n = try c.int("Concurrency") else { return max(1, globals.sendRequestConcurrency) }
        guard n >= 1 else { throw c.error(at: "Concurrency", "must be ≥ 1") }
        return n
    }

    /// Reads `Compression` from `c`.
    public mutating func readCompression(_ c: ConfigObject, key: String = "Compression") throws(ConfigError) {
        guard let v = try c.string(key) else { return }
        guard let comp = BodyCompression(configValue: v) else { throw c.error(at: key, "unknown compression \"\(v)\" (known: gzip, zstd, snappy, none)") }
        compression = comp
    }
}

/// A duration written the incumbent's Go way: a number of nanoseconds (`Timeout: 60000000000`;
/// Go reads numbers through float64, so `1e10` and `1.5e9` are nanoseconds too), or Sluice's
/// readable form (`"60s"`, `"500ms"`, `"2m"`). Negative, not finite, or past Int64 nanoseconds
/// (292 years) is a config error at the key, never a trap.
public enum GoDuration {
    public static func read(_ c: ConfigObject, _ key: String) throws(ConfigError) -> Duration? {
        guard c.has(key) else { return nil }
        if let n = try? c.int(key) {
            guard n >= 0 else { throw c.error(at: key, "must be ≥ 0") }
            return .nanoseconds(Int64(n))
        }
        guard let s = try c.string(key), let d = parse(s) else {
            throw c.error(at: key, "expected a duration ≥ 0: nanoseconds as a number, or text such as 500ms, 10s, 2m (at most 292 years)")
        }
        return d
    }

    /// `500ms`, `10s`, `2m`, `1h`, `250us`, `100ns`; a bare number is nanoseconds, as Go's.
    public static func parse(_ s: String) -> Duration? {
        let t = s.filter { $0 != " " }
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (u, scale) in units where t.hasSuffix(u) {
            guard let v = Double(t.dropLast(u.count)) else { return nil }
            return nanoseconds(v * scale * 1e9)
        }
        guard let v = Double(t) else { return nil }
        return nanoseconds(v)
    }

    /// `ns` as a Duration; nil when negative, not finite, or past Int64.
    static func nanoseconds(_ ns: Double) -> Duration? {
        guard ns.isFinite, ns >= 0, ns < 9.2e18 else { return nil }
        return .nanoseconds(Int64(ns))
    }
}
