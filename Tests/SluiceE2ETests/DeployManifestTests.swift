// The Kubernetes manifests under deploy/: valid for the API server (kubernetes-validate --strict
// against the Kubernetes schemas it ships, offline), every pipeline of their ConfigMaps accepted by
// the real `sluice validate`, the serverless example's static container file read by the real
// `sluice explain` with its pipeline matching the container, and every flag the manifests give
// sluice known to the binary (`sluice run --help`). Each check also counts what it checked, so
// an empty deploy/ or a parse that found nothing fails instead of passing.
import Glibc
import Foundation
import SluiceTesting
import Testing
import Yams

/// The package root: this file is Tests/SluiceE2ETests/DeployManifestTests.swift.
private func deployRepoRoot(_ file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}

/// The Kubernetes version whose schemas the manifests are validated against (one that
/// kubernetes-validate ships; clusters older than this are not the target).
private let deployKubernetesVersion = "1.30.0"

/// Pipelines ConfigMaps and static container info ConfigMaps are told apart by this label.
private let componentLabel = "app.kubernetes.io/component"

/// One deploy/*.yaml file and its documents.
private struct Manifest {
    let path: String
    let documents: [[String: Any]]
    var name: String { (path as NSString).lastPathComponent }

    /// The documents of `kind`.
    func objects(_ kind: String) -> [[String: Any]] { documents.filter { $0["kind"] as? String == kind } }

    /// Every pod spec: Pods, and the templates of DaemonSets, Deployments, Jobs, ... (CronJobs one level deeper).
    var podSpecs: [(owner: String, spec: [String: Any])] {
        documents.compactMap { doc in
            let owner = "\(doc["kind"] ?? "?")/\(metadataName(doc))"
            if doc["kind"] as? String == "Pod" { return (doc["spec"] as? [String: Any]).map { (owner, $0) } }
            var spec = doc["spec"] as? [String: Any]
            if doc["kind"] as? String == "CronJob" { spec = (spec?["jobTemplate"] as? [String: Any])?["spec"] as? [String: Any] }
            guard let template = spec?["template"] as? [String: Any], let podSpec = template["spec"] as? [String: Any] else { return nil }
            return (owner, podSpec)
        }
    }
}

private func metadataName(_ doc: [String: Any]) -> String {
    (doc["metadata"] as? [String: Any])?["name"] as? String ?? ""
}

private func metadataLabels(_ doc: [String: Any]) -> [String: String] {
    ((doc["metadata"] as? [String: Any])?["labels"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
}

/// A container that runs sluice, with its command line and mounts.
private struct SluiceContainer {
    let owner: String
    let name: String
    let podSpec: [String: Any]
    let container: [String: Any]
    /// command + args, as strings.
    let argv: [String]

    var label: String { "\(owner) container \(name)" }

    /// The value after `flag` (`--flag value` or `--flag=value`).
    func value(of flag: String) -> String? {
        for (i, word) in argv.enumerated() {
            if word == flag, i + 1 < argv.count { return argv[i + 1] }
            if word.hasPrefix(flag + "=") { return String(word.dropFirst(flag.count + 1)) }
        }
        return nil
    }

    /// The `--flags` used, without their values.
    var flags: [String] {
        argv.filter { $0.hasPrefix("--") }.map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? $0 }
    }

    /// The subcommand: the first word after the binary that is not a flag.
    var subcommand: String? { argv.dropFirst().first { !$0.hasPrefix("-") } }

    var volumeMounts: [[String: Any]] { container["volumeMounts"] as? [[String: Any]] ?? [] }

    /// The pod volume mounted at `path` in this container, with the mount.
    func mount(at path: String) -> (mount: [String: Any], volume: [String: Any])? {
        guard let m = volumeMounts.first(where: { $0["mountPath"] as? String == path }),
              let volume = (podSpec["volumes"] as? [[String: Any]] ?? []).first(where: { $0["name"] as? String == m["name"] as? String })
        else { return nil }
        return (m, volume)
    }

    /// The value of env variable `name`, when it is a plain value.
    func env(_ name: String) -> String? {
        (container["env"] as? [[String: Any]] ?? []).first { $0["name"] as? String == name }?["value"] as? String
    }
}

/// Reads deploy/*.yaml (sorted), every document parsed.
private func loadManifests() throws -> [Manifest] {
    let dir = deployRepoRoot() + "/deploy"
    let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
    return try names.map { name in
        let path = dir + "/" + name
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var documents: [[String: Any]] = []
        for document in try Yams.load_all(yaml: text) {
            if document is NSNull { continue }  // an empty document (a trailing `---`)
            let object = try #require(document as? [String: Any], "\(name): a document that is not a mapping: \(document)")
            documents.append(object)
        }
        return Manifest(path: path, documents: documents)
    }
}

/// The containers of `manifest` that run sluice (image sluice:… or a command whose program is sluice).
private func sluiceContainers(_ manifest: Manifest) -> [SluiceContainer] {
    manifest.podSpecs.flatMap { owner, spec in
        (spec["containers"] as? [[String: Any]] ?? []).compactMap { c -> SluiceContainer? in
            let argv = ((c["command"] as? [Any] ?? []) + (c["args"] as? [Any] ?? [])).map { "\($0)" }
            let image = c["image"] as? String ?? ""
            let program = argv.first.map { ($0 as NSString).lastPathComponent }
            guard image.hasPrefix("sluice:") || image.hasSuffix("/sluice") || image.contains("/sluice:") || program == "sluice" else { return nil }
            return SluiceContainer(owner: owner, name: c["name"] as? String ?? "?", podSpec: spec, container: c, argv: argv)
        }
    }
}

/// An executable in $PATH.
private func findInPath(_ program: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/\(program)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}

/// How to run kubernetes-validate: the copy scripts/install-deps.sh installs under
/// /var/tmp/sluice-servers (python3 -m with that PYTHONPATH), else one on PATH; nil when neither.
private let kubernetesValidate: (argv: [String], environment: [String: String])? = {
    let dir = TestServer.serversDir + "/kubernetes-validate"
    if access(dir + "/kubernetes_validate/__main__.py", R_OK) == 0, let python = findInPath("python3") {
        return ([python, "-m", "kubernetes_validate"], ["PYTHONPATH": dir])
    }
    if let tool = findInPath("kubernetes-validate") { return ([tool], [:]) }
    return nil
}()

private let runningInCI = ProcessInfo.processInfo.environment["CI"] == "true"

/// Runs a program to its end in `dir`: (exit code, stdout, stderr); the code is nil on timeout.
private func runProgram(_ argv: [String], environment: [String: String] = [:], in dir: String,
                        timeout: Double = 120) throws -> (code: Int32?, out: String, err: String) {
    let p = try SluiceProcess(arguments: Array(argv.dropFirst()), environment: environment, workDir: dir, binary: argv[0])
    let code = p.wait(timeout: timeout)
    if code == nil { _ = p.kill9() }
    return (code, String(decoding: p.stdout, as: UTF8.self), p.stderr)
}

private func runSluice(_ args: [String], in dir: String, timeout: Double = 60) throws -> (code: Int32?, out: String, err: String) {
    try runProgram([SluiceProcess.binaryPath] + args, in: dir, timeout: timeout)
}

/// Writes the `data` entries of a ConfigMap as files of a new directory under `root`.
private func writeConfigMap(_ configMap: [String: Any], manifest: Manifest, under root: String) throws -> (dir: String, files: [String]) {
    let dir = root + "/" + (manifest.name as NSString).deletingPathExtension + "-" + metadataName(configMap)
    makeDirectories(dir)
    let data = try #require(configMap["data"] as? [String: Any], "\(manifest.name): ConfigMap \(metadataName(configMap)) has no data")
    var files: [String] = []
    for (key, value) in data.sorted(by: { $0.key < $1.key }) {
        let text = try #require(value as? String, "\(manifest.name): ConfigMap \(metadataName(configMap)) entry \(key) is not a string")
        writeFile(dir + "/" + key, text)
        files.append(key)
    }
    return (dir, files)
}

@Suite("deploy/ manifests", .serialized, .timeLimit(.minutes(4)))
struct DeployManifestTests {
    @Test("the manifests load: at least 3 files, each with documents of kind and apiVersion")
    func manifestsLoad() throws {
        let manifests = try loadManifests()
        note("deploy/: " + manifests.map { "\($0.name) (\($0.documents.map { "\($0["kind"] ?? "?")/\(metadataName($0))" }.joined(separator: ", ")))" }.joined(separator: "; "))
        #expect(manifests.count >= 3, "deploy/ holds \(manifests.count) manifests")
        for m in manifests {
            #expect(!m.documents.isEmpty, "\(m.name) has no document")
            for d in m.documents {
                #expect(d["kind"] is String && d["apiVersion"] is String && !metadataName(d).isEmpty, "\(m.name): a document without kind, apiVersion or name")
            }
        }
    }

    @Test("kubernetes-validate --strict accepts every document of every manifest",
          .enabled(if: kubernetesValidate != nil || runningInCI, "kubernetes-validate is not installed (scripts/install-deps.sh installs it)"))
    func kubernetesValidateStrict() throws {
        let tool = try #require(kubernetesValidate, "kubernetes-validate is missing: scripts/install-deps.sh installs it")
        let manifests = try loadManifests()
        try #require(manifests.count >= 3, "deploy/ holds \(manifests.count) manifests")
        let tmp = TempDir("sluice-deploy-validate")
        defer { tmp.remove() }
        let r = try runProgram(tool.argv + ["--strict", "-k", deployKubernetesVersion] + manifests.map(\.path),
                               environment: tool.environment, in: tmp.path, timeout: 180)
        let output = r.out + r.err
        note("kubernetes-validate --strict -k \(deployKubernetesVersion): exit \(r.code.map { "\($0)" } ?? "none (timeout)")\n" + output)
        #expect(r.code == 0, "kubernetes-validate failed:\n\(output)")
        #expect(!output.contains("ERROR") && !output.contains("WARN"), "kubernetes-validate reported problems:\n\(output)")
        // Every document was checked against a schema (an unknown kind or a skipped file would not say "passed").
        for m in manifests {
            let passed = output.split(separator: "\n").filter { $0.contains(m.path) && $0.contains(" passed for resource ") }.count
            #expect(passed == m.documents.count, "\(m.name): \(passed) of \(m.documents.count) documents passed")
        }
    }

    @Test("every pipeline in the manifests' ConfigMaps passes the real sluice validate, and each sluice container's --config-dir is one of them")
    func pipelinesValidate() throws {
        let manifests = try loadManifests()
        try #require(manifests.count >= 3, "deploy/ holds \(manifests.count) manifests")
        let tmp = TempDir("sluice-deploy-pipelines")
        defer { tmp.remove() }
        var pipelines = 0
        var containersChecked = 0
        for m in manifests {
            var pipelineConfigMaps: Set<String> = []
            for cm in m.objects("ConfigMap") {
                let component = metadataLabels(cm)[componentLabel]
                // Every ConfigMap is checked as one or the other: none is skipped unseen.
                #expect(component == "pipelines" || component == "static-container-info",
                        "\(m.name): ConfigMap \(metadataName(cm)) needs the label \(componentLabel): pipelines or static-container-info")
                guard component == "pipelines" else { continue }
                let (dir, files) = try writeConfigMap(cm, manifest: m, under: tmp.path)
                #expect(!files.isEmpty, "\(m.name): ConfigMap \(metadataName(cm)) holds no pipeline")
                for f in files {
                    #expect(f.hasSuffix(".yaml") || f.hasSuffix(".yml") || f.hasSuffix(".json"),
                            "\(m.name): \(metadataName(cm)) entry \(f) is not a pipeline file name (.yaml, .yml, .json): sluice would ignore it")
                }
                let r = try runSluice(["validate", dir], in: tmp.path)
                note("sluice validate \(m.name) ConfigMap \(metadataName(cm)): exit \(r.code.map { "\($0)" } ?? "none")\n" + r.out + r.err)
                #expect(r.code == 0, "\(m.name): sluice validate failed on ConfigMap \(metadataName(cm)):\n\(r.out)\(r.err)")
                for f in files {
                    #expect(r.out.contains("\(dir)/\(f): ok"), "\(m.name): \(metadataName(cm))/\(f) not reported ok:\n\(r.out)\(r.err)")
                    pipelines += 1
                }
                pipelineConfigMaps.insert(metadataName(cm))
            }
            // Each sluice container reads its pipelines from one of those ConfigMaps, and has a volume for its data.
            let containers = sluiceContainers(m)
            #expect(!containers.isEmpty, "\(m.name) runs no sluice container")
            for c in containers {
                let configDir = try #require(c.value(of: "--config-dir"), "\(m.name): \(c.label) has no --config-dir")
                let configMount = try #require(c.mount(at: configDir), "\(m.name): \(c.label): nothing is mounted at --config-dir \(configDir)")
                let configMapName = (configMount.volume["configMap"] as? [String: Any])?["name"] as? String ?? ""
                #expect(pipelineConfigMaps.contains(configMapName),
                        "\(m.name): \(c.label) reads \(configDir) from \(configMapName.isEmpty ? "a volume that is not a ConfigMap" : configMapName), not from a pipelines ConfigMap of this file")
                let dataDir = try #require(c.value(of: "--data-dir"), "\(m.name): \(c.label) has no --data-dir")
                let dataMount = c.mount(at: dataDir)
                #expect(dataMount != nil && dataMount?.mount["readOnly"] as? Bool != true,
                        "\(m.name): \(c.label): --data-dir \(dataDir) is not a writable volume (the root filesystem is read-only)")
                if let tombstone = c.value(of: "--exit-when-file") {
                    // The file comes from another container: its directory is a volume they share.
                    let dir = (tombstone as NSString).deletingLastPathComponent
                    let shared = c.mount(at: dir).map { own in
                        (c.podSpec["containers"] as? [[String: Any]] ?? []).contains { other in
                            other["name"] as? String != c.name
                                && (other["volumeMounts"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == own.mount["name"] as? String }
                        }
                    } ?? false
                    #expect(shared, "\(m.name): \(c.label): --exit-when-file \(tombstone) is not on a volume another container of the pod mounts")
                }
                containersChecked += 1
            }
        }
        note("deploy/: \(pipelines) pipelines validated, \(containersChecked) sluice containers checked")
        #expect(pipelines >= 3, "only \(pipelines) pipelines found in deploy/")
        #expect(containersChecked >= 3, "only \(containersChecked) sluice containers found in deploy/")
    }

    @Test("the static container file is read by the real sluice explain, its mounts are the pod's volumes, and the pipeline collects the container")
    func staticContainerInfo() throws {
        let manifests = try loadManifests()
        let tmp = TempDir("sluice-deploy-static")
        defer { tmp.remove() }
        var checked = 0
        for m in manifests {
            for c in sluiceContainers(m) {
                guard let infoPath = c.env("ALIYUN_LOG_STATIC_CONTAINER_INFO") else { continue }
                // The file is a ConfigMap entry mounted at that path (as a subPath or in a mounted directory).
                let dirMount = c.mount(at: (infoPath as NSString).deletingLastPathComponent)
                let mounted = c.mount(at: infoPath) ?? dirMount
                let mount = try #require(mounted, "\(m.name): \(c.label): nothing is mounted at \(infoPath)")
                let key = mount.mount["subPath"] as? String ?? (infoPath as NSString).lastPathComponent
                let cmName = try #require((mount.volume["configMap"] as? [String: Any])?["name"] as? String,
                                          "\(m.name): \(c.label): \(infoPath) is not from a ConfigMap")
                let cm = try #require(m.objects("ConfigMap").first { metadataName($0) == cmName }, "\(m.name): ConfigMap \(cmName) is not in the file")
                #expect(metadataLabels(cm)[componentLabel] == "static-container-info")
                let (infoDir, infoFiles) = try writeConfigMap(cm, manifest: m, under: tmp.path)
                try #require(infoFiles.contains(key), "\(m.name): ConfigMap \(cmName) has no entry \(key)")
                let infoFile = infoDir + "/" + key
                let entries = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: infoFile))) as? [[String: Any]],
                                           "\(m.name): \(key) is not a JSON array of objects")
                #expect(!entries.isEmpty, "\(m.name): \(key) lists no container")

                // Each container's Mounts: Source is where this sluice container sees the volume that
                // the named container mounts at Destination.
                let podContainers = c.podSpec["containers"] as? [[String: Any]] ?? []
                for entry in entries {
                    let name = entry["Name"] as? String ?? ""
                    let app = podContainers.first { $0["name"] as? String == name }
                    for mountEntry in entry["Mounts"] as? [[String: Any]] ?? [] {
                        let source = mountEntry["Source"] as? String ?? "", destination = mountEntry["Destination"] as? String ?? ""
                        let ours = c.mount(at: source)?.mount["name"] as? String
                        let theirs = (app?["volumeMounts"] as? [[String: Any]] ?? []).first { $0["mountPath"] as? String == destination }?["name"] as? String
                        #expect(ours != nil && ours == theirs,
                                "\(m.name): container \(name)'s mount \(destination) → \(source): sluice has \(ours ?? "nothing") at \(source), \(name) has \(theirs ?? "nothing") at \(destination)")
                    }
                }

                // The real parser and matcher: sluice explain with this file and this pod's pipelines.
                let configDir = try #require(c.value(of: "--config-dir"))
                let pipelinesCM = try #require(c.mount(at: configDir).flatMap { ($0.volume["configMap"] as? [String: Any])?["name"] as? String })
                let pipelines = try #require(m.objects("ConfigMap").first { metadataName($0) == pipelinesCM })
                let (pipelineDir, pipelineFiles) = try writeConfigMap(pipelines, manifest: m, under: tmp.path)
                let r = try runSluice(["explain", "--static-container-info", infoFile, "--config-dir", pipelineDir, "--json", "--wait", "1.5"], in: tmp.path)
                note("sluice explain (\(m.name), \(key)): exit \(r.code.map { "\($0)" } ?? "none")\n" + r.out + r.err)
                try #require(r.code == 0, "sluice explain failed:\n\(r.err)")
                let explained = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
                let foundIDs = Set((explained["containers"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
                let listedIDs = Set(entries.compactMap { $0["ID"] as? String })
                #expect(foundIDs == listedIDs, "sluice read containers \(foundIDs.sorted()) from \(key), which lists \(listedIDs.sorted()); stderr:\n\(r.err)")
                let reports = explained["pipelines"] as? [[String: Any]] ?? []
                #expect(reports.count == pipelineFiles.count, "explain reported \(reports.count) pipelines of \(pipelineFiles.count)")
                for report in reports {
                    let matched = report["matched"] as? [Any] ?? []
                    #expect(!matched.isEmpty, "pipeline \(report["pipeline"] ?? "?") collects no container of \(key): \(report)")
                }
                checked += 1
            }
        }
        #expect(checked >= 1, "no sluice container in deploy/ uses ALIYUN_LOG_STATIC_CONTAINER_INFO")
    }

    @Test("every flag the manifests give sluice is in its --help")
    func flagsExist() throws {
        let manifests = try loadManifests()
        let tmp = TempDir("sluice-deploy-flags")
        defer { tmp.remove() }
        var helpBySubcommand: [String: String] = [:]
        var used: Set<String> = []
        var containers = 0
        for m in manifests {
            for c in sluiceContainers(m) {
                let sub = try #require(c.subcommand, "\(m.name): \(c.label) runs sluice without a subcommand: \(c.argv)")
                #expect(sub == "run", "\(m.name): \(c.label) runs `sluice \(sub)`")
                if helpBySubcommand[sub] == nil {
                    let r = try runSluice([sub, "--help"], in: tmp.path)
                    #expect(r.code == 0, "sluice \(sub) --help: exit \(r.code.map { "\($0)" } ?? "none")\n\(r.err)")
                    helpBySubcommand[sub] = r.out + r.err
                }
                let help = helpBySubcommand[sub] ?? ""
                for flag in c.flags {
                    used.insert(flag)
                    #expect(Self.mentions(help, flag), "\(m.name): \(c.label) uses \(flag), which `sluice \(sub) --help` does not list")
                }
                containers += 1
            }
        }
        note("flags used in deploy/: \(used.sorted().joined(separator: " ")) (\(containers) sluice containers)")
        #expect(containers >= 3, "only \(containers) sluice containers in deploy/")
        #expect(used.isSuperset(of: ["--config-dir", "--data-dir", "--http-address", "--exit-when-file", "--drain-timeout"]),
                "flags checked: \(used.sorted())")
    }

    /// Whether `help` lists `flag` as a whole word (`--config-dir` is not found in `--config-dirs`).
    static func mentions(_ help: String, _ flag: String) -> Bool {
        var rest = help[...]
        while let r = rest.range(of: flag) {
            let next = r.upperBound < rest.endIndex ? rest[r.upperBound] : " "
            if !(next.isLetter || next.isNumber || next == "-" || next == "_") { return true }
            rest = rest[r.upperBound...]
        }
        return false
    }
}
