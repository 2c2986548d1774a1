"""The deployment pieces agree with each other: deploy/ manifests, deploy/falco/ values, the brokerd.conf in the
ConfigMap, the Dockerfile and the Makefile. Static checks only: no brokerd binary, no cluster, no Docker.

(These tests take none of conftest's server fixtures, so each runs once, not once per target.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
MAKEFILE = ROOT / "Makefile"

# What every piece must agree on (README / docs/falco.md).
NAMESPACE = "falco-alerts"
PORTS = {"client": 4222, "monitor": 8222, "falco-http": 2801}
CONFIG_PATH = "/etc/brokerd/brokerd.conf"


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_all() -> dict[Path, list]:
    return {p: [d for d in yaml.safe_load_all(p.read_text()) if d is not None] for p in yaml_files()}


DOCS = load_all() if DEPLOY.is_dir() else {}


def k8s_objects() -> list[dict]:
    return [d for docs in DOCS.values() for d in docs
            if isinstance(d, dict) and "apiVersion" in d and "kind" in d and d["kind"] != "Kustomization"]


def one(kind: str, name: str | None = None) -> dict:
    found = [o for o in k8s_objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def services() -> list[dict]:
    return [o for o in k8s_objects() if o["kind"] == "Service"]


def client_service() -> dict:
    found = [s for s in services() if s["spec"].get("clusterIP") != "None"]
    assert len(found) == 1, "expected one ClusterIP Service"
    return found[0]


def statefulset() -> dict:
    return one("StatefulSet")


def pod_spec() -> dict:
    return statefulset()["spec"]["template"]["spec"]


def container() -> dict:
    cs = pod_spec()["containers"]
    assert len(cs) == 1
    return cs[0]


def container_ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container()["ports"]}


def resolve_port(port) -> int:
    """A port given by number or by container port name, as Kubernetes resolves it."""
    if isinstance(port, int):
        return port
    ports = container_ports()
    assert port in ports, f"port name {port!r} is not a container port ({sorted(ports)})"
    return ports[port]


def brokerd_conf_text() -> str:
    cm = one("ConfigMap")
    key = config_key()
    assert key in cm["data"], f"ConfigMap has no key {key!r}"
    return cm["data"][key]


def config_args() -> list[str]:
    c = container()
    return list(c.get("command", [])) + list(c.get("args", []))


def config_key() -> str:
    """The ConfigMap key the container's `-c FILE` ends up reading (through volume and mount)."""
    args = config_args()
    assert "-c" in args, f"container args {args} have no -c FILE"
    path = args[args.index("-c") + 1]
    mount_dir, file_name = path.rsplit("/", 1)
    mounts = [m for m in container()["volumeMounts"] if m["mountPath"].rstrip("/") == mount_dir]
    assert len(mounts) == 1, f"no volumeMount at {mount_dir}"
    assert "subPath" not in mounts[0]
    volume = next(v for v in pod_spec()["volumes"] if v["name"] == mounts[0]["name"])
    assert "configMap" in volume, f"{mount_dir} is not a ConfigMap volume"
    assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    items = volume["configMap"].get("items")
    if not items:
        return file_name
    keys = [i["key"] for i in items if i["path"] == file_name]
    assert keys, f"ConfigMap volume has no item with path {file_name}"
    return keys[0]


# --------------------------------------------------------------------------
# brokerd.conf (nats-server syntax, not YAML): a small block-aware regex reader
# --------------------------------------------------------------------------

def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" or line.startswith("//", i):
            break
        out.append(ch)
    return "".join(out)


def parse_conf(text: str) -> dict[str, str]:
    """Flat view of a brokerd.conf: {"port": "4222", "jetstream.store_dir": "/data", ...}.

    Handles one key per line, `key { ... }` blocks (nested) and `key { a: 1, b: 2 }` on one line.
    """
    result: dict[str, str] = {}
    stack: list[str] = []

    def put(key: str, value: str) -> None:
        v = value.strip().rstrip(",").strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        result[".".join(stack + [key])] = v

    for raw in text.splitlines():
        line = _strip_comment(raw).strip()
        while line:
            if line.startswith("}"):
                stack.pop()
                line = line[1:].strip().lstrip(",").strip()
                continue
            m = re.match(r"^([A-Za-z_][\w.-]*)\s*[:=]?\s*\{(.*)$", line)
            if m:
                stack.append(m.group(1))
                line = m.group(2).strip()
                continue
            m = re.match(r"""^([A-Za-z_][\w.-]*)\s*(?:[:=]\s*|\s+)("[^"]*"|'[^']*'|[^,}\s]+)\s*,?\s*(.*)$""", line)
            assert m, f"cannot read brokerd.conf line: {raw!r}"
            put(m.group(1), m.group(2))
            line = m.group(3).strip()
    assert not stack, f"unclosed block(s) {stack} in brokerd.conf"
    return result


_SIZE = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10,
         "M": 1 << 20, "MB": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20,
         "G": 1 << 30, "GB": 1 << 30, "GI": 1 << 30, "GIB": 1 << 30,
         "T": 1 << 40, "TB": 1 << 40, "TI": 1 << 40, "TIB": 1 << 40}


def size_bytes(text: str) -> int:
    """nats-server sizes (1MB = 2^20) and Kubernetes quantities (10Gi)."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(text))
    assert m, f"not a size: {text!r}"
    return int(m.group(1)) * _SIZE[m.group(2).upper()]


def conf() -> dict[str, str]:
    return parse_conf(brokerd_conf_text())


def conf_ports() -> dict[str, int]:
    c = conf()
    return {"client": int(c["port"]), "monitor": int(c["http_port"]), "falco-http": int(c["falco.http_port"])}


# --------------------------------------------------------------------------
# Dockerfile / Makefile
# --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    ins = dockerfile_instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def dockerfile_uid() -> int:
    users = [a for w, a in runtime_stage() if w == "USER"]
    assert users, "the runtime stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]!r} should be numeric (runAsNonRoot needs a numeric uid)"
    return int(uid)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_every_yaml_file_parses():
    assert yaml_files(), "no YAML files under deploy/"
    for path, docs in DOCS.items():
        assert docs, f"{path.relative_to(ROOT)} has no YAML documents"
    kinds = {o["kind"] for o in k8s_objects()}
    assert {"Namespace", "ConfigMap", "StatefulSet", "Service", "NetworkPolicy"} <= kinds


def test_kustomization_lists_every_manifest():
    kust = DOCS[DEPLOY / "kustomization.yaml"][0]
    assert kust["namespace"] == NAMESPACE
    listed = {DEPLOY / r for r in kust["resources"]}
    for r in listed:
        assert r.is_file(), f"kustomization lists missing {r.relative_to(ROOT)}"
    manifests = {p for p, docs in DOCS.items()
                 if any(isinstance(d, dict) and "kind" in d and d["kind"] != "Kustomization" for d in docs)}
    assert manifests == listed, "kustomization.yaml resources and the manifest files in deploy/ differ"
    images = {i["name"] for i in kust.get("images", [])}
    assert container()["image"].split(":")[0] in images, "kustomization images does not rewrite the container image"


def test_everything_in_one_namespace():
    assert one("Namespace")["metadata"]["name"] == NAMESPACE
    for o in k8s_objects():
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, f"{o['kind']} {o['metadata']['name']}"


def test_brokerd_conf_reader():
    c = parse_conf('port: 1 # c\nhttp_port = 2\njetstream { store_dir: "/x y", max_file_store: 8GB }\n'
                   "falco {\n  http_port 3 // c\n  map_sidekick_subjects: true\n}\n")
    assert c == {"port": "1", "http_port": "2", "jetstream.store_dir": "/x y", "jetstream.max_file_store": "8GB",
                 "falco.http_port": "3", "falco.map_sidekick_subjects": "true"}
    assert size_bytes("8GB") == 8 << 30 and size_bytes("10Gi") == 10 << 30 and size_bytes("1MB") == 1 << 20


def test_config_ports_container_ports_and_service_ports_agree():
    assert conf_ports() == PORTS
    assert container_ports() == PORTS
    assert all(p.get("protocol", "TCP") == "TCP" for p in container()["ports"])
    for svc in services():
        name = svc["metadata"]["name"]
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert ports == PORTS, f"Service {name} ports"
        for p in svc["spec"]["ports"]:
            assert resolve_port(p.get("targetPort", p["port"])) == p["port"], f"Service {name} {p['name']}"


def test_config_listens_on_all_interfaces_with_jetstream_and_falco():
    c = conf()
    assert c.get("host", "0.0.0.0") in ("0.0.0.0", "::"), "brokerd must listen beyond loopback in a pod"
    assert "jetstream.store_dir" in c
    assert c["falco.map_sidekick_subjects"] == "true"


def test_service_selectors_match_pod_labels():
    sts = statefulset()
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for svc in services():
        sel = svc["spec"]["selector"]
        assert sel and sel.items() <= labels.items(), f"Service {svc['metadata']['name']} selects no brokerd pod"


def test_statefulset_has_its_headless_service():
    sts = statefulset()
    assert sts["spec"]["replicas"] == 1
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert client_service()["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_probes_are_healthz_on_the_monitor_port():
    c = container()
    assert "livenessProbe" in c and "readinessProbe" in c
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in c:
            get = c[kind]["httpGet"]
            assert get["path"] == "/healthz", kind
            assert resolve_port(get["port"]) == conf_ports()["monitor"] == 8222, kind


def test_store_dir_is_the_persistent_volume():
    store_dir = conf()["jetstream.store_dir"].rstrip("/")
    mounts = {m["mountPath"].rstrip("/"): m["name"] for m in container()["volumeMounts"]}
    assert store_dir in mounts, f"store_dir {store_dir} is not a volumeMount"
    claims = {t["metadata"]["name"]: t for t in statefulset()["spec"]["volumeClaimTemplates"]}
    assert mounts[store_dir] in claims, f"{store_dir} is not backed by a volumeClaimTemplate"
    claim = claims[mounts[store_dir]]
    size = size_bytes(claim["spec"]["resources"]["requests"]["storage"])
    assert size == 10 << 30
    if "jetstream.max_file_store" in conf():
        assert size_bytes(conf()["jetstream.max_file_store"]) < size, "max_file_store must fit on the volume"
    assert store_dir in [a for w, a in runtime_stage() if w == "VOLUME"][0].replace('"', "").strip("[]").split()


def test_config_file_path_matches_configmap_and_mount():
    assert config_args()[config_args().index("-c") + 1] == CONFIG_PATH
    assert config_key() == "brokerd.conf"
    cmd = [a for w, a in runtime_stage() if w == "CMD"][-1]
    assert re.sub(r"\s", "", cmd) == f'["-c","{CONFIG_PATH}"]'


def test_security_context_matches_dockerfile_user():
    uid = dockerfile_uid()
    pod_sc, c_sc = pod_spec()["securityContext"], container()["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and c_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == c_sc["runAsUser"] == uid == 10001
    assert pod_sc.get("fsGroup") == uid, "the volume must be writable by the brokerd user"
    assert c_sc["readOnlyRootFilesystem"] is True
    assert c_sc["allowPrivilegeEscalation"] is False
    assert c_sc["capabilities"]["drop"] == ["ALL"]
    res = container()["resources"]
    assert res["requests"] and res["limits"]


def test_dockerfile_ports_entrypoint_and_stages():
    ins = dockerfile_instructions()
    froms = [a for w, a in ins if w == "FROM"]
    assert len(froms) >= 2 and re.search(r"swift:.*-bookworm", " ".join(froms)) and "debian:bookworm-slim" in froms[-1]
    assert any("swift build -c release --product brokerd" in a and "--static-swift-stdlib" in a
               for w, a in ins if w == "RUN")
    exposed = {int(p.split("/")[0]) for w, a in runtime_stage() if w == "EXPOSE" for p in a.split()}
    assert exposed == set(PORTS.values()) == set(conf_ports().values())
    entry = [a for w, a in runtime_stage() if w == "ENTRYPOINT"][-1]
    assert re.sub(r"\s", "", entry) == '["/usr/local/bin/brokerd"]'
    runtime_run = " ".join(a for w, a in runtime_stage() if w == "RUN")
    assert "liblz4-1" in runtime_run and "ca-certificates" in runtime_run


def test_dockerignore_keeps_what_the_build_copies():
    ignored = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")]
    assert ".git" in ignored and any(l.startswith(".build") for l in ignored)
    copied = {a.split()[0].rstrip("/") for w, a in dockerfile_instructions() if w == "COPY" and "--from" not in a}
    for c in copied:
        assert c not in ignored, f".dockerignore drops {c}, which the Dockerfile copies"


def test_network_policy_ports_are_pod_ports():
    np = one("NetworkPolicy")
    labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    pod_ports = set(container_ports().values())
    allowed: dict[str, set[int]] = {}
    for rule in np["spec"]["ingress"]:
        ports = {resolve_port(p["port"]) for p in rule["ports"]}
        assert ports <= pod_ports, f"NetworkPolicy opens {ports - pod_ports}, not a brokerd port"
        for peer in rule["from"]:
            ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            key = ns or ("labelled pods" if peer.get("podSelector") else "?")
            allowed.setdefault(key, set()).update(ports)
    assert allowed.get("falco", set()) >= {4222, 2801}
    assert 4222 in allowed.get("labelled pods", set())
    assert allowed.get("monitoring") == {8222}


def _service_of(host: str) -> tuple[str, str]:
    parts = host.split(".")
    assert len(parts) >= 3 and parts[2] == "svc", f"{host} is not <service>.<namespace>.svc[.cluster.local]"
    assert parts[3:] in ([], ["cluster", "local"]), host
    return parts[0], parts[1]


def _assert_points_at_brokerd(url: str, port_name: str) -> None:
    u = urlsplit(url)
    name, ns = _service_of(u.hostname)
    svc = client_service()
    assert (name, ns) == (svc["metadata"]["name"], svc["metadata"]["namespace"]), url
    assert u.port == PORTS[port_name] == conf_ports()[port_name], url


def test_falco_http_output_points_at_the_service():
    for rel, get in (("falco/values.yaml", lambda d: d["falco"]), ("falco/falco.yaml", lambda d: d)):
        falco = get(DOCS[DEPLOY / rel][0])
        assert falco["json_output"] is True, rel
        assert falco["http_output"]["enabled"] is True, rel
        url = falco["http_output"]["url"]
        assert url.startswith("http://") and url.endswith("/"), rel
        _assert_points_at_brokerd(url, "falco-http")


def test_falco_pipe_and_sidekick_point_at_the_nats_port():
    for rel in ("falco/values.yaml", "falco/falco.yaml"):
        text = (DEPLOY / rel).read_text()
        programs = re.findall(r'^\s*#\s*program:\s*"([^"]+)"', text, re.M)
        assert programs, f"{rel}: no commented program_output alternative"
        argv = shlex.split(programs[0])
        assert argv[:2] == ["brokerd", "falco-pipe"] and "--server" in argv, rel
        _assert_points_at_brokerd(argv[argv.index("--server") + 1], "client")
        assert re.search(r"^\s*#\s*keep_alive:\s*true", text, re.M), rel
    sidekick = DOCS[DEPLOY / "falco/falcosidekick-values.yaml"][0]
    _assert_points_at_brokerd(sidekick["config"]["nats"]["hostport"], "client")


def test_makefile_image_and_push_targets():
    text = MAKEFILE.read_text()
    assert re.search(r"^IMAGE\s*\?=\s*brokerd:dev\s*$", text, re.M)
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    assert "image" in phony and "push" in phony
    assert re.search(r"^image:.*\n\tdocker build -t \$\(IMAGE\) \.\s*$", text, re.M)
    assert re.search(r"^push:.*\n\tdocker push \$\(IMAGE\)\s*$", text, re.M)


def test_docs_name_files_that_exist():
    text = (ROOT / "docs" / "falco.md").read_text()
    paths = set(re.findall(r"\b(deploy/[\w./-]+\.ya?ml)\b", text))
    assert paths, "docs/falco.md names no deploy/ files"
    for p in paths:
        assert (ROOT / p).is_file(), f"docs/falco.md names {p}, which does not exist"
    assert "docs/falco.md" in (ROOT / "README.md").read_text()
