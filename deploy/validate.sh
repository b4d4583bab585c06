#!/usr/bin/env bash
# Validates the deployment artefacts; exits non-zero on any problem.
#
#   1. Kubernetes manifests (deploy/k8s/, secret.example.yaml included):
#      strict JSON-schema validation (unknown fields rejected) with
#      kubernetes-validate, whose wheel ships the Kubernetes schemas, against
#      the oldest Kubernetes the manifests claim (1.30: the preStop `sleep`
#      action) and the newest schema it ships; the kustomize build
#      (`kubectl kustomize`, offline) when kubectl is there; and the rules
#      the schema cannot express (probes, resources, security context,
#      selectors, Secret keys, grace periods, what kustomization lists,
#      NetworkPolicies: default deny, one per Deployment, gRPC never open
#      to every pod).
#   2. deploy/compose.yaml: `docker compose config -q` when Compose works,
#      else the Compose Specification's JSON schema as shipped inside
#      check-jsonschema; plus depends_on, health checks, build targets.
#   3. deploy/otel/collector.yaml: parses, and every pipeline names only
#      components that are defined.
#   4. deploy/docker/Dockerfile (not built: that needs a Docker engine): the
#      targets exist, the images run as a numeric non-root user, the build
#      is `cargo build --release --locked`.
#
# Needs python3 (with venv) and PyPI: the validators are installed once into
# ${PARTNER_CALLBACKS_CACHE:-$HOME/.cache/partner-callbacks}/venv. No other
# network. The inputs can be pointed elsewhere (K8S_DIR, COMPOSE_FILE,
# COLLECTOR_FILE, DOCKERFILE), e.g. to check a scratch copy.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_DIR="${K8S_DIR:-deploy/k8s}"
COMPOSE_FILE="${COMPOSE_FILE:-deploy/compose.yaml}"
COLLECTOR_FILE="${COLLECTOR_FILE:-deploy/otel/collector.yaml}"
DOCKERFILE="${DOCKERFILE:-deploy/docker/Dockerfile}"
K8S_VERSIONS="${K8S_VERSIONS:-1.30 1.37}"
VALIDATORS=("kubernetes-validate==1.37.0" "check-jsonschema==0.39.0")

source deploy/lib.sh
venv="$(project_venv "${VALIDATORS[@]}")"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# kustomize build, offline: proves kustomization.yaml resolves; its output
# is validated below as well, since that is what `kubectl apply -k` sends.
if command -v kubectl >/dev/null; then
  echo "==> k8s: kubectl kustomize $K8S_DIR"
  if ! kubectl kustomize "$K8S_DIR" >"$scratch/rendered.yaml"; then
    echo "ERROR kustomize build of $K8S_DIR failed (see above)" >&2
    exit 1
  fi
else
  echo "==> k8s: kubectl not found; kustomization.yaml is checked by the Python rules only"
fi

# Compose: the real tool when it is there, else the specification's schema.
if docker compose version >/dev/null 2>&1; then
  echo "==> compose: docker compose -f $COMPOSE_FILE config -q"
  docker compose -f "$COMPOSE_FILE" config -q
else
  echo "==> compose: no 'docker compose' here; validating against the Compose Specification JSON schema (check-jsonschema --builtin-schema vendor.compose-spec)"
  "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE"
fi

K8S_DIR="$K8S_DIR" COMPOSE_FILE="$COMPOSE_FILE" COLLECTOR_FILE="$COLLECTOR_FILE" \
DOCKERFILE="$DOCKERFILE" K8S_VERSIONS="$K8S_VERSIONS" RENDERED="$scratch/rendered.yaml" \
  "$venv/bin/python" - <<'PY'
import os, re, sys
from pathlib import Path

import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError

errors = []
def fail(msg):
    errors.append(msg)
    print(f"ERROR {msg}")

def load_all(path):
    try:
        return [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        fail(f"{path}: cannot read YAML: {e}")
        return []

versions = os.environ["K8S_VERSIONS"].split()

# ---- 1. Kubernetes ---------------------------------------------------------
k8s_dir = Path(os.environ["K8S_DIR"])
files = sorted(p for p in k8s_dir.glob("*.y*ml") if p.name != "kustomization.yaml")
docs = []  # (file name, document)

def schema_check(label, doc):
    if not isinstance(doc, dict) or not all(k in doc for k in ("apiVersion", "kind")) \
            or not (doc.get("metadata") or {}).get("name"):
        fail(f"{label}: not a Kubernetes object (apiVersion, kind, metadata.name)")
        return
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    for v in versions:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            fail(f"{label}: {name} (Kubernetes {v}, strict): {path}: {e.message}")
        except SchemaNotFoundError:
            fail(f"{label}: {name}: no Kubernetes {v} schema for {doc['apiVersion']} {doc['kind']}")

def report(before, what):
    bad = len(errors) - before
    print(f"==> {what}: " + ("ok" if not bad else f"{bad} problem(s)"))

mark = len(errors)
for f in files:
    for doc in load_all(f):
        docs.append((f.name, doc))
        schema_check(f.name, doc)
report(mark, f"k8s: {len(docs)} objects in {len(files)} files, strict schema, Kubernetes {', '.join(versions)}")

rendered = Path(os.environ["RENDERED"])
if rendered.exists():
    mark = len(errors)
    rdocs = load_all(rendered)
    for doc in rdocs:
        schema_check("kustomize output", doc)
    report(mark, f"k8s: kustomize output, {len(rdocs)} objects, strict schema")

# What kustomization.yaml lists: every manifest except the example Secret.
mark = len(errors)
kust = (load_all(k8s_dir / "kustomization.yaml") or [{}])[0] or {}
listed = set(kust.get("resources") or [])
expected = {f.name for f in files} - {"secret.example.yaml"}
if "secret.example.yaml" in listed:
    fail("kustomization.yaml lists secret.example.yaml: it must never be applied")
for missing in sorted(expected - listed):
    fail(f"kustomization.yaml does not list {missing}")
for extra in sorted(listed - expected - {"secret.example.yaml"}):
    fail(f"kustomization.yaml lists {extra}, which is not in {k8s_dir}")
for name, doc in docs:
    if doc.get("kind") == "Secret" and name != "secret.example.yaml":
        fail(f"{name}: a Secret in the applied manifests; secrets are created out of band")

by_kind = {}
for name, doc in docs:
    by_kind.setdefault(doc.get("kind"), []).append((name, doc))

def duration_secs(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text).strip())
    return int(m.group(1)) * units[m.group(2)] if m else None

config = {}
for _, cm in by_kind.get("ConfigMap", []):
    config[cm["metadata"]["name"]] = cm.get("data") or {}
example_keys = {}
for name, sec in by_kind.get("Secret", []):
    example_keys[sec["metadata"]["name"]] = set((sec.get("stringData") or {}) | (sec.get("data") or {}))

deployments = {}
for name, dep in by_kind.get("Deployment", []):
    dname = dep["metadata"]["name"]
    where = f"{name}: Deployment/{dname}"
    spec = dep.get("spec", {})
    tpl = spec.get("template", {})
    labels = tpl.get("metadata", {}).get("labels", {}) or {}
    deployments[dname] = labels
    sel = spec.get("selector", {}).get("matchLabels", {}) or {}
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        fail(f"{where}: selector does not match the pod template's labels")
    pod = tpl.get("spec", {})
    psc = pod.get("securityContext", {}) or {}
    for c in pod.get("containers", []):
        cw = f"{where} container {c.get('name')}"
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                fail(f"{cw}: no {probe}")
        res = c.get("resources", {}) or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    fail(f"{cw}: no resources.{kind}.{r}")
        csc = c.get("securityContext", {}) or {}
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            fail(f"{cw}: runAsNonRoot is not set")
        if csc.get("readOnlyRootFilesystem") is not True:
            fail(f"{cw}: readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(f"{cw}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            fail(f"{cw}: capabilities do not drop ALL")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            fail(f"{cw}: seccompProfile is not RuntimeDefault")
        for ef in c.get("envFrom", []) or []:
            ref = (ef.get("configMapRef") or {}).get("name")
            if ref and ref not in config:
                fail(f"{cw}: envFrom names ConfigMap {ref}, which is not defined")
        for env in c.get("env", []) or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref.get("key") not in example_keys.get(ref.get("name"), set()):
                fail(f"{cw}: env {env['name']} reads {ref.get('name')}/{ref.get('key')}, "
                     "which secret.example.yaml does not show")
        if dname == "dispatcher":
            env = {}
            for ef in c.get("envFrom", []) or []:
                env.update(config.get((ef.get("configMapRef") or {}).get("name"), {}))
            env.update({e["name"]: e.get("value") for e in c.get("env", []) or [] if "value" in e})
            grace = duration_secs(env.get("DISPATCHER_SHUTDOWN_GRACE", "20s"))
            tgps = pod.get("terminationGracePeriodSeconds", 30)
            if grace is None:
                fail(f"{cw}: cannot read DISPATCHER_SHUTDOWN_GRACE {env.get('DISPATCHER_SHUTDOWN_GRACE')!r}")
            elif tgps <= grace:
                fail(f"{cw}: terminationGracePeriodSeconds {tgps} must exceed DISPATCHER_SHUTDOWN_GRACE ({grace}s)")

def selects_some_deployment(sel):
    return any(sel and all(l.get(k) == v for k, v in sel.items()) for l in deployments.values())

for name, svc in by_kind.get("Service", []):
    if not selects_some_deployment(svc.get("spec", {}).get("selector") or {}):
        fail(f"{name}: Service/{svc['metadata']['name']} selects no Deployment's pods")
for name, pdb in by_kind.get("PodDisruptionBudget", []):
    if not selects_some_deployment((pdb.get("spec", {}).get("selector") or {}).get("matchLabels") or {}):
        fail(f"{name}: PodDisruptionBudget/{pdb['metadata']['name']} selects no Deployment's pods")
for name, hpa in by_kind.get("HorizontalPodAutoscaler", []):
    ref = hpa.get("spec", {}).get("scaleTargetRef", {})
    if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
        fail(f"{name}: HorizontalPodAutoscaler/{hpa['metadata']['name']} targets no Deployment here")
# NetworkPolicies: ingress denied by default, each Deployment let in by a
# policy of its own, and no gRPC port open to every pod.
policies = [doc for _, doc in by_kind.get("NetworkPolicy", [])]
def policy_labels(policy):
    return (policy.get("spec", {}).get("podSelector") or {}).get("matchLabels") or {}
if not any(
    not policy_labels(p) and "Ingress" in p.get("spec", {}).get("policyTypes", []) and not p["spec"].get("ingress")
    for p in policies
):
    fail("no default-deny NetworkPolicy (podSelector {}, policyTypes [Ingress], no ingress rules)")
for dname, labels in deployments.items():
    own = [p for p in policies if policy_labels(p) and all(labels.get(k) == v for k, v in policy_labels(p).items())]
    if not own:
        fail(f"Deployment/{dname}: no NetworkPolicy selects its pods, so the default denies everything")
    for p in own:
        for rule in p["spec"].get("ingress") or []:
            ports = [port.get("port") for port in rule.get("ports") or []]
            if "grpc" in ports and not rule.get("from"):
                fail(f"NetworkPolicy/{p['metadata']['name']}: the gRPC port is open to every pod")
report(mark, f"k8s: rules for {len(deployments)} Deployments (probes, resources, securityContext, selectors, Secret keys, grace period, kustomization list, NetworkPolicies)")

# ---- 2. Compose: what the schema cannot see ---------------------------------
mark = len(errors)
compose_file = Path(os.environ["COMPOSE_FILE"])
compose = (load_all(compose_file) or [{}])[0] or {}
services = compose.get("services") or {}
if not services:
    fail(f"{compose_file}: no services")
dockerfile = Path(os.environ["DOCKERFILE"])
stages = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text())) if dockerfile.exists() else set()
for sname, svc in services.items():
    if "image" not in svc and "build" not in svc:
        fail(f"{compose_file}: service {sname} has neither image nor build")
    build = svc.get("build")
    if isinstance(build, dict):
        ctx = (compose_file.parent / build.get("context", ".")).resolve()
        df = ctx / build.get("dockerfile", "Dockerfile")
        if not df.exists():
            fail(f"{compose_file}: service {sname} builds from {df}, which does not exist")
        elif build.get("target") and df.resolve() == dockerfile.resolve() and build["target"] not in stages:
            fail(f"{compose_file}: service {sname} builds target {build['target']}, not a stage of {dockerfile}")
    deps = svc.get("depends_on") or {}
    deps = {d: {} for d in deps} if isinstance(deps, list) else deps
    for dep, how in deps.items():
        if dep not in services:
            fail(f"{compose_file}: service {sname} depends on unknown service {dep}")
        elif (how or {}).get("condition") == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
            fail(f"{compose_file}: service {sname} waits for {dep} to be healthy, but {dep} has no healthcheck")
    for vol in svc.get("volumes") or []:
        src = vol.split(":")[0] if isinstance(vol, str) else (vol.get("source") or "")
        if src.startswith((".", "/")) and not (compose_file.parent / src).exists():
            fail(f"{compose_file}: service {sname} mounts {src}, which does not exist")
report(mark, f"compose: {len(services)} services; depends_on, health checks, build targets, mounts")

# ---- Dockerfile: what the compose file, the manifests and the docs rely on --
mark = len(errors)
if not dockerfile.exists():
    fail(f"{dockerfile}: missing")
else:
    text = dockerfile.read_text()
    for stage in ("registry", "dispatcher", "gateway", "callbacksctl"):
        if stage not in stages:
            fail(f"{dockerfile}: no stage (target) named {stage}")
    users = re.findall(r"(?im)^USER\s+(\S+)", text)
    if not users or not all(re.fullmatch(r"[1-9]\d*(:\d+)?", u) for u in users):
        fail(f"{dockerfile}: final images must run as a numeric non-root USER (found {users or 'none'})")
    if not re.search(r"cargo build --release --locked", text):
        fail(f"{dockerfile}: the build is not `cargo build --release --locked`")
    report(mark, f"dockerfile: stages {', '.join(sorted(stages))}; numeric non-root USER; locked release build")

# ---- 3. Collector -----------------------------------------------------------
mark = len(errors)
collector_file = Path(os.environ["COLLECTOR_FILE"])
col = (load_all(collector_file) or [None])[0]
if not isinstance(col, dict):
    fail(f"{collector_file}: not a YAML mapping")
else:
    svc = col.get("service") or {}
    pipelines = svc.get("pipelines") or {}
    if not pipelines:
        fail(f"{collector_file}: no pipelines")
    for ext in svc.get("extensions") or []:
        if ext not in (col.get("extensions") or {}):
            fail(f"{collector_file}: service.extensions names undefined extension {ext}")
    for pname, p in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for comp in (p or {}).get(section) or []:
                if comp not in (col.get(section) or {}):
                    fail(f"{collector_file}: pipeline {pname} names undefined {section[:-1]} {comp}")
        for section in ("receivers", "exporters"):
            if not (p or {}).get(section):
                fail(f"{collector_file}: pipeline {pname} has no {section}")
    report(mark, f"collector: YAML parses; {len(pipelines)} pipelines name only defined components")

if errors:
    print(f"FAILED: {len(errors)} problem(s)")
    sys.exit(1)
PY
echo "deploy/validate.sh: all deployment artefacts valid"
