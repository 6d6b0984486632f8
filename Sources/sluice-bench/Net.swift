// The servers of the network scenarios: the counting receivers (one per mode, inside the bench), and the real
// clickhouse-server and osmem-server started for the run (when installed), as Sources/SluiceTesting/TestServers.swift
// starts them.

import Glibc

final class NetContext {
    var receivers: [ReceiverMode: CountingReceiver] = [:]
    var clickhouse: ClickHouseServer? = nil
    var osmemPort: Int? = nil
    var osmemPid: pid_t? = nil

    func stop() {
        for r in receivers.values { r.stop() }
        clickhouse?.stop()
        if let p = osmemPid { kill(p, SIGTERM); _ = waitForExit(p, seconds: 10) ?? killAndReap(p) }
    }
}

/// A free TCP port on 127.0.0.1 (bound, read back, released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func waitForHTTP(port: Int, path: String, seconds: Double) -> Bool {
    let deadline = monoNow() + seconds
    while monoNow() < deadline {
        if let (st, _) = httpRequest(port: port, method: "GET", path: path, body: "", timeoutSec: 2), st == 200 { return true }
        sleepMs(200)
    }
    return false
}

final class ClickHouseServer {
    let httpPort: Int
    let pid: pid_t
    let dir: String

    /// Starts Debian's clickhouse-server with its own data dir and ports under `workDir`; nil when not installed.
    static func start(workDir: String) throws -> ClickHouseServer? {
        let bin = "/usr/sbin/clickhouse-server"
        guard fileExists(bin), let base = readSmallFile("/etc/clickhouse-server/config.xml", limit: 16 << 20) else { return nil }
        let dir = workDir + "/clickhouse"
        removeTree(dir)
        for d in ["log", "data", "conf", "tmp", "user_files", "format_schemas"] { try mkdirP(dir + "/" + d) }
        let http = freePort(), tcp = freePort(), inter = freePort()
        var xml = String(decoding: base, as: UTF8.self)
        for (a, b) in [("/var/log/clickhouse-server", dir + "/log"), ("/var/lib/clickhouse/tmp/", dir + "/tmp/"),
                       ("/var/lib/clickhouse/user_files/", dir + "/user_files/"), ("/var/lib/clickhouse/format_schemas/", dir + "/format_schemas/"),
                       ("/var/lib/clickhouse", dir + "/data"),
                       ("<http_port>8123</http_port>", "<http_port>\(http)</http_port>"), ("<tcp_port>9000</tcp_port>", "<tcp_port>\(tcp)</tcp_port>"),
                       ("<interserver_http_port>9009</interserver_http_port>", "<interserver_http_port>\(inter)</interserver_http_port>"),
                       ("<https_port>8443</https_port>", ""), ("<tcp_port_secure>9440</tcp_port_secure>", "")] {
            xml = xml.replacing(a, with: b)
        }
        try writeFile(dir + "/conf/config.xml", xml)
        if let users = readSmallFile("/etc/clickhouse-server/users.xml", limit: 16 << 20) {
            try writeFile(dir + "/conf/users.xml", String(decoding: users, as: UTF8.self))
        }
        let pid = try spawnChild(path: bin, args: ["--config-file=\(dir)/conf/config.xml"], env: currentEnvironment(),
                                 logPath: dir + "/log/stdout.log")
        currentChild.store(0, ordering: .relaxed)
        let s = ClickHouseServer(httpPort: http, pid: pid, dir: dir)
        guard waitForHTTP(port: http, path: "/ping", seconds: 60) else {
            s.stop()
            throw BenchError("clickhouse-server did not answer /ping (log: \(dir)/log)")
        }
        return s
    }

    init(httpPort: Int, pid: pid_t, dir: String) {
        self.httpPort = httpPort
        self.pid = pid
        self.dir = dir
    }

    func stop() {
        kill(pid, SIGTERM)
        if waitForExit(pid, seconds: 30) == nil { _ = killAndReap(pid) }
    }

    func query(_ sql: String) -> (Int, String)? { httpRequest(port: httpPort, path: "/", body: sql, timeoutSec: 60) }

    /// (Re)creates the benchmark table; nil on success, else the error.
    func resetTable() -> String? {
        for q in ["DROP TABLE IF EXISTS default.bench",
                  "CREATE TABLE default.bench (content String, time Int64 DEFAULT 0) ENGINE = MergeTree ORDER BY tuple()"] {
            guard let (st, body) = query(q) else { return "no answer to \(q)" }
            if st != 200 { return "\(q): \(st) \(body)" }
        }
        return nil
    }

    func count() -> Int? {
        guard let (st, body) = query("SELECT count() FROM default.bench"), st == 200 else { return nil }
        return Int(body.filter { $0 != "\n" })
    }


    /// Rows, and distinct line ids among them.
    func countUnique() -> (Int, Int)? {
        guard let (st, body) = query("SELECT count(), uniqExact(extract(content, ' id=([0-9]+:[0-9]+)$')) FROM default.bench"),
              st == 200 else { return nil }
        let parts = body.split(whereSeparator: { $0 == "\t" || $0 == "\n" })
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else { return nil }
        return (a, b)
    }
}

let osmemBinary = "/var/tmp/sluice-servers/osmem/osmem_server/bin/osmem-server"

/// Starts osmem-server (OpenSearch-compatible, in memory); nil when it is not unpacked.
func startOsmem(workDir: String) throws -> (pid_t, Int)? {
    guard fileExists(osmemBinary) else { return nil }
    let port = freePort()
    let pid = try spawnChild(path: osmemBinary, args: ["-addr", "127.0.0.1:\(port)", "-no-stdin-watch", "-no-ja"],
                             env: currentEnvironment(), logPath: workDir + "/osmem.log")
    currentChild.store(0, ordering: .relaxed)
    guard waitForHTTP(port: port, path: "/", seconds: 30) else {
        kill(pid, SIGKILL)
        throw BenchError("osmem-server did not answer (log: \(workDir)/osmem.log)")
    }
    return (pid, port)
}

/// Documents in osmem's `bench` index (after a refresh); 0 when it does not exist yet.
func osmemCount(port: Int) -> Int? {
    _ = httpRequest(port: port, path: "/bench/_refresh", body: "")
    guard let (st, body) = httpRequest(port: port, method: "GET", path: "/bench/_count", body: "") else { return nil }
    if st == 404 { return 0 }
    guard st == 200, let r = body.firstRange(of: "\"count\":") else { return nil }
    return Int(String(body[r.upperBound...].prefix { $0 >= "0" && $0 <= "9" }))
}
