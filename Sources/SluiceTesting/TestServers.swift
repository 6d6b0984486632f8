import Foundation
import Glibc
import SluiceSystem

/// Real servers the tests run against, started on loopback in a temp dir and stopped by the test:
/// ClickHouse (Debian's clickhouse-server), an OpenSearch-compatible bulk server (PyPI's
/// osmem-server, unpacked by scripts/install-deps.sh under /var/tmp/sluice-servers), and
/// Prometheus (Debian's) scraping Sluice's `/metrics`.
public final class TestServer: @unchecked Sendable {
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
    private(set) var process: SluiceProcess
    let dir: TempDir
    /// How to start it again (`restart`), and the path that answers once it is up.
    private var command: (arguments: [String], binary: String, readyPath: String)?
    /// ClickHouse's native port (for clickhouse-client).
    public let tcpPort: Int

    init(port: Int, tcpPort: Int = 0, process: SluiceProcess, dir: TempDir) {
        self.port = port
        self.tcpPort = tcpPort
        self.process = process
        self.dir = dir
    }

    public func stop() {
        process.signal(SIGKILL)
        _ = process.wait(timeout: 10)
        dir.remove()
    }

    /// Kills the server (SIGKILL), keeping its data: the backend is down until `restart`.
    public func kill() {
        process.signal(SIGKILL)
        _ = process.wait(timeout: 10)
    }

    /// Starts the server again on the same ports and data, and waits until it answers.
    public func restart(timeout: Double = 60) throws {
        guard let c = command else { throw SluiceProcess.SpawnError(message: "this server cannot be restarted") }
        process = try SluiceProcess(arguments: c.arguments, workDir: dir.path, binary: c.binary)
        guard Self.waitForHTTP(port, path: c.readyPath, timeout: timeout) else {
            throw SluiceProcess.SpawnError(message: "\(c.binary) did not come back: \(process.stderr.suffix(2000))")
        }
    }

    /// A free TCP port on 127.0.0.1.
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    static func waitForHTTP(_ port: Int, path: String, timeout: Double) -> Bool {
        waitUntil(timeout: timeout, pollMs: 100) { shell("curl -sf -o /dev/null 'http://127.0.0.1:\(port)\(path)'") == 0 }
    }

    /// ClickHouse with its own data dir and ports; nil when clickhouse-server is not installed.
    public static func clickhouse() throws -> TestServer? {
        let bin = "/usr/sbin/clickhouse-server"
        guard Sys.exists(bin), let base = try? Sys.readFile("/etc/clickhouse-server/config.xml").get() else { return nil }
        let dir = TempDir("sluice-clickhouse")
        for d in ["log", "data", "conf", "tmp", "user_files", "format_schemas"] { _ = dir.sub(d) }
        let http = freePort(), tcp = freePort(), inter = freePort()
        var xml = String(decoding: base, as: UTF8.self)
        for (a, b) in [("/var/log/clickhouse-server", dir.path + "/log"), ("/var/lib/clickhouse/tmp/", dir.path + "/tmp/"),
                       ("/var/lib/clickhouse/user_files/", dir.path + "/user_files/"), ("/var/lib/clickhouse/format_schemas/", dir.path + "/format_schemas/"),
                       ("/var/lib/clickhouse", dir.path + "/data"),
                       ("<http_port>8123</http_port>", "<http_port>\(http)</http_port>"), ("<tcp_port>9000</tcp_port>", "<tcp_port>\(tcp)</tcp_port>"),
                       ("<interserver_http_port>9009</interserver_http_port>", "<interserver_http_port>\(inter)</interserver_http_port>"),
                       ("<https_port>8443</https_port>", ""), ("<tcp_port_secure>9440</tcp_port_secure>", "")] {
            xml = xml.replacingOccurrences(of: a, with: b)
        }
        writeFile(dir.path + "/conf/config.xml", xml)
        _ = shell("cp /etc/clickhouse-server/users.xml '\(dir.path)/conf/'")
        let args = ["--config-file=\(dir.path)/conf/config.xml"]
        let p = try SluiceProcess(arguments: args, workDir: dir.path, binary: bin)
        let s = TestServer(port: http, tcpPort: tcp, process: p, dir: dir)
        s.command = (args, bin, "/ping")
        guard waitForHTTP(http, path: "/ping", timeout: 60) else {
            let log = String(decoding: readFileBytes(dir.path + "/log/clickhouse-server.err.log").suffix(2000), as: UTF8.self)
            s.stop()
            throw SluiceProcess.SpawnError(message: "clickhouse-server did not answer /ping: \(p.stderr.suffix(2000)) \(log)")
        }
        return s
    }

    /// Runs `sql` on this ClickHouse and returns its output (TabSeparated).
    public func clickhouseQuery(_ sql: String) -> String {
        let out = dir.path + "/q.\(UInt32.random(in: 0...UInt32.max))"
        _ = shell("clickhouse-client --port \(tcpPort) -q \"\(sql.replacingOccurrences(of: "\"", with: "\\\""))\" > '\(out)' 2>&1")
        defer { unlink(out) }
        return String(decoding: readFileBytes(out), as: UTF8.self)
    }

    /// Where scripts/install-deps.sh unpacks the PyPI servers.
    public static let serversDir = "/var/tmp/sluice-servers"

    /// osmem-server (OpenSearch-compatible `_bulk`, in memory); nil when it is not unpacked.
    public static func openSearch() throws -> TestServer? {
        let bin = serversDir + "/osmem/osmem_server/bin/osmem-server"
        guard Sys.exists(bin) else { return nil }
        let dir = TempDir("sluice-osmem")
        let port = freePort()
        let p = try SluiceProcess(arguments: ["-addr", "127.0.0.1:\(port)", "-no-stdin-watch", "-no-ja"], workDir: dir.path, binary: bin)
        let s = TestServer(port: port, process: p, dir: dir)
        guard waitForHTTP(port, path: "/", timeout: 30) else {
            s.stop()
            throw SluiceProcess.SpawnError(message: "osmem-server did not answer: \(p.stderr.suffix(2000))")
        }
        return s
    }

    /// Prometheus scraping `targets` (HOST:PORT, path /metrics) every `intervalMs`, with its own
    /// storage; nil when Debian's prometheus is not installed.
    public static func prometheus(scraping targets: [String], intervalMs: Int = 500) throws -> TestServer? {
        let bin = "/usr/bin/prometheus"
        guard Sys.exists(bin) else { return nil }
        let dir = TempDir("sluice-prometheus")
        let port = freePort()
        writeFile(dir.path + "/prometheus.yml", """
            global:
              scrape_interval: \(intervalMs)ms
              scrape_timeout: \(intervalMs)ms
            scrape_configs:
              - job_name: sluice
                static_configs:
                  - targets: [\(targets.map { "'\($0)'" }.joined(separator: ", "))]
            """)
        let p = try SluiceProcess(arguments: ["--config.file=\(dir.path)/prometheus.yml", "--storage.tsdb.path=\(dir.path)/data",
                                              "--web.listen-address=127.0.0.1:\(port)"], workDir: dir.path, binary: bin)
        let s = TestServer(port: port, process: p, dir: dir)
        guard waitForHTTP(port, path: "/-/ready", timeout: 60) else {
            s.stop()
            throw SluiceProcess.SpawnError(message: "prometheus did not become ready: \(p.stderr.suffix(2000))")
        }
        return s
    }

    /// An instant query on this Prometheus: each result's labels and value.
    public func promQuery(_ query: String) -> [(labels: [String: String], value: Double)] {
        var comps = URLComponents(string: url + "/api/v1/query")!
        comps.queryItems = [URLQueryItem(name: "query", value: query)]
        let out = dir.path + "/q.\(UInt32.random(in: 0...UInt32.max))"
        _ = shell("curl -s -o '\(out)' '\(comps.url!.absoluteString)'")
        defer { unlink(out) }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(readFileBytes(out))) as? [String: Any],
              let data = obj["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.compactMap { r in
            guard let metric = r["metric"] as? [String: String], let v = r["value"] as? [Any], v.count == 2,
                  let text = v[1] as? String, let value = Double(text) else { return nil }
            return (metric, value)
        }
    }
}

extension TestServer {
    /// noida-db's Kafka emulation (PyPI's noida-db, unpacked by scripts/install-deps.sh under
    /// /var/tmp/sluice-servers): a Kafka-protocol broker that Debian's librdkafka 2.0.2 speaks to,
    /// idempotent producer included; topics are created on first use with one partition. Its data
    /// is kept in the server's temp dir. nil when it is not unpacked.
    public static func kafka() throws -> TestServer? {
        let bin = serversDir + "/noida/noida_db/noida-db"
        guard Sys.exists(bin) else { return nil }
        let dir = TempDir("sluice-noida")
        let port = freePort()
        let p = try SluiceProcess(arguments: ["start", "--data-dir", dir.path + "/data", "--host", "127.0.0.1", "--only", "kafka",
                                              "--kafka-port", String(port)], workDir: dir.path, binary: bin)
        let s = TestServer(port: port, process: p, dir: dir)
        guard waitUntil(timeout: 30, pollMs: 100, { acceptsTCP(port) }) else {
            s.stop()
            throw SluiceProcess.SpawnError(message: "noida-db's Kafka did not listen: \(p.stderr.suffix(2000))")
        }
        return s
    }

    /// `127.0.0.1:<port>`, for Kafka clients.
    public var address: String { "127.0.0.1:\(port)" }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func acceptsTCP(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}
