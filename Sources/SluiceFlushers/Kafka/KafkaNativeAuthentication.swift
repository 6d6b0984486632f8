import SluiceConfig
import SluiceSystem

/// `flusher_kafka_native`'s `Authentication`, with LoongCollector's names and rules
/// (core/common/auth/AuthConfig.cpp, core/plugin/flusher/kafka/KafkaProducer.cpp): `TLS`, `SASL`
/// with a `Mechanism`, `Kerberos` with `Enabled`. The Go flusher's names (`PlainText`,
/// `SaslMechanism`, `KeyTabPath`, ...) are `flusher_kafka_v2`'s.
extension KafkaSettings {
    public static let nativeAuthenticationField = FieldSpec(
        name: "Authentication",
        type: .object(fields: [
            FieldSpec(name: "TLS", type: .object(fields: [
                FieldSpec(name: "Enabled", type: .bool, doc: "Connect with TLS (`security.protocol` ssl, or sasl_ssl with SASL or Kerberos).", defaultValue: "false"),
                FieldSpec(name: "CAFile", type: .string, doc: "PEM file of the CA certificates to trust (`ssl.ca.location`).", defaultValue: nil),
                FieldSpec(name: "CertFile", type: .string, doc: "PEM client certificate (mutual TLS); with KeyFile.", defaultValue: nil),
                FieldSpec(name: "KeyFile", type: .string, doc: "PEM private key of CertFile.", defaultValue: nil),
                FieldSpec(name: "KeyPassword", type: .string, doc: "Password of KeyFile (`ssl.key.password`; `${ENV}` references allowed).", defaultValue: nil),
            ]), doc: "TLS.", defaultValue: nil),
            FieldSpec(name: "SASL", type: .object(fields: [
                FieldSpec(name: "Mechanism", type: .string, doc: "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (any case); set, it turns SASL on and needs Username and Password.", defaultValue: nil),
                FieldSpec(name: "Username", type: .string, doc: "SASL user (`${ENV}` references allowed).", defaultValue: nil),
                FieldSpec(name: "Password", type: .string, doc: "SASL password (`${ENV}` references allowed).", defaultValue: nil),
            ]), doc: "SASL with a user and password.", defaultValue: nil),
            FieldSpec(name: "Kerberos", type: .object(fields: [
                FieldSpec(name: "Enabled", type: .bool, doc: "Log in with Kerberos; needs Principal and Keytab. Not with SASL.", defaultValue: "false"),
                FieldSpec(name: "Mechanisms", type: .string, doc: "`sasl.mechanisms`.", defaultValue: "GSSAPI"),
                FieldSpec(name: "ServiceName", type: .string, doc: "`sasl.kerberos.service.name`.", defaultValue: "kafka"),
                FieldSpec(name: "Principal", type: .string, doc: "`sasl.kerberos.principal`.", defaultValue: nil),
                FieldSpec(name: "Keytab", type: .string, doc: "`sasl.kerberos.keytab`: must exist.", defaultValue: nil),
                FieldSpec(name: "KinitCmd", type: .string, doc: "`sasl.kerberos.kinit.cmd`.", defaultValue: nil),
            ]), doc: "SASL/GSSAPI (Kerberos), when Debian's librdkafka has it (it is built with Cyrus SASL).", defaultValue: nil),
        ]),
        doc: "Credentials and TLS, with LoongCollector's names for this flusher.", defaultValue: nil)

    /// Reads the native `Authentication` into security properties, with the incumbent's checks.
    public mutating func readNativeAuthentication(_ c: ConfigObject) throws(ConfigError) {
        guard let a = try c.object("Authentication") else { return }
        var tls = false
        if let t = try a.object("TLS"), try t.bool("Enabled") ?? false {
            tls = true
            try readTLSFiles(t)
            if let p = try t.expandedString("KeyPassword"), !p.isEmpty { set("ssl.key.password", p) }
        }
        var saslOn = false
        if let s = try a.object("SASL"), let m = try s.string("Mechanism"), !m.isEmpty {
            let mechanism = m.uppercased()
            try Self.checkSaslMechanism(mechanism, written: m, s, key: "Mechanism")
            let user = try s.expandedString("Username") ?? "", password = try s.expandedString("Password") ?? ""
            guard !user.isEmpty, !password.isEmpty else {
                throw s.error(at: user.isEmpty ? "Username" : "Password", "Username and Password are required when Mechanism is set")
            }
            set("sasl.mechanisms", mechanism)
            set("sasl.username", user)
            set("sasl.password", password)
            saslOn = true
        }
        if let k = try a.object("Kerberos"), try k.bool("Enabled") ?? false {
            guard !saslOn else { throw a.error(at: "Kerberos", "Kerberos and SASL cannot be enabled together") }
            guard let principal = try k.string("Principal"), !principal.isEmpty else { throw k.error(at: "Principal", "Principal is required when Enabled is true") }
            guard let keytab = try k.string("Keytab"), !keytab.isEmpty else { throw k.error(at: "Keytab", "Keytab is required when Enabled is true") }
            guard Sys.exists(keytab) else { throw k.error(at: "Keytab", "no such file: \(keytab)") }
            set("sasl.mechanisms", try k.string("Mechanisms").flatMap { $0.isEmpty ? nil : $0 } ?? "GSSAPI")
            set("sasl.kerberos.service.name", try k.string("ServiceName").flatMap { $0.isEmpty ? nil : $0 } ?? "kafka")
            set("sasl.kerberos.principal", principal)
            set("sasl.kerberos.keytab", keytab)
            if let cmd = try k.string("KinitCmd"), !cmd.isEmpty { set("sasl.kerberos.kinit.cmd", cmd) }
            saslOn = true
        }
        set("security.protocol", saslOn ? (tls ? "SASL_SSL" : "SASL_PLAINTEXT") : (tls ? "SSL" : "PLAINTEXT"))
    }
}
