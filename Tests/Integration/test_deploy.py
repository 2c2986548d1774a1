"""The deployment pieces agree with each other: deploy/ manifests (with cert-manager's certificates), deploy/falco/
values, the brokerd.conf in the ConfigMap, the Dockerfile and the Makefile. No cluster, no Docker.

The static checks take none of conftest's server fixtures, so each runs once. The last tests start the real
servers on the ConfigMap's brokerd.conf (certificates made at run time, bcrypt hashes from `brokerd passwd`) and
check the secured layout over real sockets: on brokerd and on nats-server (which gets the file without brokerd's
`falco { }` block: it refuses that key as `unknown field "falco"`).
"""

from __future__ import annotations

import json
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
FALCO_NAMESPACE = "falco"
CERT_MANAGER_NAMESPACE = "cert-manager"
PORTS = {"client": 4222, "monitor": 8222, "falco-http": 2801}
CONFIG_PATH = "/etc/brokerd/brokerd.conf"
USERS_SECRET = "brokerd-users"
# The users of the secured brokerd.conf and the Secret keys holding their bcrypt hashes (None: no password).
USERS = {"falco-ingest": None, "falco-pipe": "falco-pipe", "sidekick": "sidekick", "responder": "responder",
         "playbook": "playbook", "bridge": "bridge", "admin": "admin"}
# Falco chart: certs.existingClientSecret is mounted here (charts/falco/templates/pod-template.tpl).
FALCO_CHART_CLIENT_CERT_DIR = "/etc/falco/certs/client"


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
    """brokerd's arguments (the command is the shell wrapper that checks the hashes, then execs brokerd "$@")."""
    return list(container().get("args", []))


def wrapper_script() -> str:
    cmd = container()["command"]
    assert cmd[:2] == ["/bin/sh", "-c"] and cmd[3:] == ["brokerd"], cmd
    return cmd[2]


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

    Handles one key per line, `key { ... }` blocks (nested) and `key { a: 1, b: 2 }` on one line. An array
    (`key: [ ... ]`, over several lines too) is kept as its raw text, comments left out.
    """
    result: dict[str, str] = {}
    stack: list[str] = []
    array: list = []  # [key, raw text so far, bracket depth] while inside an array

    def put(key: str, value: str) -> None:
        v = value.strip().rstrip(",").strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        result[".".join(stack + [key])] = v

    def depth(s: str) -> int:
        s = re.sub(r'"[^"]*"|\'[^\']*\'', "", s)
        return s.count("[") + s.count("{") - s.count("]") - s.count("}")

    for raw in text.splitlines():
        line = _strip_comment(raw).strip()
        if array:
            array[1] += "\n" + line
            array[2] += depth(line)
            if array[2] <= 0:
                put(array[0], array[1])
                array = []
            continue
        while line:
            m = re.match(r"^([A-Za-z_][\w.-]*)\s*[:=]?\s*(\[.*)$", line)
            if m:
                if depth(m.group(2)) <= 0:
                    put(m.group(1), m.group(2))
                else:
                    array = [m.group(1), m.group(2), depth(m.group(2))]
                break
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
    assert not stack and not array, f"unclosed block(s) {stack} or array {array[:1]} in brokerd.conf"
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
    return {"client": int(c["port"]), "monitor": int(c["https_port"]), "falco-http": int(c["falco.http_port"])}


def certificates() -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "Certificate"}


def cluster_issuers() -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "ClusterIssuer"}


def mounted_secret(mount_dir: str) -> str:
    """The Secret behind the container's volumeMount at mount_dir (no subPath: rotations must reach the files)."""
    mounts = [m for m in container()["volumeMounts"] if m["mountPath"].rstrip("/") == mount_dir.rstrip("/")]
    assert len(mounts) == 1, f"no volumeMount at {mount_dir}"
    assert "subPath" not in mounts[0], "a subPath mount never sees a renewed certificate"
    volume = next(v for v in pod_spec()["volumes"] if v["name"] == mounts[0]["name"])
    assert "secret" in volume, f"{mount_dir} is not a Secret volume"
    return volume["secret"]["secretName"]


def conf_variables() -> set[str]:
    """The $NAMES brokerd.conf reads (outside comments and quoted strings)."""
    names = set()
    for raw in brokerd_conf_text().splitlines():
        line = re.sub(r'"[^"]*"', '""', _strip_comment(raw))
        names.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", line))
    return names


def hours(duration: str) -> float:
    m = re.fullmatch(r"(\d+)h", duration)
    assert m, f"cert-manager duration {duration!r}: write it in hours"
    return float(m.group(1))


def service_dns_names() -> set[str]:
    names = set()
    for svc in services():
        n = svc["metadata"]["name"]
        names |= {n, f"{n}.{NAMESPACE}", f"{n}.{NAMESPACE}.svc", f"{n}.{NAMESPACE}.svc.cluster.local"}
    pod = f"{statefulset()['metadata']['name']}-0.{statefulset()['spec']['serviceName']}"
    names |= {pod, f"{pod}.{NAMESPACE}", f"{pod}.{NAMESPACE}.svc", f"{pod}.{NAMESPACE}.svc.cluster.local"}
    return names


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
    assert {"Namespace", "ConfigMap", "StatefulSet", "Service", "NetworkPolicy", "Certificate", "ClusterIssuer"} <= kinds
    for o in k8s_objects():
        assert o["kind"] != "Secret", f"no Secret in deploy/ (passwords and keys are made at install): {o['metadata']}"


def test_kustomization_lists_every_manifest():
    kust = DOCS[DEPLOY / "kustomization.yaml"][0]
    # A namespace override would move the CA (cert-manager) and Falco's certificate (falco) into falco-alerts.
    assert "namespace" not in kust
    listed = {DEPLOY / r for r in kust["resources"]}
    for r in listed:
        assert r.is_file(), f"kustomization lists missing {r.relative_to(ROOT)}"
    manifests = {p for p, docs in DOCS.items()
                 if any(isinstance(d, dict) and "kind" in d and d["kind"] != "Kustomization" for d in docs)}
    assert manifests == listed, "kustomization.yaml resources and the manifest files in deploy/ differ"
    images = {i["name"] for i in kust.get("images", [])}
    assert container()["image"].split(":")[0] in images, "kustomization images does not rewrite the container image"


def test_every_object_names_its_namespace():
    assert one("Namespace")["metadata"]["name"] == NAMESPACE
    client_secret = DOCS[DEPLOY / "falco/values.yaml"][0]["certs"]["existingClientSecret"]
    for o in k8s_objects():
        where = f"{o['kind']} {o['metadata']['name']}"
        if o["kind"] in ("Namespace", "ClusterIssuer"):
            assert "namespace" not in o["metadata"], where
        elif o["kind"] == "Certificate" and o["spec"].get("isCA"):
            assert o["metadata"]["namespace"] == CERT_MANAGER_NAMESPACE, where
        elif o["kind"] == "Certificate" and o["spec"]["secretName"] == client_secret:
            assert o["metadata"]["namespace"] == FALCO_NAMESPACE, where
        else:
            assert o["metadata"].get("namespace") == NAMESPACE, where


def test_certificate_chain():
    issuers, certs = cluster_issuers(), certificates()
    assert all(c["apiVersion"] == "cert-manager.io/v1" for c in list(issuers.values()) + list(certs.values()))
    [bootstrap] = [i for i in issuers.values() if "selfSigned" in i["spec"]]
    [ca_issuer] = [i for i in issuers.values() if "ca" in i["spec"]]
    [ca] = [c for c in certs.values() if c["spec"].get("isCA")]
    assert ca["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                       "name": bootstrap["metadata"]["name"]}
    # A CA ClusterIssuer reads its Secret from cert-manager's cluster resource namespace.
    assert ca_issuer["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert ca["metadata"]["namespace"] == CERT_MANAGER_NAMESPACE
    leaves = [c for c in certs.values() if not c["spec"].get("isCA")]
    assert len(leaves) == 2
    for c in certs.values():
        assert 0 < hours(c["spec"]["renewBefore"]) < hours(c["spec"]["duration"]), c["metadata"]["name"]
    for c in leaves:
        assert c["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                          "name": ca_issuer["metadata"]["name"]}, c["metadata"]["name"]
        assert hours(c["spec"]["duration"]) <= 24 * 366, "leaf certificates should be short-lived"
        assert c["spec"]["privateKey"].get("rotationPolicy") == "Always"
        assert "server auth" in c["spec"]["usages"] or "client auth" in c["spec"]["usages"]


def test_server_certificate_names_and_mount():
    [server] = [c for c in certificates().values() if "server auth" in c["spec"].get("usages", [])]
    assert server["metadata"]["namespace"] == NAMESPACE
    missing = service_dns_names() - set(server["spec"]["dnsNames"])
    assert not missing, f"brokerd's certificate lacks {sorted(missing)}"
    assert "client auth" not in server["spec"]["usages"]
    tls_dir = "/etc/brokerd-tls"
    assert mounted_secret(tls_dir) == server["spec"]["secretName"]
    c = conf()
    # The client port, the HTTPS monitor (same top-level block) and the Falco endpoint use cert-manager's files.
    for block in ("tls", "falco.tls"):
        assert c[f"{block}.cert_file"] == f"{tls_dir}/tls.crt", block
        assert c[f"{block}.key_file"] == f"{tls_dir}/tls.key", block
    assert c["falco.tls.ca_file"] == f"{tls_dir}/ca.crt" and c["falco.tls.verify"] == "true"
    volume = next(v for v in pod_spec()["volumes"] if v.get("secret", {}).get("secretName") == server["spec"]["secretName"])
    assert volume["secret"]["defaultMode"] == 0o440, "the key: readable by group fsGroup only"
    # Rotation needs no restart (brokerd watches the files): the Secret is mounted without subPath, so the
    # kubelet's in-place updates reach the files brokerd watches.
    mounts = [m for m in container()["volumeMounts"] if m["name"] == volume["name"]]
    assert mounts and all("subPath" not in m for m in mounts)


def test_secured_brokerd_conf():
    c = conf()
    assert "http_port" not in c, "plain HTTP monitoring: use https_port"
    assert "allow_non_tls" not in c and "no_auth_user" not in c
    assert "authorization.default_permissions" not in str(c)
    assert "tls.verify" not in c, "falcosidekick cannot present a client certificate on 4222"
    assert c["falco.user"] == "falco-ingest"
    text = brokerd_conf_text()
    live = "\n".join(_strip_comment(l) for l in text.splitlines())
    assert set(re.findall(r"\buser:\s*([\w-]+)", live)) == set(USERS), "the users of brokerd.conf"
    for user, key in USERS.items():
        entry = re.search(r"\{\s*user:\s*" + re.escape(user) + r"\b[^\n]*", live).group(0)
        if key is None:
            assert "password" not in entry and 'allowed_connection_types: ["IN_PROCESS"]' in entry, user
        else:
            assert re.search(r"password:\s*\$[A-Z_]+_PASSWORD_HASH\b", entry), f"{user}: a hash from the environment"
    assert "$2a$" not in text and "$2b$" not in text and not re.search(r"password:\s*[\"'\w]", live), \
        "no password (not even a hash) in the ConfigMap"


def test_passwords_come_from_the_secret():
    env = {e["name"]: e for e in container().get("env", [])}
    names = conf_variables()
    assert names, "brokerd.conf reads no variables"
    for name in names:
        assert name in env, f"brokerd.conf reads ${name}, which the container does not set"
    keys = {}
    for name, e in env.items():
        ref = e["valueFrom"]["secretKeyRef"]
        assert ref["name"] == USERS_SECRET, name
        keys[name] = ref["key"]
        if name in names:
            assert not ref.get("optional", False), f"{name}: a missing Secret or key must stop the pod"
    assert {keys[n] for n in names} == {k for k in USERS.values() if k}
    assert keys.get("BRIDGE_PASSWORD") == "bridge-password" and env["BRIDGE_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"]
    docs = (ROOT / "docs" / "falco.md").read_text()
    section = docs[docs.index("## Secured setup"):]
    assert f"create secret generic {USERS_SECRET}" in section
    for key in set(keys.values()):
        assert f"{key}=" in section, f"docs/falco.md's Secured setup does not put the key {key} in the Secret"


def test_the_wrapper_checks_every_hash_then_execs_brokerd():
    script = wrapper_script()
    checked = set(re.search(r"^for v in (.*); do$", script, re.M).group(1).split())
    assert checked == {n for n in conf_variables() if n.endswith("_PASSWORD_HASH")}
    entry = json.loads([a for w, a in runtime_stage() if w == "ENTRYPOINT"][-1])[0]
    assert script.rstrip().splitlines()[-1] == f'exec {entry} "$@"'


def test_brokerd_conf_reader():
    c = parse_conf('port: 1 # c\nhttp_port = 2\njetstream { store_dir: "/x y", max_file_store: 8GB }\n'
                   "falco {\n  http_port 3 // c\n  map_sidekick_subjects: true\n}\n")
    assert c == {"port": "1", "http_port": "2", "jetstream.store_dir": "/x y", "jetstream.max_file_store": "8GB",
                 "falco.http_port": "3", "falco.map_sidekick_subjects": "true"}
    c = parse_conf('a { users: [\n  { user: x, p: { s: ["y]"] } } # ]\n]\n  b: 1\n}\nlist: [1, 2]\n')
    assert c == {"a.users": '[\n{ user: x, p: { s: ["y]"] } }\n]', "a.b": "1", "list": "[1, 2]"}
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
            assert get["scheme"] == "HTTPS", kind
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
    builds = [a for w, a in ins if w == "RUN" and "swift build -c release --product brokerd" in a]
    assert len(builds) == 1 and "--static-swift-stdlib" in builds[0]
    # The image's binary is built with the Makefile's RELEASE_FLAGS (what `make run` and `make bench` measure).
    makefile = re.sub(r"\\\n", " ", MAKEFILE.read_text())
    release_flags = re.search(r"^RELEASE_FLAGS\s*\?=\s*(.*)$", makefile, re.M).group(1)
    workdir = [a for w, a in ins if w == "WORKDIR"][0]
    wanted = release_flags.replace("$(CURDIR)", workdir).split()
    used = next(part for part in builds[0].split("&&") if "swift build -c release --product brokerd" in part).split()
    assert [t for t in used if t in wanted] == wanted, (wanted, used)
    exposed = {int(p.split("/")[0]) for w, a in runtime_stage() if w == "EXPOSE" for p in a.split()}
    assert exposed == set(PORTS.values()) == set(conf_ports().values())
    entry = [a for w, a in runtime_stage() if w == "ENTRYPOINT"][-1]
    assert re.sub(r"\s", "", entry) == '["/usr/local/bin/brokerd"]'
    runtime_run = " ".join(a for w, a in runtime_stage() if w == "RUN")
    assert "ca-certificates" in runtime_run and "libcrypt1" in runtime_run
    # Every library but glibc and libcrypt is linked statically, and the build stage fails when one is not
    # (or when ldd says nothing).
    assert "ldd /out/usr/local/bin/brokerd" in builds[0] and '[ -n "$libs" ]' in builds[0]


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


def client_certificate() -> dict:
    [c] = [c for c in certificates().values() if "client auth" in c["spec"].get("usages", [])]
    return c


def test_falco_http_output_is_https_with_the_client_certificate():
    values = DOCS[DEPLOY / "falco/values.yaml"][0]
    client = client_certificate()
    assert client["metadata"]["namespace"] == FALCO_NAMESPACE, "Falco mounts Secrets of its own namespace only"
    # The chart mounts certs.existingClientSecret at /etc/falco/certs/client; cert-manager's keys are
    # tls.crt, tls.key, ca.crt.
    assert values["certs"]["existingClientSecret"] == client["spec"]["secretName"]
    [server] = [c for c in certificates().values() if "server auth" in c["spec"].get("usages", [])]
    for rel, get in (("falco/values.yaml", lambda d: d["falco"]), ("falco/falco.yaml", lambda d: d)):
        falco = get(DOCS[DEPLOY / rel][0])
        assert falco["json_output"] is True, rel
        out = falco["http_output"]
        assert out["enabled"] is True, rel
        url = out["url"]
        assert url.startswith("https://") and url.endswith("/"), rel
        _assert_points_at_brokerd(url, "falco-http")
        assert urlsplit(url).hostname in server["spec"]["dnsNames"], f"{rel}: the URL's host is not in the certificate"
        # Falco's option names (falco.yaml; userspace/falco/outputs_http.cpp: CURLOPT_CAINFO/SSLCERT/SSLKEY).
        assert out["insecure"] is False and out["mtls"] is True, rel
        assert (out["ca_cert"], out["client_cert"], out["client_key"]) == tuple(
            f"{FALCO_CHART_CLIENT_CERT_DIR}/{k}" for k in ("ca.crt", "tls.crt", "tls.key")), rel


def commented_program(rel: str) -> list[str]:
    """The commented program_output block of a Falco file, read as YAML; its program as an argv."""
    text = (DEPLOY / rel).read_text()
    lines = re.findall(r"^(\s*)#( *)(program_output:.*(?:\n\s*#\s{3,}.*)*)", text, re.M)
    assert lines, f"{rel}: no commented program_output alternative"
    block = "\n".join(re.sub(r"^\s*# ?", "", l) for l in lines[0][2].splitlines())
    po = yaml.safe_load(block)["program_output"]
    assert po["enabled"] is True and po["keep_alive"] is True, rel
    return shlex.split(po["program"])


def test_falco_pipe_and_sidekick_connect_with_tls_and_their_users():
    for rel in ("falco/values.yaml", "falco/falco.yaml"):
        argv = commented_program(rel)
        assert argv[:2] == ["brokerd", "falco-pipe"], rel
        opts = dict(zip(argv[2::2], argv[3::2]))
        assert opts["--server"].startswith("tls://"), rel
        _assert_points_at_brokerd(opts["--server"], "client")
        assert opts["--tlsca"] == f"{FALCO_CHART_CLIENT_CERT_DIR}/ca.crt", rel
        assert opts["--user"] == "falco-pipe" and "--pass" not in opts, rel  # the password: NATS_PASSWORD
    sidekick = DOCS[DEPLOY / "falco/falcosidekick-values.yaml"][0]
    # falcosidekick's NewClient accepts http(s):// and nats(s):// only; nats.go turns to TLS on tls_required.
    hostport = sidekick["config"]["nats"]["hostport"]
    assert hostport.startswith("nats://") and "@" not in hostport
    _assert_points_at_brokerd(hostport, "client")
    env = {e["name"]: e for e in sidekick["config"]["extraEnv"]}
    with_password = urlsplit(env["NATS_HOSTPORT"]["value"])
    assert with_password.username == "sidekick" and with_password.password == "$(SIDEKICK_NATS_PASSWORD)"
    _assert_points_at_brokerd(env["NATS_HOSTPORT"]["value"], "client")
    names = list(env)
    assert names.index("SIDEKICK_NATS_PASSWORD") < names.index("NATS_HOSTPORT"), "$(VAR) needs VAR defined before"
    assert env["SIDEKICK_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    # brokerd's CA for Go's system roots: a directory holding ca.crt only.
    [mount] = [m for m in sidekick["extraVolumeMounts"] if m["mountPath"] in env["SSL_CERT_DIR"]["value"].split(":")]
    [volume] = [v for v in sidekick["extraVolumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == client_certificate()["spec"]["secretName"]
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


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


# --------------------------------------------------------------------------
# the shipped brokerd.conf on the real servers
# --------------------------------------------------------------------------

import asyncio  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from harness import wait_for_port, HOST, ServerStartError, free_port, start_server  # noqa: E402
from harness import Target, resolve_target  # noqa: E402

ALERT = json.dumps({"time": "2026-01-02T03:04:05.678901234Z", "priority": "Critical", "rule": "Deploy check",
                    "output": "deploy check", "hostname": "node-1", "source": "syscall"}).encode()


def strip_block(text: str, key: str) -> str:
    """The config without its top-level `key { ... }` block (nats-server refuses brokerd's `falco`)."""
    m = re.search(rf"^\s*{key}\s*\{{", text, re.M)
    assert m, key
    depth, i = 0, m.end() - 1
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            return text[:m.start()] + text[i:]


@pytest.fixture(scope="module")
def brokerd_bin() -> str:
    t = resolve_target("brokerd")
    if t.skip_reason:
        pytest.skip(f"brokerd: {t.skip_reason}")
    return t.binary


@pytest.fixture(scope="module")
def passwords(brokerd_bin) -> dict[str, tuple[str, str]]:
    """user -> (password, bcrypt hash), both from `brokerd passwd --generate` (a low cost keeps logins quick)."""
    out = {}
    for user, key in USERS.items():
        if key:
            r = subprocess.run([brokerd_bin, "passwd", "--generate", "--cost", "6"], capture_output=True, timeout=30)
            assert r.returncode == 0, r.stderr
            password, hashed = r.stdout.decode().split()
            assert hashed.startswith("$2") and len(password) == 22
            out[user] = (password, hashed)
    return out


class Shipped:
    """The ConfigMap's brokerd.conf, running on 127.0.0.1 with test certificates in place of cert-manager's."""

    def __init__(self, server, falco_port, monitor_port, ca, falco_client):
        self.server, self.falco_port, self.monitor_port = server, falco_port, monitor_port
        self.ca, self.falco_client = ca, falco_client

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def shipped(target, tmp_path, passwords):
    from tls_certs import CA

    tls_dir = tmp_path / "brokerd-tls"
    ca = CA(tls_dir, "brokerd-ca")
    ca.file.rename(tls_dir / "ca.crt")
    ca.file = tls_dir / "ca.crt"
    ca.issue("server", cn="brokerd.falco-alerts.svc", dns=["localhost", "brokerd.falco-alerts.svc"], ips=[HOST],
             cert_file=tls_dir / "tls.crt", key_file=tls_dir / "tls.key")
    falco_client = ca.issue("falco", cn="falco")
    text = brokerd_conf_text()
    ports = {"port": free_port(), "https_port": free_port(), "http_port": free_port()}

    def sub(pattern: str, replacement: str) -> None:
        nonlocal text
        text, n = re.subn(pattern, replacement, text, flags=re.M)
        assert n == 1, pattern

    sub(r"^host: 0\.0\.0\.0", f"host: {HOST}")
    sub(r"^port: 4222\b", f"port: {ports['port']}")
    sub(r"^https_port: 8222\b", f"https_port: {ports['https_port']}")
    sub(r"^(\s+)http_port: 2801\b", rf"\g<1>http_port: {ports['http_port']}")
    sub(r'store_dir: "/data"', f'store_dir: "{tmp_path / "data"}"')
    assert text.count("/etc/brokerd-tls/") == 5
    text = text.replace("/etc/brokerd-tls/", f"{tls_dir}/")
    if target.name == "nats-server":
        text = strip_block(text, "falco")
    env = {f"{k.upper().replace('-', '_')}_PASSWORD_HASH": h for k, (_, h) in passwords.items()}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # start_server's Popen inherits the environment
    try:
        conf_file = tmp_path / "brokerd.conf"
        conf_file.write_text(text)
        check = subprocess.run([target.binary, "-t", "-c", str(conf_file)], capture_output=True, timeout=30) \
            if target.name == "nats-server" else None
        if check is not None:
            assert check.returncode == 0, check.stderr.decode()
        # host and port are in the file (config_listen would add them again): start with the file as given.
        server = start_server(target, tmp_path / "run", config=text)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    # The HTTP listeners start after the NATS port: wait for them too.
    for port in ([ports["http_port"]] if target.name == "brokerd" else []) + [ports["https_port"]]:
        assert wait_for_port(port), f"port {port} never opened"
    yield Shipped(server, ports["http_port"] if target.name == "brokerd" else None, ports["https_port"], ca,
                  falco_client)
    server.terminate()


def tls_login(s: Shipped, user: str | None, password: str | None, ops: bytes) -> bytes:
    """INFO in the clear, TLS (checking brokerd's certificate), CONNECT as user, ops, PING; what came back up to
    PONG or the close."""
    sock = socket.create_connection((HOST, s.port), timeout=10)
    info = b""
    while not info.endswith(b"\r\n"):
        info += sock.recv(1)
    assert json.loads(info[5:])["tls_required"] is True
    ctx = ssl.create_default_context(cafile=str(s.ca.file))
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    creds = {"user": user, "pass": password} if user else {}
    tls.sendall(b"CONNECT " + json.dumps({"verbose": False, "pedantic": False, "headers": True, **creds}).encode()
                + b"\r\n" + ops + b"PING\r\n")
    data = b""
    try:
        while b"PONG\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLError, ConnectionError):
        pass
    finally:
        tls.close()
    return data


def pub(subject: str, payload: bytes = b"{}") -> bytes:
    return f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\n"


def test_shipped_conf_permissions(target, shipped, passwords):
    s = shipped
    pipe = passwords["falco-pipe"][0]
    assert tls_login(s, "falco-pipe", pipe, pub("$FALCO.INGEST") + b"SUB _INBOX.x 1\r\n") == b"PONG\r\n"
    assert tls_login(s, "falco-pipe", pipe, pub("FALCO.Critical")) == \
        b"-ERR 'Permissions Violation for Publish to \"FALCO.Critical\"'\r\nPONG\r\n"
    responder = passwords["responder"][0]
    assert tls_login(s, "responder", responder, b"SUB FALCO.> 1\r\n") == b"PONG\r\n"
    assert tls_login(s, "responder", responder, pub("FALCO.Critical")) == \
        b"-ERR 'Permissions Violation for Publish to \"FALCO.Critical\"'\r\nPONG\r\n"
    sidekick = passwords["sidekick"][0]
    assert tls_login(s, "sidekick", sidekick, pub("FALCO.Critical")) == \
        b"-ERR 'Permissions Violation for Publish to \"FALCO.Critical\"'\r\nPONG\r\n"
    assert tls_login(s, "sidekick", sidekick, b"SUB falco.> 1\r\n") == \
        b"-ERR 'Permissions Violation for Subscription to \"falco.>\"'\r\nPONG\r\n"
    # No anonymous clients, a wrong password fails, and the ingest's user cannot log in on the client port.
    for user, password in ((None, None), ("responder", "wrong"), ("falco-ingest", None), ("falco-ingest", "")):
        assert tls_login(s, user, password, b"") == b"-ERR 'Authorization Violation'\r\n", user


def test_shipped_conf_refuses_plain_clients(target, shipped, passwords):
    sock = socket.create_connection((HOST, shipped.port), timeout=10)
    try:
        info = b""
        while not info.endswith(b"\r\n"):
            info += sock.recv(1)
        assert json.loads(info[5:])["tls_required"] is True
        sock.sendall(b'CONNECT {"verbose":false,"user":"responder","pass":"%s"}\r\nSUB FALCO.> 1\r\nPING\r\n'
                     % passwords["responder"][0].encode())
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except (ConnectionError, socket.timeout):
            pass
        assert b"PONG" not in data, data  # the connection is closed: no plain-text session
    finally:
        sock.close()


def https_get(port: int, path: str, ctx: ssl.SSLContext) -> int:
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_shipped_conf_monitor_is_https(target, shipped):
    ctx = ssl.create_default_context(cafile=str(shipped.ca.file))
    assert https_get(shipped.monitor_port, "/healthz", ctx) == 200
    # Plain HTTP gets no answer from the endpoints: the connection is closed, or (nats-server, Go's
    # net/http) a 400 "Client sent an HTTP request to an HTTPS server".
    plain = http.client.HTTPConnection(HOST, shipped.monitor_port, timeout=10)
    try:
        plain.request("GET", "/healthz")
        status = plain.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
        status = None
    finally:
        plain.close()
    assert status in (None, 400)


async def test_shipped_conf_falco_endpoint_wants_the_client_certificate(target, shipped, passwords):
    import nats

    if target.name != "brokerd":
        pytest.skip("the Falco endpoint is brokerd's (nats-server runs the file without the falco block)")
    s = shipped
    ctx = ssl.create_default_context(cafile=str(s.ca.file))
    nc = await nats.connect(f"tls://localhost:{s.port}", tls=ctx, user="responder",
                            password=passwords["responder"][0], allow_reconnect=False)
    got = []

    async def record(m):
        got.append((m.subject, m.headers.get("Falco-Rule")))

    await nc.subscribe("FALCO.>", cb=record)
    await nc.flush()
    try:
        def post(context: ssl.SSLContext) -> int:
            conn = http.client.HTTPSConnection("localhost", s.falco_port, timeout=10, context=context)
            try:
                conn.request("POST", "/", body=ALERT, headers={"Content-Type": "application/json"})
                return conn.getresponse().status
            finally:
                conn.close()

        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError)):
            await asyncio.to_thread(post, ctx)  # no client certificate: refused in (or right after) the handshake
        with_cert = ssl.create_default_context(cafile=str(s.ca.file))
        with_cert.load_cert_chain(str(s.falco_client.cert_file), str(s.falco_client.key_file))
        assert await asyncio.to_thread(post, with_cert) == 200
        # falco-pipe's path: a request on $FALCO.INGEST as falco-pipe, published as falco-ingest.
        pipe = await nats.connect(f"tls://localhost:{s.port}", tls=ctx, user="falco-pipe",
                                  password=passwords["falco-pipe"][0], allow_reconnect=False)
        try:
            await pipe.request("$FALCO.INGEST", ALERT.replace(b"Deploy check", b"Pipe check"), timeout=10)
        finally:
            await pipe.close()
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert got == [("FALCO.Critical", "Deploy check"), ("FALCO.Critical", "Pipe check")]
    finally:
        await nc.close()


async def test_shipped_conf_playbook_is_a_durable_queue_group_member(target, shipped, passwords):
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy
    from nats.js.errors import APIError

    s = shipped
    ctx = ssl.create_default_context(cafile=str(s.ca.file))
    url = f"tls://localhost:{s.port}"
    admin = await nats.connect(url, tls=ctx, user="admin", password=passwords["admin"][0], allow_reconnect=False)
    errors = []

    async def on_error(e):
        errors.append(str(e))

    playbook = await nats.connect(url, tls=ctx, user="playbook", password=passwords["playbook"][0],
                                  inbox_prefix="_INBOX_playbook", allow_reconnect=False, error_cb=on_error)
    try:
        # The operator's part (docs/falco.md): the stream and the durable queue group.
        ajs = admin.jetstream()
        await ajs.add_stream(name="FALCO", subjects=["FALCO.>"])
        await ajs.add_consumer("FALCO", ConsumerConfig(
            durable_name="responders", deliver_subject="deliver.FALCO.responders", deliver_group="responders",
            ack_policy="explicit", deliver_policy=DeliverPolicy.ALL))
        await ajs.publish("FALCO.Critical", ALERT)
        js = playbook.jetstream()
        got = asyncio.Queue()
        await js.subscribe("FALCO.>", stream="FALCO", durable="responders", queue="responders",
                           cb=got.put, manual_ack=True)
        msg = await asyncio.wait_for(got.get(), 10)
        assert msg.data == ALERT
        await msg.ack_sync(timeout=10)
        info = await ajs.consumer_info("FALCO", "responders")
        assert info.num_ack_pending == 0 and info.delivered.stream_seq == 1
        # Least privilege: no new consumers, no stream changes.
        with pytest.raises((APIError, nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await js.add_consumer("FALCO", ConsumerConfig(durable_name="mine", ack_policy="explicit"), timeout=2)
        await playbook.flush()
        # (nats-py lower-cases the -ERR text)
        assert any('permissions violation for publish to "$js.api.consumer.' in e.lower() for e in errors), errors
    finally:
        await playbook.close()
        await admin.close()


def test_the_wrapper_refuses_an_empty_or_plain_hash(brokerd_bin, passwords, tmp_path):
    script = wrapper_script().replace('exec /usr/local/bin/brokerd "$@"', f'exec {brokerd_bin} "$@"')
    env = {f"{k.upper().replace('-', '_')}_PASSWORD_HASH": h for k, (_, h) in passwords.items()}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")

    def run(**changes) -> subprocess.CompletedProcess:
        e = {k: v for k, v in {**env, **changes}.items() if v is not None}
        return subprocess.run(["/bin/sh", "-c", script, "brokerd", "-v"], env=e, capture_output=True, timeout=30)

    ok = run()
    assert ok.returncode == 0 and b"brokerd" in ok.stdout, ok.stderr
    for value in ("", "s3cret", None):
        bad = run(ADMIN_PASSWORD_HASH=value)
        assert bad.returncode == 1 and bad.stdout == b""
        assert b"ADMIN_PASSWORD_HASH (Secret brokerd-users) is not a bcrypt hash" in bad.stderr
