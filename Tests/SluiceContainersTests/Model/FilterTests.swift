import SluiceConfig
import Testing
@testable import SluiceContainers

/// A container for filter cases.
func modelContainer(
    namespace: String? = "default", pod: String = "web-7d9f8b-x2x", container: String = "nginx",
    podLabels: [String: String] = [:], labels: [String: String] = [:], env: [String: String] = [:],
    sandbox: Bool = false
) -> ContainerInfo {
    var c = ContainerInfo(id: "abc123", name: "k8s_\(container)_\(pod)", image: "nginx:1.27", state: .running, runtime: .containerd)
    if let namespace {
        c.kubernetes = KubernetesInfo(namespace: namespace, podName: pod, podUID: "uid-1", containerName: container, podLabels: podLabels)
    }
    c.labels = labels
    c.env = env
    c.isSandbox = sandbox
    return c
}

struct ModelFilterCase: CustomTestStringConvertible, Sendable {
    var name: String
    var yaml: String
    var container: ContainerInfo
    var matches: Bool
    var testDescription: String { name }
}

let modelFilterCases: [ModelFilterCase] = [
    ModelFilterCase(name: "no filters: everything", yaml: "{}", container: modelContainer(), matches: true),
    ModelFilterCase(name: "no filters: sandbox never", yaml: "{}", container: modelContainer(sandbox: true), matches: false),
    ModelFilterCase(name: "sandbox never, even when everything else matches",
               yaml: "K8sNamespaceRegex: default", container: modelContainer(sandbox: true), matches: false),
    ModelFilterCase(name: "namespace anchored regex matches", yaml: "K8sNamespaceRegex: ^default$",
               container: modelContainer(namespace: "default"), matches: true),
    ModelFilterCase(name: "namespace anchored regex rejects", yaml: "K8sNamespaceRegex: ^default$",
               container: modelContainer(namespace: "kube-system"), matches: false),
    ModelFilterCase(name: "namespace regex is a search (unanchored)", yaml: "K8sNamespaceRegex: prod",
               container: modelContainer(namespace: "team-prod-1"), matches: true),
    ModelFilterCase(name: "pod regex", yaml: "K8sPodRegex: ^web-", container: modelContainer(pod: "web-1"), matches: true),
    ModelFilterCase(name: "pod regex rejects", yaml: "K8sPodRegex: ^web-", container: modelContainer(pod: "api-web-1"), matches: false),
    ModelFilterCase(name: "container regex search", yaml: "K8sContainerRegex: ngin", container: modelContainer(container: "nginx-sidecar"), matches: true),
    ModelFilterCase(name: "not Kubernetes: empty namespace fails an anchored regex", yaml: "K8sNamespaceRegex: ^default$",
               container: modelContainer(namespace: nil), matches: false),
    ModelFilterCase(name: "not Kubernetes: .* matches the empty namespace", yaml: "K8sNamespaceRegex: .*",
               container: modelContainer(namespace: nil), matches: true),
    ModelFilterCase(name: "label exact match", yaml: "IncludeK8sLabel: {app: nginx}",
               container: modelContainer(podLabels: ["app": "nginx"]), matches: true),
    ModelFilterCase(name: "label exact is not a substring", yaml: "IncludeK8sLabel: {app: nginx}",
               container: modelContainer(podLabels: ["app": "nginx2"]), matches: false),
    ModelFilterCase(name: "label value with ^ is a regex", yaml: "IncludeK8sLabel: {app: ^ngin}",
               container: modelContainer(podLabels: ["app": "nginx2"]), matches: true),
    ModelFilterCase(name: "^ regex is anchored by its ^", yaml: "IncludeK8sLabel: {app: ^ngin}",
               container: modelContainer(podLabels: ["app": "my-nginx"]), matches: false),
    ModelFilterCase(name: "regex-looking value without ^ is exact (no match)", yaml: "IncludeK8sLabel: {app: ngin.*}",
               container: modelContainer(podLabels: ["app": "nginx"]), matches: false),
    ModelFilterCase(name: "regex-looking value without ^ is exact (match)", yaml: "IncludeK8sLabel: {app: ngin.*}",
               container: modelContainer(podLabels: ["app": "ngin.*"]), matches: true),
    ModelFilterCase(name: "empty value: key present", yaml: "IncludeK8sLabel: {app: \"\"}",
               container: modelContainer(podLabels: ["app": "anything"]), matches: true),
    ModelFilterCase(name: "empty value (null): key present", yaml: "IncludeK8sLabel: {app: }",
               container: modelContainer(podLabels: ["app": ""]), matches: true),
    ModelFilterCase(name: "empty value: key absent", yaml: "IncludeK8sLabel: {app: \"\"}",
               container: modelContainer(podLabels: ["tier": "front"]), matches: false),
    ModelFilterCase(name: "include entries are OR'ed", yaml: "IncludeK8sLabel: {app: nginx, tier: front}",
               container: modelContainer(podLabels: ["tier": "front"]), matches: true),
    ModelFilterCase(name: "include entries OR'ed: none matches", yaml: "IncludeK8sLabel: {app: nginx, tier: front}",
               container: modelContainer(podLabels: ["tier": "back", "app": "api"]), matches: false),
    ModelFilterCase(name: "exclude wins over include", yaml: "IncludeK8sLabel: {app: nginx}\nExcludeK8sLabel: {env: prod}",
               container: modelContainer(podLabels: ["app": "nginx", "env": "prod"]), matches: false),
    ModelFilterCase(name: "exclude: empty value rejects on presence", yaml: "ExcludeK8sLabel: {canary: \"\"}",
               container: modelContainer(podLabels: ["canary": "false"]), matches: false),
    ModelFilterCase(name: "exclude regex", yaml: "ExcludeK8sLabel: {app: ^debug}",
               container: modelContainer(podLabels: ["app": "debug-shell"]), matches: false),
    ModelFilterCase(name: "exclude not hit", yaml: "ExcludeK8sLabel: {app: ^debug}",
               container: modelContainer(podLabels: ["app": "web"]), matches: true),
    ModelFilterCase(name: "exclude on absent labels passes", yaml: "ExcludeK8sLabel: {app: web}",
               container: modelContainer(namespace: nil), matches: true),
    ModelFilterCase(name: "include k8s label on a non-Kubernetes container", yaml: "IncludeK8sLabel: {app: \"\"}",
               container: modelContainer(namespace: nil), matches: false),
    ModelFilterCase(name: "env exact", yaml: "IncludeEnv: {APP: web}", container: modelContainer(env: ["APP": "web"]), matches: true),
    ModelFilterCase(name: "env regex", yaml: "IncludeEnv: {APP: ^we}", container: modelContainer(env: ["APP": "web"]), matches: true),
    ModelFilterCase(name: "env exclude", yaml: "ExcludeEnv: {DEBUG: \"1\"}", container: modelContainer(env: ["DEBUG": "1"]), matches: false),
    ModelFilterCase(name: "service env ignored: *_SERVICE_HOST", yaml: "IncludeEnv: {REDIS_SERVICE_HOST: \"\"}",
               container: modelContainer(env: ["REDIS_SERVICE_HOST": "10.0.0.1"]), matches: false),
    ModelFilterCase(name: "service env ignored: KUBERNETES_*", yaml: "IncludeEnv: {KUBERNETES_SERVICE_HOST: \"\"}",
               container: modelContainer(env: ["KUBERNETES_SERVICE_HOST": "10.0.0.1"]), matches: false),
    ModelFilterCase(name: "service env ignored: *_SERVICE_PORT*", yaml: "ExcludeEnv: {REDIS_SERVICE_PORT_HTTP: \"\"}",
               container: modelContainer(env: ["REDIS_SERVICE_PORT_HTTP": "80"]), matches: true),
    ModelFilterCase(name: "service env ignored: *_PORT*", yaml: "ExcludeEnv: {REDIS_PORT_6379_TCP: \"\"}",
               container: modelContainer(env: ["REDIS_PORT_6379_TCP": "tcp://10.0.0.1:6379"]), matches: true),
    ModelFilterCase(name: "other env still counts beside service env", yaml: "IncludeEnv: {REDIS_PORT: \"\", APP: web}",
               container: modelContainer(env: ["REDIS_PORT": "tcp://x", "APP": "web"]), matches: true),
    ModelFilterCase(name: "container label include", yaml: "IncludeContainerLabel: {team: a}",
               container: modelContainer(labels: ["team": "a"]), matches: true),
    ModelFilterCase(name: "container label include (old name IncludeLabel)", yaml: "IncludeLabel: {team: a}",
               container: modelContainer(labels: ["team": "b"]), matches: false),
    ModelFilterCase(name: "container label exclude", yaml: "ExcludeContainerLabel: {io.kubernetes.container.name: POD}",
               container: modelContainer(labels: ["io.kubernetes.container.name": "POD"]), matches: false),
    ModelFilterCase(name: "categories AND: k8s ok, env fails",
               yaml: "K8sNamespaceRegex: ^default$\nIncludeEnv: {APP: web}",
               container: modelContainer(env: ["APP": "api"]), matches: false),
    ModelFilterCase(name: "categories AND: k8s fails, env ok",
               yaml: "K8sNamespaceRegex: ^default$\nIncludeEnv: {APP: web}",
               container: modelContainer(namespace: "other", env: ["APP": "web"]), matches: false),
    ModelFilterCase(name: "categories AND: all pass",
               yaml: "K8sNamespaceRegex: ^default$\nIncludeEnv: {APP: web}\nIncludeContainerLabel: {team: a}\nIncludeK8sLabel: {app: nginx}",
               container: modelContainer(podLabels: ["app": "nginx"], labels: ["team": "a"], env: ["APP": "web"]), matches: true),
]

@Suite struct ContainerFiltersTests {
    static func filters(_ yaml: String) throws -> ContainerFilters {
        let object = try ConfigObject.parse(yaml: yaml, fields: ContainerFilters.spec)
        return try ContainerFilters.from(object)
    }

    @Test(arguments: modelFilterCases)
    func table(_ c: ModelFilterCase) throws {
        let filters = try Self.filters(c.yaml)
        #expect(filters.matches(c.container) == c.matches, "\(c.name): \(filters.explain(c.container) ?? "matched")")
        #expect((filters.explain(c.container) == nil) == c.matches)
    }

    @Test func explainMessages() throws {
        let f = try Self.filters("K8sNamespaceRegex: ^default$")
        #expect(f.explain(modelContainer(namespace: "kube-system")) == "namespace \"kube-system\" does not match K8sNamespaceRegex ^default$")
        #expect(f.explain(modelContainer(namespace: nil)) == "namespace \"\" does not match K8sNamespaceRegex ^default$ (not a Kubernetes container)")
        #expect(f.explain(modelContainer(sandbox: true)) == "sandbox (pause) container: never matched")
        let labels = try Self.filters("IncludeK8sLabel: {app: nginx, tier: ^front}\nExcludeEnv: {DEBUG: \"\"}")
        #expect(labels.explain(modelContainer(podLabels: ["app": "api"])) == "no IncludeK8sLabel entry matches (wanted app=\"nginx\", tier~^front)")
        #expect(labels.explain(modelContainer(podLabels: ["app": "nginx"], env: ["DEBUG": "1"])) == "env DEBUG=\"1\" matches ExcludeEnv DEBUG (present)")
    }

    @Test func invalidRegexIsAConfigErrorAtItsValue() throws {
        do {
            _ = try Self.filters("K8sPodRegex: \"web-(\"")
            Issue.record("expected an error")
        } catch let error as ConfigError {
            #expect(error.keyPath == "K8sPodRegex")
            #expect(error.line == 1)
            #expect(error.message.hasPrefix("invalid regular expression \"web-(\": "), "\(error)")
        }
        do {
            _ = try Self.filters("IncludeEnv:\n  OK: plain\n  APP: \"^web[\"\n")
            Issue.record("expected an error")
        } catch let error as ConfigError {
            #expect(error.keyPath == "IncludeEnv.APP")
            #expect(error.line == 3)
            #expect(error.message.contains("invalid regular expression \"^web[\""), "\(error)")
        }
        // A value without ^ is exact, so it may contain anything.
        #expect(try Self.filters("IncludeEnv: {APP: \"web[\"}").includeEnv.count == 1)
        #expect(throws: ContainerFilterError.self) { try ContainerFilters(k8sNamespaceRegex: "(") }
    }

    /// The regexes run on PCRE2 with the incumbent's semantics: a search (Go's `MatchString`),
    /// anchored only by the pattern, `$` only at the very end; errors carry PCRE2's message.
    @Test func pcre2SearchSemantics() throws {
        let r = try FilterRegex("web-\\d+")
        #expect(r.search("prod-web-12-x"))
        #expect(!r.search("prod-web-x"))
        let anchored = try FilterRegex("^web$")
        #expect(anchored.search("web"))
        #expect(!anchored.search("web\n"), "$ is the very end (RE2), not before a final newline")
        #expect(!anchored.search("a-web"))
        #expect(try FilterRegex("(?i)^KUBE-").search("kube-system"))
        #expect(try FilterRegex("^(?:default|prod)$").search("prod"))
        do {
            _ = try FilterRegex("web-(")
            Issue.record("expected an error")
        } catch {
            #expect(error.reason == "missing closing parenthesis at offset 5", "\(error)")
        }
    }

    @Test func programmaticInit() throws {
        let f = try ContainerFilters(k8sNamespaceRegex: "^prod", includeEnv: ["APP": "web"])
        #expect(f.matches(modelContainer(namespace: "prod-eu", env: ["APP": "web"])))
        #expect(!f.matches(modelContainer(namespace: "dev", env: ["APP": "web"])))
        #expect(ContainerFilters.none.isEmpty)
        #expect(ContainerFilters.none.matches(modelContainer()))
        #expect(try ContainerFilters(k8sPodRegex: "").k8sPodRegex == nil)
    }

    @Test func serviceEnvNames() {
        for name in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_PORT", "REDIS_SERVICE_HOST", "REDIS_SERVICE_PORT",
                     "REDIS_SERVICE_PORT_HTTP", "REDIS_PORT", "REDIS_PORT_6379_TCP_ADDR"] {
            #expect(ContainerFilters.isKubernetesServiceEnv(name), "\(name)")
        }
        for name in ["APP", "PORT", "SERVICE_HOST", "KUBERNETES", "PATH"] {
            #expect(!ContainerFilters.isKubernetesServiceEnv(name), "\(name)")
        }
    }

    @Test func specNamesEveryField() {
        #expect(ContainerFilters.spec.map(\.name) == [
            "K8sNamespaceRegex", "K8sPodRegex", "K8sContainerRegex", "IncludeK8sLabel", "ExcludeK8sLabel",
            "IncludeEnv", "ExcludeEnv", "IncludeContainerLabel", "ExcludeContainerLabel",
        ])
        #expect(ContainerFilters.spec.allSatisfy { !$0.doc.isEmpty })
    }
}
