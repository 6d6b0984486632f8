import CRdKafka
import SluiceConfig
import SluiceSystem

/// How messages are spread over a topic's partitions (the incumbent's `PartitionerType`).
public enum KafkaPartitioner: String, Sendable, Equatable {
    /// A random partition (librdkafka `random`; keyless messages keep theirs for 10 ms, librdkafka's
    /// sticky partitioning, which makes larger batches).
    case random
    /// One partition after the other (a partitioner callback: librdkafka has none).
    case roundrobin
    /// By the message key: FNV-1a, as Sarama's hash partitioner the incumbent uses (librdkafka `fnv1a`).
    case hash
    /// By the message key with murmur2, random without one (flusher_kafka_native's `hash`, the Java client's).
    case murmur2
}

/// What a librdkafka producer is created with: the configuration properties in order, the
/// partitioner, and whether it is idempotent. Built by the flushers' pure `options(from:)`.
public struct KafkaSettings: Sendable {
    /// librdkafka properties (`bootstrap.servers`, `acks`, ...), set in this order.
    public var properties: [(String, String)] = []
    public var partitioner: KafkaPartitioner = .random
    /// How long `stop` waits for messages still queued to be delivered.
    public var flushTimeout: Duration = .seconds(10)

    public init() {}

    public mutating func set(_ key: String, _ value: String) {
        if let i = properties.firstIndex(where: { $0.0 == key }) { properties[i].1 = value } else { properties.append((key, value)) }
    }

    public func value(_ key: String) -> String? { properties.last { $0.0 == key }?.1 }

    public var idempotent: Bool { value("enable.idempotence") == "true" }

    /// The settings every Sluice producer starts from: the idempotent producer (acks=all, at most
    /// 5 requests in flight per connection, retried by librdkafka without duplicates or
    /// reordering within this producer's session), and queues bounded so that a full queue
    /// becomes backpressure rather than memory.
    public static func base(brokers: [String], clientID: String) -> KafkaSettings {
        var s = KafkaSettings()
        s.set("bootstrap.servers", brokers.joined(separator: ","))
        s.set("client.id", clientID)
        s.set("enable.idempotence", "true")
        s.set("acks", "all")
        s.set("queue.buffering.max.messages", "500000")
        s.set("queue.buffering.max.kbytes", "131072")
        return s
    }

    /// Sets `acks` from the incumbent's `RequiredAcks` (-1 all, 1 leader, 0 none). Anything but -1
    /// turns idempotence off, which librdkafka requires.
    public mutating func setRequiredAcks(_ n: Int, _ c: ConfigObject, key: String) throws(ConfigError) {
        switch n {
        case -1: set("acks", "all")
        case 0, 1:
            set("acks", String(n))
            set("enable.idempotence", "false")
        default: throw c.error(at: key, "must be -1 (all in-sync replicas), 1 (the leader) or 0 (no acknowledgement)")
        }
    }

    /// Sets `compression.codec` from `none`, `gzip`, `snappy`, `lz4`, `zstd` (any case).
    public mutating func setCompression(_ v: String, _ c: ConfigObject, key: String) throws(ConfigError) {
        let codec = v.lowercased()
        guard ["none", "gzip", "snappy", "lz4", "zstd", ""].contains(codec) else {
            throw c.error(at: key, "unknown compression \"\(v)\" (known: none, gzip, snappy, lz4, zstd)")
        }
        set("compression.codec", codec.isEmpty ? "none" : codec)
    }

    /// Milliseconds of a duration, at least `minimum`.
    public static func millis(_ d: Duration, minimum: Int64 = 1) -> String {
        let c = d.components
        return String(max(minimum, c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000))
    }

    /// The `Authentication` block of `flusher_kafka_v2` (the incumbent's Go names;
    /// `flusher_kafka_native` has its own, `nativeAuthenticationField`).
    public static let authenticationField = FieldSpec(
        name: "Authentication",
        type: .object(fields: [
            FieldSpec(name: "PlainText", type: .object(fields: [
                FieldSpec(name: "Username", type: .string, doc: "SASL/PLAIN user (`${ENV}` references allowed).", defaultValue: nil),
                FieldSpec(name: "Password", type: .string, doc: "SASL/PLAIN password; required with Username.", defaultValue: nil),
            ]), doc: "SASL/PLAIN (`sasl.mechanisms=PLAIN`).", defaultValue: nil),
            FieldSpec(name: "SASL", type: .object(fields: [
                FieldSpec(name: "SaslMechanism", type: .string, doc: "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (any case).", defaultValue: "PLAIN"),
                FieldSpec(name: "Username", type: .string, doc: "SASL user (`${ENV}` references allowed).", defaultValue: nil),
                FieldSpec(name: "Password", type: .string, doc: "SASL password (`${ENV}` references allowed).", defaultValue: nil),
            ]), doc: "SASL with a mechanism.", defaultValue: nil),
            FieldSpec(name: "TLS", type: .object(fields: [
                FieldSpec(name: "Enabled", type: .bool, doc: "Connect with TLS (`security.protocol` SSL, or SASL_SSL with SASL).", defaultValue: "false"),
                FieldSpec(name: "CAFile", type: .string, doc: "PEM file of the CA certificates to trust (`ssl.ca.location`).", defaultValue: nil),
                FieldSpec(name: "CertFile", type: .string, doc: "PEM client certificate (mutual TLS).", defaultValue: nil),
                FieldSpec(name: "KeyFile", type: .string, doc: "PEM private key of CertFile.", defaultValue: nil),
                FieldSpec(name: "InsecureSkipVerify", type: .bool, doc: "Do not verify the broker's certificate (tests only).", defaultValue: "false"),
                FieldSpec(name: "MinVersion", type: .string, doc: "Accepted; OpenSSL's minimum (TLS 1.2 on Debian 12) applies.", defaultValue: nil),
                FieldSpec(name: "MaxVersion", type: .string, doc: "Accepted; the newest version both sides speak is used.", defaultValue: nil),
            ]), doc: "TLS.", defaultValue: nil),
            FieldSpec(name: "Kerberos", type: .object(fields: [
                FieldSpec(name: "ServiceName", type: .string, doc: "`sasl.kerberos.service.name`.", defaultValue: "kafka"),
                FieldSpec(name: "Realm", type: .string, doc: "Appended to Username as `Username@Realm` for the principal.", defaultValue: nil),
                FieldSpec(name: "UseKeyTab", type: .bool, doc: "Must be true: librdkafka logs in with a keytab (`kinit -k`), not a password.", defaultValue: "true"),
                FieldSpec(name: "Username", type: .string, doc: "Principal name.", defaultValue: nil),
                FieldSpec(name: "Password", type: .string, doc: "Not supported by librdkafka (use a keytab).", defaultValue: nil),
                FieldSpec(name: "ConfigPath", type: .string, doc: "krb5.conf: set `KRB5_CONFIG` in Sluice's environment instead.", defaultValue: nil,
                          status: .acceptedNotYetEffective(reason: "librdkafka reads krb5.conf from KRB5_CONFIG; set it in the environment")),
                FieldSpec(name: "KeyTabPath", type: .string, doc: "`sasl.kerberos.keytab`.", defaultValue: nil),
            ]), doc: "SASL/GSSAPI (Kerberos), when Debian's librdkafka has it (it is built with Cyrus SASL).", defaultValue: nil),
        ]),
        doc: "Credentials and TLS, as in the incumbent.", defaultValue: nil)

    /// Reads `Authentication` into SASL / TLS properties.
    public mutating func readAuthentication(_ c: ConfigObject) throws(ConfigError) {
        guard let a = try c.object("Authentication") else { return }
        var sasl = false
        var tls = false
        if let p = try a.object("PlainText") {
            let user = try p.expandedString("Username") ?? ""
            let password = try p.expandedString("Password") ?? ""
            if !user.isEmpty {
                guard !password.isEmpty else { throw p.error(at: "Password", "a password is required with Username") }
                set("sasl.mechanisms", "PLAIN")
                set("sasl.username", user)
                set("sasl.password", password)
                sasl = true
            }
        }
        if let s = try a.object("SASL") {
            let user = try s.expandedString("Username") ?? ""
            if !user.isEmpty {
                guard !sasl else { throw a.error(at: "SASL", "set PlainText or SASL, not both") }
                let mechanism = (try s.string("SaslMechanism") ?? "PLAIN").uppercased()
                try Self.checkSaslMechanism(mechanism, written: mechanism, s, key: "SaslMechanism")
                set("sasl.mechanisms", mechanism)
                set("sasl.username", user)
                set("sasl.password", try s.expandedString("Password") ?? "")
                sasl = true
            }
        }
        if let k = try a.object("Kerberos") {
            let user = try k.expandedString("Username") ?? ""
            if !user.isEmpty || k.has("KeyTabPath") {
                guard !sasl else { throw a.error(at: "Kerberos", "set one SASL method: PlainText, SASL or Kerberos") }
                guard try k.bool("UseKeyTab") ?? true else { throw k.error(at: "UseKeyTab", "librdkafka logs in to Kerberos with a keytab only: set UseKeyTab and KeyTabPath") }
                set("sasl.mechanisms", "GSSAPI")
                set("sasl.kerberos.service.name", try k.string("ServiceName") ?? "kafka")
                let realm = try k.string("Realm") ?? ""
                if !user.isEmpty { set("sasl.kerberos.principal", realm.isEmpty ? user : user + "@" + realm) }
                if let tab = try k.string("KeyTabPath"), !tab.isEmpty {
                    guard Sys.exists(tab) else { throw k.error(at: "KeyTabPath", "no such file: \(tab)") }
                    set("sasl.kerberos.keytab", tab)
                }
                sasl = true
            }
        }
        if let t = try a.object("TLS"), try t.bool("Enabled") ?? false {
            tls = true
            try readTLSFiles(t)
            if try t.bool("InsecureSkipVerify") ?? false { set("enable.ssl.certificate.verification", "false") }
        }
        set("security.protocol", sasl ? (tls ? "SASL_SSL" : "SASL_PLAINTEXT") : (tls ? "SSL" : "PLAINTEXT"))
    }

    /// The SASL mechanisms librdkafka takes with a user and password (`mechanism` upper-cased);
    /// any other is an error at `key` that shows it as `written`.
    static func checkSaslMechanism(_ mechanism: String, written: String, _ s: ConfigObject, key: String) throws(ConfigError) {
        guard ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(mechanism) else {
            throw s.error(at: key, "unknown mechanism \"\(written)\" (known: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
        }
    }

    /// `CAFile`, `CertFile` and `KeyFile` of an enabled `TLS` block: each must exist; a
    /// certificate and its key go together.
    mutating func readTLSFiles(_ t: ConfigObject) throws(ConfigError) {
        for (key, property) in [("CAFile", "ssl.ca.location"), ("CertFile", "ssl.certificate.location"), ("KeyFile", "ssl.key.location")] {
            if let f = try t.string(key), !f.isEmpty {
                guard Sys.exists(f) else { throw t.error(at: key, "no such file: \(f)") }
                set(property, f)
            }
        }
        if (value("ssl.certificate.location") == nil) != (value("ssl.key.location") == nil) {
            throw t.error(at: value("ssl.certificate.location") == nil ? "KeyFile" : "CertFile", "CertFile and KeyFile go together")
        }
    }

    /// Hands every property to librdkafka's configuration parser without creating a producer (no
    /// threads, no sockets): a value or a feature this build of librdkafka does not have is an
    /// error at `key`.
    public func check(_ c: ConfigObject, key: String? = nil) throws(ConfigError) {
        guard let conf = rd_kafka_conf_new() else { return }
        defer { rd_kafka_conf_destroy(conf) }
        var err = [CChar](repeating: 0, count: 512)
        for (k, v) in properties where rd_kafka_conf_set(conf, k, v, &err, err.count) != RD_KAFKA_CONF_OK {
            let why = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw c.error(at: key, "librdkafka refuses \(k)=\(k.hasPrefix("sasl.password") ? "***" : v): \(why)")
        }
    }

    /// librdkafka's version, e.g. `2.0.2`.
    public static var libraryVersion: String { String(cString: rd_kafka_version_str()) }
}
