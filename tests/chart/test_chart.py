"""helm/consentd as `helm install` would render it, checked for what would
break a deployment: probes, the migration hook, the security context, secret
references, the grace period, selectors and the values schema.

Rendering goes through the Helm v4 SDK (helm-python-sdk) with the schema
validation an install does; every manifest is validated against the
Kubernetes schemas of kubernetes-validate. Run with scripts/chart-test.
"""

from __future__ import annotations

import re
import unittest
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "consentd"
PRODUCTION = CHART / "ci" / "production-values.yaml"
INVALID = Path(__file__).resolve().parent / "invalid"

# The chart's floor (Chart.yaml kubeVersion: native gRPC probes are GA from
# 1.27) and a recent release.
KUBE_VERSIONS = ["1.27.0", "1.36.0"]
RELEASE = "consentd"
NAMESPACE = "consent"

# Environment names from the settings contract (notes/CONTRACT.md); the chart
# may set no other CONSENTD_* or OTEL_* name.
CONTRACT_ENV = {
    "DATABASE_URL",
    "CONSENTD_POOL_SIZE",
    "CONSENTD_LISTEN",
    "CONSENTD_AUDIT_KEY",
    "CONSENTD_SIGNING_KEYS",
    "CONSENTD_SIGNING_KEYS_FILE",
    "CONSENTD_IP_KEYS",
    "CONSENTD_IP_KEYS_FILE",
    "CONSENTD_CONSENT_LIFETIME",
    "CONSENTD_RETENTION",
    "CONSENTD_HEALTH_CHECK_INTERVAL",
    "CONSENTD_EXPIRY_INTERVAL",
    "CONSENTD_RETENTION_INTERVAL",
    "CONSENTD_AUTH_CACHE_TTL",
    "CONSENTD_WRITERS",
    "CONSENTD_MAX_BATCH",
    "CONSENTD_METRICS_LISTEN",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "CONSENTD_SHUTDOWN_DELAY",
    "CONSENTD_DRAIN_TIMEOUT",
    "CONSENTD_MAX_CONCURRENT_REQUESTS",
    "CONSENTD_MAX_REQUEST_BYTES",
    "CONSENTD_MAX_RESPONSE_BYTES",
    "CONSENTD_KEEPALIVE_INTERVAL",
    "CONSENTD_KEEPALIVE_TIMEOUT",
    "CONSENTD_MAX_CONNECTION_AGE",
    "CONSENTD_TLS_CERT_FILE",
    "CONSENTD_TLS_KEY_FILE",
    "CONSENTD_TLS_CLIENT_CA_FILE",
    "CONSENTD_PUBLIC_LISTEN",
    "CONSENTD_PUBLIC_TRUSTED_HOPS",
    "CONSENTD_PUBLIC_KEY_RATE",
    "CONSENTD_PUBLIC_NETWORK_RATE",
    "CONSENTD_TRANSPARENCY_LOG",
    "CONSENTD_LOG_ORIGIN",
    "CONSENTD_SEQUENCE_INTERVAL",
    "CONSENTD_CHECKPOINT_INTERVAL",
    "CONSENTD_CHECKPOINT_LEAVES",
}
# Set by the chart besides the contract's: the log filter and the downward
# API entries OTEL_RESOURCE_ATTRIBUTES refers to.
OTHER_ENV = {"RUST_LOG", "K8S_POD_NAME", "K8S_NAMESPACE"}
SECRET_ENV = {"DATABASE_URL", "CONSENTD_AUDIT_KEY", "CONSENTD_SIGNING_KEYS", "CONSENTD_IP_KEYS"}

TLS_VALUES = {
    "tls": {
        "enabled": True,
        "secretName": "consentd-tls",
        "clientCaSecret": {"name": "consentd-client-ca", "key": "ca.crt"},
    }
}


def production_values() -> dict[str, Any]:
    # values_from_yaml parses the way `helm install -f` does.
    return helm.values_from_yaml(PRODUCTION.read_text())


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def render_text(values: dict[str, Any] | None = None) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered object, each with its template under "__template"."""
    objects = []
    for template, text in sorted(render_text(values).items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template"] = template
                objects.append(doc)
    return objects


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def deployment(objects):
    return only(objects, "Deployment")


def container(objects) -> dict[str, Any]:
    (c,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return c


def job(objects) -> dict[str, Any]:
    return only(objects, "Job")


def configmap(objects) -> dict[str, str]:
    return only(objects, "ConfigMap")["data"]


def env_by_name(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    match = DURATION.match(duration)
    assert match, f"{duration!r} is not a duration the chart writes"
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class Lint(unittest.TestCase):
    def lint(self, values):
        for version in KUBE_VERSIONS:
            report = helm.lint(CHART, values, strict=True, kube_version="v" + version)
            self.assertEqual(report["errors"], [], report)
            # Strict: a warning fails as an error would (severity 2 and up).
            serious = [m for m in report["messages"] if m["severity"] >= 2]
            self.assertEqual(serious, [], report)

    def test_default_values_lint_strict(self):
        self.lint(None)

    def test_production_values_lint_strict(self):
        self.lint(production_values())

    def test_lint_reports_invalid_values(self):
        report = helm.lint(CHART, {"replicaCount": "two"}, strict=True)
        self.assertTrue(report["errors"])
        self.assertIn("/replicaCount", "".join(report["errors"]))


class KubernetesSchemas(unittest.TestCase):
    """Every rendered object against the Kubernetes schemas, in strict mode
    (an unknown field fails, as a typo in a template would)."""

    def validate_all(self, values):
        objects = render(values)
        self.assertTrue(objects)
        for obj in objects:
            manifest = {k: v for k, v in obj.items() if k != "__template"}
            if manifest["apiVersion"] == "monitoring.coreos.com/v1":
                # A CRD kubernetes-validate has no schema for; its fields are
                # checked by ServiceMonitor below.
                self.assertEqual(manifest["kind"], "ServiceMonitor")
                with self.assertRaises(kubernetes_validate.SchemaNotFoundError):
                    kubernetes_validate.validate(manifest, KUBE_VERSIONS[-1], strict=True)
                continue
            for version in KUBE_VERSIONS:
                with self.subTest(template=obj["__template"], kind=manifest["kind"], version=version):
                    try:
                        kubernetes_validate.validate(manifest, version, strict=True)
                    except kubernetes_validate.ValidationError as error:
                        path = "/".join(str(p) for p in error.path)
                        self.fail(f"{obj['__template']}: {manifest['kind']} at {path}: {error.message}")
        return objects

    def test_default_values_validate(self):
        objects = self.validate_all(None)
        self.assertEqual(
            kinds(objects),
            sorted(
                [
                    "ConfigMap",
                    "Deployment",
                    "Job",
                    "NetworkPolicy",
                    "PodDisruptionBudget",
                    "Service",
                    "Service",
                    "ServiceAccount",
                ]
            ),
        )

    def test_production_values_validate(self):
        objects = self.validate_all(production_values())
        for kind in ["HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget"]:
            self.assertIn(kind, kinds(objects))
        # gRPC, headless, public and metrics.
        self.assertEqual(kinds(objects).count("Service"), 4)

    def test_tls_values_validate(self):
        self.validate_all(TLS_VALUES)

    def test_the_validator_refuses_a_misspelt_field(self):
        # Shows that strict validation would catch a template typo.
        manifest = {k: v for k, v in deployment(render()).items() if k != "__template"}
        manifest["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(manifest, KUBE_VERSIONS[-1], strict=True)


class Probes(unittest.TestCase):
    def check(self, objects):
        c = container(objects)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports["grpc"], 50051)
        for probe in ["startupProbe", "livenessProbe"]:
            self.assertEqual(c[probe]["grpc"], {"port": 50051, "service": "liveness"}, probe)
            self.assertNotIn("httpGet", c[probe])
            self.assertNotIn("tcpSocket", c[probe])
        # Readiness is the whole server ("" service), which follows PostgreSQL.
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 50051, "service": ""})
        self.assertEqual(configmap(objects)["CONSENTD_LISTEN"].rsplit(":", 1)[1], "50051")
        # Liveness must not restart pods during a database outage: it fails
        # only after failureThreshold x periodSeconds of a hung process.
        live = c["livenessProbe"]
        self.assertGreaterEqual(live["failureThreshold"] * live["periodSeconds"], 20)

    def test_default_probes(self):
        self.check(render())

    def test_production_probes(self):
        self.check(render(production_values()))

    def test_metrics_listener_on_by_default(self):
        objects = render()
        c = container(objects)
        self.assertIn({"name": "metrics", "containerPort": 9090, "protocol": "TCP"}, c["ports"])
        self.assertEqual(configmap(objects)["CONSENTD_METRICS_LISTEN"], "0.0.0.0:9090")
        metrics = only(objects, "Service", f"{RELEASE}-metrics")
        self.assertEqual(metrics["spec"]["ports"], [
            {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
        ])

    def test_metrics_off_leaves_no_listener(self):
        objects = render({"metrics": {"enabled": False}})
        self.assertNotIn("CONSENTD_METRICS_LISTEN", configmap(objects))
        self.assertEqual([p["name"] for p in container(objects)["ports"]], ["grpc"])
        self.assertNotIn(f"{RELEASE}-metrics", [o["metadata"]["name"] for o in objects if o["kind"] == "Service"])

    def test_ipv6_listen_host_is_bracketed(self):
        data = configmap(render({"config": {"listenHost": "::"}}))
        self.assertEqual(data["CONSENTD_LISTEN"], "[::]:50051")
        self.assertEqual(data["CONSENTD_METRICS_LISTEN"], "[::]:9090")

    def test_tls_probes_are_tcp_connects(self):
        # The kubelet's gRPC probes speak plaintext only: against a TLS port
        # they would fail and restart every pod.
        c = container(render(TLS_VALUES))
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
            self.assertNotIn("grpc", c[probe])
            self.assertEqual(c[probe]["tcpSocket"], {"port": 50051})


class MigrationHook(unittest.TestCase):
    def test_hook_job(self):
        for values in [None, production_values()]:
            objects = render(values)
            j = job(objects)
            annotations = j["metadata"]["annotations"]
            self.assertEqual(set(annotations["helm.sh/hook"].split(",")), {"pre-install", "pre-upgrade"})
            self.assertLess(int(annotations["helm.sh/hook-weight"]), 0)
            policies = set(annotations["helm.sh/hook-delete-policy"].split(","))
            self.assertIn("before-hook-creation", policies)
            self.assertIn("hook-succeeded", policies)
            self.assertNotIn("hook-failed", policies, "a failed migration's logs must stay")

            pod = j["spec"]["template"]["spec"]
            self.assertEqual(pod["restartPolicy"], "Never")
            (c,) = pod["containers"]
            self.assertEqual(c["command"] + c["args"], ["consentd", "migrate"])
            self.assertEqual(c["image"], container(objects)["image"])
            env = env_by_name(c)
            self.assertEqual(
                env["DATABASE_URL"]["valueFrom"],
                env_by_name(container(objects))["DATABASE_URL"]["valueFrom"],
            )
            # migrate needs DATABASE_URL only: no other secret goes to it.
            self.assertEqual(set(env) & SECRET_ENV, {"DATABASE_URL"})
            self.assertNotIn("envFrom", c)
            self.assertEqual(c["securityContext"], container(objects)["securityContext"])
            self.assertEqual(
                pod["securityContext"], deployment(objects)["spec"]["template"]["spec"]["securityContext"]
            )

    def test_hook_uses_nothing_the_release_creates(self):
        # Hooks run before the release's objects exist: a ServiceAccount or
        # ConfigMap made by this chart is not there yet at pre-install.
        objects = render()
        pod = job(objects)["spec"]["template"]["spec"]
        created = {o["metadata"]["name"] for o in objects if o["kind"] in ("ServiceAccount", "ConfigMap")}
        self.assertNotIn(pod.get("serviceAccountName", "default"), created)
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                self.assertNotIn(source.get("configMapRef", {}).get("name"), created)
        existing = render({"serviceAccount": {"create": False, "name": "consentd-workload"}})
        self.assertEqual(job(existing)["spec"]["template"]["spec"]["serviceAccountName"], "consentd-workload")

    def test_migration_can_be_left_out(self):
        self.assertNotIn("Job", kinds(render({"migration": {"enabled": False}})))


class SecurityContext(unittest.TestCase):
    def check(self, objects):
        pods = [deployment(objects)["spec"]["template"]["spec"], job(objects)["spec"]["template"]["spec"]]
        for pod in pods:
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
            self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
            self.assertFalse(pod["automountServiceAccountToken"])
            # CONSENTD_* service links would collide with consentd's settings.
            self.assertFalse(pod["enableServiceLinks"])
            self.assertFalse(pod.get("hostNetwork", False))
            for c in pod["containers"]:
                sc = c["securityContext"]
                self.assertTrue(sc["runAsNonRoot"])
                self.assertNotEqual(sc["runAsUser"], 0)
                self.assertTrue(sc["readOnlyRootFilesystem"])
                self.assertFalse(sc["allowPrivilegeEscalation"])
                self.assertFalse(sc.get("privileged", False))
                self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
                self.assertIn("resources", c)

    def test_default(self):
        self.check(render())

    def test_production(self):
        self.check(render(production_values()))

    def test_image_user_matches_the_chart(self):
        dockerfile = (ROOT / "Dockerfile").read_text()
        user = re.search(r"^USER\s+(\d+)", dockerfile, re.M)
        self.assertIsNotNone(user, "the Dockerfile must name a numeric non-root USER")
        pod = deployment(render())["spec"]["template"]["spec"]
        self.assertEqual(int(user.group(1)), pod["securityContext"]["runAsUser"])
        self.assertRegex(dockerfile, r'(?m)^ENTRYPOINT \["consentd"\]$')
        self.assertRegex(dockerfile, r'(?m)^CMD \["serve"\]$')
        self.assertRegex(dockerfile, r"cargo build --release --locked --bin consentd")
        self.assertEqual(container(render())["args"], ["serve"])


class Secrets(unittest.TestCase):
    def test_default_references(self):
        objects = render()
        env = env_by_name(container(objects))
        self.assertEqual(
            env["DATABASE_URL"]["valueFrom"],
            {"secretKeyRef": {"name": "consentd-database", "key": "DATABASE_URL"}},
        )
        self.assertEqual(
            env["CONSENTD_AUDIT_KEY"]["valueFrom"],
            {"secretKeyRef": {"name": "consentd-keys", "key": "CONSENTD_AUDIT_KEY"}},
        )
        # The signing keyring as a file, and never both forms: consentd
        # refuses CONSENTD_SIGNING_KEYS together with its _FILE.
        self.assertNotIn("CONSENTD_SIGNING_KEYS", env)
        self.assertFile(objects, env, "CONSENTD_SIGNING_KEYS_FILE", "consentd-keys", "CONSENTD_SIGNING_KEYS")
        # No IP keys by default: no full IP is kept.
        self.assertNotIn("CONSENTD_IP_KEYS", env)
        self.assertNotIn("CONSENTD_IP_KEYS_FILE", env)

    def assertFile(self, objects, env, name, secret, key):
        path = env[name]["value"]
        c = container(objects)
        pod = deployment(objects)["spec"]["template"]["spec"]
        mount = next(m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        self.assertTrue(mount["readOnly"])
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        self.assertEqual(volume["secret"]["secretName"], secret)
        relative = path[len(mount["mountPath"]) + 1 :]
        self.assertIn({"key": key, "path": relative}, volume["secret"]["items"])
        # Readable by the pod's group (fsGroup), by no one else.
        self.assertEqual(volume["secret"]["defaultMode"] & 0o007, 0)
        self.assertNotIn("subPath", mount, "a subPath mount never sees a rotated Secret")

    def test_production_references(self):
        values = production_values()
        objects = render(values)
        env = env_by_name(container(objects))
        self.assertEqual(
            env["CONSENTD_IP_KEYS"]["valueFrom"],
            {"secretKeyRef": {"name": "consentd-ip-keys", "key": "CONSENTD_IP_KEYS"}},
        )
        self.assertNotIn("CONSENTD_IP_KEYS_FILE", env)
        files = render(merge(values, {"secrets": {"ipKeys": {"asFile": True}, "signingKeys": {"asFile": False}}}))
        env = env_by_name(container(files))
        self.assertFile(files, env, "CONSENTD_IP_KEYS_FILE", "consentd-ip-keys", "CONSENTD_IP_KEYS")
        self.assertNotIn("CONSENTD_IP_KEYS", env)
        self.assertEqual(
            env["CONSENTD_SIGNING_KEYS"]["valueFrom"],
            {"secretKeyRef": {"name": "consentd-keys", "key": "CONSENTD_SIGNING_KEYS"}},
        )
        self.assertNotIn("CONSENTD_SIGNING_KEYS_FILE", env)

    def test_no_secret_value_in_any_manifest(self):
        for values in [None, production_values(), TLS_VALUES]:
            text = "\n".join(render_text(values).values())
            objects = render(values)
            self.assertNotIn("Secret", kinds(objects), "the chart must create no Secret")
            self.assertNotRegex(text, r"postgres(ql)?://")
            # A 32-byte key in base64, as the keyrings and audit key hold.
            self.assertNotRegex(text, r"[A-Za-z0-9+/]{43}=")
            self.assertFalse(SECRET_ENV & set(configmap(objects)), "a secret name in the ConfigMap")
            for c in container(objects), job(objects)["spec"]["template"]["spec"]["containers"][0]:
                for name, entry in env_by_name(c).items():
                    if name in SECRET_ENV:
                        self.assertNotIn("value", entry, f"{name} given as a plain value")
                        self.assertIn("secretKeyRef", entry["valueFrom"])

    def test_every_environment_name_is_in_the_contract(self):
        for values in [None, production_values(), TLS_VALUES]:
            objects = render(values)
            names = set(configmap(objects)) | set(env_by_name(container(objects)))
            self.assertEqual(names - CONTRACT_ENV - OTHER_ENV, set())

    def test_tls_files_from_secrets(self):
        objects = render(TLS_VALUES)
        env = env_by_name(container(objects))
        self.assertFile(objects, env, "CONSENTD_TLS_CERT_FILE", "consentd-tls", "tls.crt")
        self.assertFile(objects, env, "CONSENTD_TLS_KEY_FILE", "consentd-tls", "tls.key")
        self.assertFile(objects, env, "CONSENTD_TLS_CLIENT_CA_FILE", "consentd-client-ca", "ca.crt")
        plain = env_by_name(container(render()))
        self.assertFalse({"CONSENTD_TLS_CERT_FILE", "CONSENTD_TLS_KEY_FILE"} & set(plain))

    def test_tls_without_a_secret_is_refused(self):
        with self.assertRaises(helm.HelmRenderError) as caught:
            render({"tls": {"enabled": True}})
        self.assertIn("tls.secretName", str(caught.exception))


class GracePeriod(unittest.TestCase):
    def check(self, values):
        objects = render(values)
        data = configmap(objects)
        needed = seconds(data["CONSENTD_SHUTDOWN_DELAY"]) + seconds(data["CONSENTD_DRAIN_TIMEOUT"])
        grace = deployment(objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, needed)
        return grace

    def test_default(self):
        self.assertEqual(self.check(None), 5 + 20 + 10)

    def test_production(self):
        self.assertEqual(self.check(production_values()), 10 + 45 + 10)

    def test_derived_from_the_settings(self):
        grace = self.check({"config": {"shutdownDelay": "1500ms", "drainTimeout": "2m"}})
        self.assertEqual(grace, 2 + 120 + 10)

    def test_explicit_value_kept_when_long_enough(self):
        self.assertEqual(self.check({"terminationGracePeriodSeconds": 120}), 120)

    def test_too_short_is_refused(self):
        with self.assertRaises(helm.HelmRenderError) as caught:
            render({"terminationGracePeriodSeconds": 20, "config": {"shutdownDelay": "5s", "drainTimeout": "20s"}})
        message = str(caught.exception)
        self.assertIn("terminationGracePeriodSeconds 20", message)
        self.assertIn("25s", message)


class Rollout(unittest.TestCase):
    def test_config_change_rolls_the_pods(self):
        def checksum(values):
            return deployment(render(values))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

        base = checksum(None)
        self.assertRegex(base, r"^[0-9a-f]{64}$")
        self.assertNotEqual(checksum({"config": {"writers": 3}}), base)
        self.assertNotEqual(checksum({"tracing": {"otlpEndpoint": "http://collector:4317"}}), base)
        self.assertEqual(checksum({"replicaCount": 5}), base)

    def test_topology_spread(self):
        objects = render()
        pod = deployment(objects)["spec"]["template"]
        constraints = pod["spec"]["topologySpreadConstraints"]
        self.assertEqual(
            {c["topologyKey"] for c in constraints}, {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        )
        for c in constraints:
            self.assertTrue(selects(c["labelSelector"]["matchLabels"], pod["metadata"]["labels"]))
        self.assertNotIn("topologySpreadConstraints", deployment(render({"topologySpread": {"topologyKeys": []}}))["spec"]["template"]["spec"])

    def test_selectors_pick_the_serving_pods_only(self):
        for values in [None, production_values()]:
            objects = render(values)
            serving = deployment(objects)["spec"]["template"]["metadata"]["labels"]
            migrate = job(objects)["spec"]["template"]["metadata"]["labels"]
            selectors = [deployment(objects)["spec"]["selector"]["matchLabels"],
                         only(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]]
            selectors += [s["spec"]["selector"] for s in objects if s["kind"] == "Service"]
            for selector in selectors:
                self.assertTrue(selects(selector, serving), selector)
                # The migration pod listens on nothing: no traffic, no PDB.
                self.assertFalse(selects(selector, migrate), selector)

    def test_services(self):
        objects = render(production_values())
        service = only(objects, "Service", RELEASE)
        self.assertEqual(service["spec"]["ports"][0]["targetPort"], "grpc")
        self.assertEqual(service["spec"]["ports"][0]["port"], 50051)
        headless = only(objects, "Service", f"{RELEASE}-headless")
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertEqual(headless["spec"]["ports"][0]["targetPort"], "grpc")
        self.assertNotIn(f"{RELEASE}-headless", [o["metadata"]["name"] for o in render() if o["kind"] == "Service"])

    def test_public_listener_is_off_by_default(self):
        objects = render()
        self.assertNotIn(f"{RELEASE}-public", [o["metadata"]["name"] for o in objects if o["kind"] == "Service"])
        self.assertNotIn("public", [p["name"] for p in container(objects)["ports"]])
        self.assertFalse({k for k in configmap(objects) if k.startswith("CONSENTD_PUBLIC_")})

    def test_public_listener_has_a_service_and_port_of_its_own(self):
        objects = render(production_values())
        (port,) = [p for p in container(objects)["ports"] if p["name"] == "public"]
        self.assertEqual(port["containerPort"], 8080)
        data = configmap(objects)
        self.assertEqual(data["CONSENTD_PUBLIC_LISTEN"], "0.0.0.0:8080")
        self.assertEqual(data["CONSENTD_PUBLIC_TRUSTED_HOPS"], "1")
        self.assertEqual(data["CONSENTD_PUBLIC_KEY_RATE"], "1000")
        self.assertEqual(data["CONSENTD_PUBLIC_NETWORK_RATE"], "240")
        public = only(objects, "Service", f"{RELEASE}-public")
        (service_port,) = public["spec"]["ports"]
        self.assertEqual((service_port["port"], service_port["targetPort"]), (80, "public"))
        self.assertEqual(service_port["appProtocol"], "http")
        self.assertTrue(selects(public["spec"]["selector"], deployment(objects)["spec"]["template"]["metadata"]["labels"]))
        # The gRPC Service does not expose it, nor it gRPC.
        grpc = only(objects, "Service", RELEASE)
        self.assertEqual([p["targetPort"] for p in grpc["spec"]["ports"]], ["grpc"])
        # Only the ingress controller's namespace may reach it.
        policy = only(objects, "NetworkPolicy")
        (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "public"]
        self.assertEqual(rule["from"], [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}])
        ipv6 = configmap(render(merge(production_values(), {"config": {"listenHost": "::"}})))
        self.assertEqual(ipv6["CONSENTD_PUBLIC_LISTEN"], "[::]:8080")

    def test_notes_say_to_set_trusted_hops_behind_an_ingress(self):
        def notes(values):
            (text,) = [t for name, t in render_text(values).items() if name.endswith("NOTES.txt")]
            return text
        self.assertNotIn("trustedHops", notes(None))
        default_hops = notes({"public": {"enabled": True}})
        self.assertIn("WARNING: public.trustedHops is 0", default_hops)
        self.assertIn("Set\npublic.trustedHops", default_hops)
        behind_one = notes(production_values())
        self.assertNotIn("WARNING", behind_one)
        self.assertIn("through 1 trusted proxy hop(s)", behind_one)

    def test_autoscaling_owns_the_replica_count(self):
        objects = render(production_values())
        hpa = only(objects, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        self.assertEqual(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment(objects)["metadata"]["name"]})
        self.assertNotIn("replicas", deployment(objects)["spec"])
        self.assertEqual(deployment(render())["spec"]["replicas"], 2)
        self.assertNotIn("HorizontalPodAutoscaler", kinds(render()))

    def test_disruption_budget(self):
        self.assertEqual(only(render(), "PodDisruptionBudget")["spec"]["maxUnavailable"], 1)
        spec = only(render(production_values()), "PodDisruptionBudget")["spec"]
        self.assertEqual(spec["minAvailable"], 2)
        self.assertNotIn("maxUnavailable", spec)

    def test_network_policy_admits_the_listeners(self):
        for values in [None, production_values()]:
            objects = render(values)
            policy = only(objects, "NetworkPolicy")
            ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
            self.assertEqual(ports, {p["name"] for p in container(objects)["ports"]})
            self.assertTrue(selects(policy["spec"]["podSelector"]["matchLabels"],
                                    deployment(objects)["spec"]["template"]["metadata"]["labels"]))
        egress = only(render(production_values()), "NetworkPolicy")["spec"]["egress"]
        egress_ports = {p["port"] for rule in egress for p in rule["ports"]}
        self.assertEqual(egress_ports, {53, 5432, 4317})

    def test_service_monitor(self):
        self.assertNotIn("ServiceMonitor", kinds(render()))
        objects = render(production_values())
        monitor = only(objects, "ServiceMonitor")
        metrics = only(objects, "Service", f"{RELEASE}-metrics")
        self.assertTrue(selects(monitor["spec"]["selector"]["matchLabels"], metrics["metadata"]["labels"]))
        self.assertEqual(monitor["spec"]["namespaceSelector"], {"matchNames": [NAMESPACE]})
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertEqual(endpoint["port"], metrics["spec"]["ports"][0]["name"])
        self.assertEqual(endpoint["path"], "/metrics")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack")
        with self.assertRaises(helm.HelmRenderError):
            render({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})

    def test_tracing(self):
        self.assertFalse({k for k in configmap(render()) if k.startswith("OTEL_")})
        objects = render(production_values())
        data = configmap(objects)
        self.assertEqual(data["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector.observability.svc:4317")
        self.assertEqual(data["OTEL_TRACES_SAMPLER_ARG"], "0.05")
        env = env_by_name(container(objects))
        names = [e["name"] for e in container(objects)["env"]]
        # $(VAR) expands only from entries listed before it.
        self.assertLess(names.index("K8S_POD_NAME"), names.index("OTEL_RESOURCE_ATTRIBUTES"))
        self.assertIn("k8s.pod.name=$(K8S_POD_NAME)", env["OTEL_RESOURCE_ATTRIBUTES"]["value"])
        self.assertIn("deployment.environment=production", env["OTEL_RESOURCE_ATTRIBUTES"]["value"])


class ValuesSchema(unittest.TestCase):
    """What an install refuses, and that it says where and why."""

    CASES = {
        "wrong-type.yaml": ["/replicaCount", "want integer"],
        "unknown-key.yaml": ["/config", "'shutdownDelai' not allowed"],
        "secret-value.yaml": ["/secrets/databaseUrl", "'value' not allowed"],
        "bad-duration.yaml": ["/config/drainTimeout", "does not match pattern"],
        "root-user.yaml": ["/securityContext/runAsUser", "minimum"],
        "public-rate.yaml": ["/public/keyRate", "minimum"],
    }

    def test_invalid_values_files_are_refused(self):
        self.assertEqual(sorted(p.name for p in INVALID.glob("*.yaml")), sorted(self.CASES))
        with helm.Chart.load(CHART) as chart:
            for name, fragments in self.CASES.items():
                with self.subTest(values=name):
                    values = helm.values_from_yaml((INVALID / name).read_text())
                    # The schema check `helm install` makes before rendering.
                    with self.assertRaises(helm.HelmValuesError) as caught:
                        chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
                    message = str(caught.exception)
                    self.assertIn("values don't meet the specifications of the schema", message)
                    for fragment in fragments:
                        self.assertIn(fragment, message)
                    with self.assertRaises(helm.HelmValuesError):
                        chart.validate_schema(values)

    def test_transparency_log_settings_reach_the_environment(self):
        data = configmap(render())
        self.assertEqual(data["CONSENTD_TRANSPARENCY_LOG"], "false")
        self.assertEqual(data["CONSENTD_LOG_ORIGIN"], "consentd.invalid/log")
        on = {
            "transparencyLog": True,
            "logOrigin": "consent.example.com/log",
            "sequenceInterval": "500ms",
            "checkpointInterval": "5m",
            "checkpointLeaves": 250000,
        }
        data = configmap(render({"config": on}))
        self.assertEqual(
            [data[k] for k in ("CONSENTD_TRANSPARENCY_LOG", "CONSENTD_LOG_ORIGIN",
                               "CONSENTD_SEQUENCE_INTERVAL", "CONSENTD_CHECKPOINT_INTERVAL",
                               "CONSENTD_CHECKPOINT_LEAVES")],
            ["true", "consent.example.com/log", "500ms", "5m", "250000"],
        )
        # What the binary refuses at start is refused at install.
        with helm.Chart.load(CHART) as chart:
            for bad in [
                {"transparencyLog": "yes"},
                {"logOrigin": "consent.example.com/my log"},
                {"logOrigin": "a+b"},
                {"logOrigin": ""},
                {"checkpointInterval": "1 minute"},
                {"checkpointLeaves": 0},
                {"checkpointLeaves": 10000001},
            ]:
                with self.subTest(config=bad), self.assertRaises(helm.HelmValuesError):
                    chart.validate_schema({"config": bad})

    def test_valid_files_pass(self):
        with helm.Chart.load(CHART) as chart:
            chart.validate_schema(None)
            chart.validate_schema(production_values())
            chart.validate_schema(TLS_VALUES)

    def test_every_object_in_the_schema_is_closed(self):
        # additionalProperties: false wherever the chart defines the keys;
        # only maps (labels, resources) and Kubernetes objects stay open.
        with helm.Chart.load(CHART) as chart:
            schema = chart.schema
        open_ok = {"global", "affinity", "tolerations", "grpcFrom", "metricsFrom", "publicFrom", "to"}

        def walk(node, path):
            if isinstance(node, dict):
                if node.get("type") == "object" and "properties" in node:
                    self.assertIs(node.get("additionalProperties"), False, path)
                for key, child in node.get("properties", {}).items():
                    if key not in open_ok:
                        walk(child, f"{path}/{key}")
                for key in ("items", "additionalProperties"):
                    if isinstance(node.get(key), dict):
                        walk(node[key], f"{path}[{key}]")

        walk(schema, "")
        self.assertIs(schema["additionalProperties"], False)

    def test_defaults_match_the_schema_keys(self):
        # values.yaml documents every key the schema accepts, and no other.
        with helm.Chart.load(CHART) as chart:
            schema, defaults = chart.schema, chart.values

        def keys(schema_node, value_node, path):
            props = schema_node.get("properties")
            if not props or not isinstance(value_node, dict):
                return
            self.assertEqual(set(value_node) - set(props), set(), path)
            self.assertEqual(set(props) - set(value_node) - {"global"}, set(), path)
            for key, child in props.items():
                if key in value_node:
                    keys(child, value_node[key], f"{path}/{key}")

        keys(schema, defaults, "")


if __name__ == "__main__":
    unittest.main()
