// Generators of the other line shapes: Java-style multiline logs (stack traces), ~200-byte JSON lines and
// nginx-like CSV. Like the nginx lines, every record carries a unique ` id=<file>:<record>`:
//   java: at the end of the record's FIRST line, which also says `lines=K` (the record's physical line count);
//         the sidecar holds each record's length (its lines joined with '\n', without the last '\n');
//   json: at the end of the `content` string (the last key);
//   csv:  at the end of the last column (`content`).

import Glibc

enum ContentKind: String, Equatable {
    case nginx
    case java
    case json
    case csv
    static let generatorVersion = 1
}

/// Seconds since midnight of a json line (the time every generated line carries).
func contentSecondOfDay(file: Int, line: Int) -> Int { (line / 20 + file * 37) % 86400 }
/// Seconds after the dataset's time base of a csv line: a 6-hour window, so that no line is older than the
/// timestamp parser's 12-hour discard limit when the dataset is fresh (see csvTimeBase).
func csvSecond(file: Int, line: Int) -> Int { (line / 20 + file * 37) % 21600 }
/// The csv time base: 6 to 9 hours ago, on a 3-hour grid (a dataset is regenerated when the grid moves).
func csvTimeBase() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    let sixHoursAgo = Int(now.tv_sec) - 21600
    return sixHoursAgo - sixHoursAgo % 10800
}
let monthNames: [[UInt8]] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }
/// 2023-11-14T00:00:00Z
let contentEpochDay = 1_699_920_000

struct ContentTables {
    let levels: [[UInt8]] = ["INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN"].map { Array($0.utf8) }
    let loggers: [[UInt8]] = ["com.example.orders.OrderService", "com.example.billing.InvoiceJob",
                              "com.example.api.RequestLogger", "org.hibernate.engine.jdbc.spi.SqlExceptionHelper",
                              "com.example.cache.RedisClient", "io.netty.channel.DefaultChannelPipeline"].map { Array($0.utf8) }
    let messages: [[UInt8]] = ["processed order", "invoice batch completed for account", "request served in",
                               "connection pool stats: active=4 idle=12 waiting=0 for shard",
                               "cache miss for key user:profile:", "retrying upstream call after backoff, attempt"].map { Array($0.utf8) }
    let exceptions: [[UInt8]] = ["java.lang.IllegalStateException: order is not in state PAID:",
                                 "java.net.SocketTimeoutException: Read timed out after ms",
                                 "org.postgresql.util.PSQLException: ERROR: duplicate key value violates unique constraint, id",
                                 "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null, case"].map { Array($0.utf8) }
    let frames: [[UInt8]] = ["\tat com.example.orders.OrderService.process(OrderService.java:",
                             "\tat com.example.orders.OrderController.submit(OrderController.java:",
                             "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:",
                             "\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:",
                             "\tat io.netty.util.concurrent.SingleThreadEventExecutor.run(SingleThreadEventExecutor.java:"].map { Array($0.utf8) }
    let users: [[UInt8]] = ["alice", "bob", "carol", "dave", "erin", "-"].map { Array($0.utf8) }
}

@inline(__always)
func putTime(_ c: inout Cursor, secs: Int, ms: Int, iso: Bool) {
    c.put(iso ? "2023-11-14T" : "2023-11-14 ")
    c.put2(secs / 3600); c.put(UInt8(ascii: ":"))
    c.put2(secs / 60 % 60); c.put(UInt8(ascii: ":"))
    c.put2(secs % 60); c.put(UInt8(ascii: "."))
    c.put(UInt8(48 + ms / 100)); c.put2(ms % 100)
    if iso { c.put(UInt8(ascii: "Z")) }
}

@inline(__always)
func putPad(_ c: inout Cursor, _ pad: Int) {
    if pad > 0 {
        c.put(UInt8(ascii: " "))
        for _ in 1..<pad { c.put(UInt8(ascii: "x")) }
    }
}

/// One Java record (1 + 0...8 lines); returns (bytes, physical lines). `single`: no continuation lines.
func emitJavaRecord(_ t: ContentTables, _ rng: inout SplitMix64, fileIndex: Int, rec: Int, pad: Int, single: Bool,
                    into dst: UnsafeMutablePointer<UInt8>) -> (Int, Int) {
    var c = Cursor(p: dst)
    let r1 = rng.next(), r2 = rng.next()
    // ~30 % of records carry a stack trace of 1-8 continuation lines
    let cont = single || r1 % 100 >= 30 ? 0 : 1 + Int((r1 >> 8) % 8)
    putTime(&c, secs: (rec / 20 + fileIndex * 37) % 86400, ms: rec % 1000, iso: false)
    c.put(UInt8(ascii: " "))
    c.put(cont > 0 ? [UInt8]("ERROR".utf8) : t.levels[Int((r1 >> 12) % UInt64(t.levels.count))])
    c.put(" [worker-"); c.putInt(Int((r1 >> 16) % 32)); c.put("] ")
    c.put(t.loggers[Int((r1 >> 24) % UInt64(t.loggers.count))])
    c.put(" - lines="); c.putInt(1 + cont); c.put(UInt8(ascii: " "))
    c.put(t.messages[Int((r1 >> 32) % UInt64(t.messages.count))])
    c.put(UInt8(ascii: " ")); c.putInt(Int((r2) % 1_000_000))
    putPad(&c, pad)
    c.put(" id="); c.putInt(fileIndex); c.put(UInt8(ascii: ":")); c.putInt(rec)
    c.put(UInt8(ascii: "\n"))
    for k in 0..<cont {
        if k == 0 {
            c.put(t.exceptions[Int((r2 >> 20) % UInt64(t.exceptions.count))])
            c.put(UInt8(ascii: " ")); c.putInt(Int((r2 >> 24) % 100_000))
        } else if k == 5 {
            c.put("Caused by: java.io.IOException: Broken pipe")
        } else if k == 7 {
            c.put("\t... "); c.putInt(10 + Int((r2 >> 40) % 40)); c.put(" more")
        } else {
            c.put(t.frames[Int((r2 >> UInt64(28 + 3 * k)) % UInt64(t.frames.count))])
            c.putInt(20 + Int((r2 >> UInt64(8 * k)) % 900)); c.put(UInt8(ascii: ")"))
        }
        c.put(UInt8(ascii: "\n"))
    }
    return (c.p - dst, 1 + cont)
}

/// One ~200-byte JSON line.
func emitJSONLine(_ t: ContentTables, _ rng: inout SplitMix64, fileIndex: Int, line: Int, pad: Int,
                  into dst: UnsafeMutablePointer<UInt8>) -> Int {
    var c = Cursor(p: dst)
    let r1 = rng.next()
    c.put("{\"time\":\"")
    putTime(&c, secs: contentSecondOfDay(file: fileIndex, line: line), ms: line % 1000, iso: true)
    c.put("\",\"level\":\""); c.put(t.levels[Int(r1 % UInt64(t.levels.count))])
    c.put("\",\"logger\":\""); c.put(t.loggers[Int((r1 >> 8) % UInt64(t.loggers.count))])
    c.put("\",\"thread\":\"worker-"); c.putInt(Int((r1 >> 16) % 32))
    c.put("\",\"user\":\""); c.put(t.users[Int((r1 >> 24) % UInt64(t.users.count))])
    c.put("\",\"status\":"); c.putInt([200, 200, 200, 201, 404, 500][Int((r1 >> 32) % 6)])
    c.put(",\"latency_ms\":"); c.putInt(Int((r1 >> 36) % 900)); c.put(UInt8(ascii: ".")); c.putInt(Int((r1 >> 46) % 10))
    c.put(",\"content\":\""); c.put(t.messages[Int((r1 >> 50) % UInt64(t.messages.count))])
    c.put(UInt8(ascii: " ")); c.putInt(Int((r1 >> 20) % 1_000_000))
    putPad(&c, pad)
    c.put(" id="); c.putInt(fileIndex); c.put(UInt8(ascii: ":")); c.putInt(line)
    c.put("\"}\n")
    return c.p - dst
}

/// One nginx-like CSV line: ip,user,time,method,path,protocol,status,bytes,referer,agent,content; the agent is
/// quoted when it holds a comma.
func emitCSVLine(_ t: LineTables, _ rng: inout SplitMix64, fileIndex: Int, line: Int, pad: Int, timeBase: Int,
                 into dst: UnsafeMutablePointer<UInt8>) -> Int {
    var c = Cursor(p: dst)
    let r1 = rng.next(), r2 = rng.next()
    c.putInt(10 + Int(r1 & 0x7F)); c.put(UInt8(ascii: "."))
    c.putInt(Int((r1 >> 8) & 0xFF)); c.put(UInt8(ascii: "."))
    c.putInt(Int((r1 >> 16) & 0xFF)); c.put(UInt8(ascii: "."))
    c.putInt(1 + Int((r1 >> 24) % 254)); c.put(UInt8(ascii: ","))
    c.put(t.users[Int((r1 >> 32) % UInt64(t.users.count))]); c.put(UInt8(ascii: ","))
    var epoch = time_t(timeBase + csvSecond(file: fileIndex, line: line))
    var tm = Glibc.tm()
    gmtime_r(&epoch, &tm)
    c.put2(Int(tm.tm_mday)); c.put(UInt8(ascii: "/")); c.put(monthNames[Int(tm.tm_mon)]); c.put(UInt8(ascii: "/"))
    c.putInt(1900 + Int(tm.tm_year)); c.put(UInt8(ascii: ":"))
    let secs = Int(tm.tm_hour) * 3600 + Int(tm.tm_min) * 60 + Int(tm.tm_sec)
    c.put2(secs / 3600); c.put(UInt8(ascii: ":")); c.put2(secs / 60 % 60); c.put(UInt8(ascii: ":")); c.put2(secs % 60)
    c.put(" +0000,")
    c.put(t.methods[Int((r1 >> 40) % 2)]); c.put(UInt8(ascii: ","))
    c.put("/api/v1/"); c.put(t.resources[Int((r2 >> 8) % UInt64(t.resources.count))])
    c.put(UInt8(ascii: "/")); c.putInt(Int((r2 >> 16) % 1_000_000)); c.put(UInt8(ascii: ","))
    c.put(t.protocols[Int((r2 >> 50) % 3)]); c.put(UInt8(ascii: ","))
    c.put(t.statuses[Int((r2 >> 40) % UInt64(t.statuses.count))]); c.put(UInt8(ascii: ","))
    c.putInt(Int((r2 >> 20) % 60000)); c.put(UInt8(ascii: ","))
    c.put(t.referers[Int((r2 >> 34) % UInt64(t.referers.count))]); c.put(UInt8(ascii: ","))
    let agent = t.agents[Int((r2 >> 44) % UInt64(t.agents.count))]
    let quote = agent.contains(UInt8(ascii: ","))
    if quote { c.put(UInt8(ascii: "\"")) }
    c.put(agent)
    if quote { c.put(UInt8(ascii: "\"")) }
    c.put(",rt=0."); c.putInt(100 + Int((r2 >> 56) % 900))
    putPad(&c, pad)
    c.put(" id="); c.putInt(fileIndex); c.put(UInt8(ascii: ":")); c.putInt(line)
    c.put(UInt8(ascii: "\n"))
    return c.p - dst
}

/// Generates one java / json / csv file of exactly `spec.bytesPerFile` bytes (and, for java, its sidecar of
/// record lengths). Returns the record (id) and physical line counts.
func generateContentFile(path: String, sidecarPath: String?, spec: DatasetSpec, fileIndex: Int,
                         tables: LineTables) throws -> (lines: Int, records: Int) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw BenchError("cannot create \(path): \(errnoText())") }
    defer { close(fd) }
    let maxRecord = 2048
    let bufSize = 8 << 20
    let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: bufSize + 4 * maxRecord)
    defer { buf.deallocate() }
    let ct = ContentTables()
    var rng = SplitMix64(seed: spec.seed ^ (UInt64(fileIndex + 1) &* 0xA24B_AED4_963E_E407))
    var side: [UInt8] = []
    var remaining = spec.bytesPerFile
    var rec = 0, physical = 0, used = 0
    func flush() throws {
        if !writeAllBytes(fd: fd, buf, used) { throw BenchError("cannot write \(path): \(errnoText())") }
        used = 0
    }
    func emit(_ rng: inout SplitMix64, pad: Int, last: Bool, at dst: UnsafeMutablePointer<UInt8>) -> (Int, Int) {
        switch spec.content {
        case .java: return emitJavaRecord(ct, &rng, fileIndex: fileIndex, rec: rec, pad: pad, single: last, into: dst)
        case .json: return (emitJSONLine(ct, &rng, fileIndex: fileIndex, line: rec, pad: pad, into: dst), 1)
        case .csv, .nginx: return (emitCSVLine(tables, &rng, fileIndex: fileIndex, line: rec, pad: pad, timeBase: spec.timeBase, into: dst), 1)
        }
    }
    func record(_ n: Int, _ lines: Int) {
        if sidecarPath != nil {
            let len = n - 1
            side.append(UInt8(len & 0xFF)); side.append(UInt8(len >> 8))
        }
        used += n; remaining -= n; physical += lines
    }
    while remaining >= 2 * maxRecord {
        rec += 1
        let (n, l) = emit(&rng, pad: 0, last: false, at: buf + used)
        record(n, l)
        if used >= bufSize { try flush() }
    }
    if remaining > 0 {
        rec += 1
        var probe = rng
        let (natural, _) = emit(&probe, pad: 0, last: true, at: buf + used)
        let pad = remaining - natural
        if pad < 0 || pad > 30000 { throw BenchError("file size \(spec.bytesPerFile) too small") }
        let (n, l) = emit(&rng, pad: pad, last: true, at: buf + used)
        record(n, l)
    }
    try flush()
    if let sp = sidecarPath {
        let sfd = open(sp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if sfd < 0 { throw BenchError("cannot create \(sp): \(errnoText())") }
        let ok = side.withUnsafeBytes { writeAllBytes(fd: sfd, $0.baseAddress!, $0.count) }
        close(sfd)
        if !ok { throw BenchError("cannot write \(sp): \(errnoText())") }
    }
    return (rec, physical)
}
