#!/usr/bin/env bash
# Validates the deployment files offline:
#   - examples/seed/nginx.conf is byte-identical to the seed post's block
#   - every manifest in deploy/kubernetes against the Kubernetes schema
#     (kubernetes-validate, strict), and the kustomization's resource list
#   - deploy/compose.yaml: structure (python) and, where a compose CLI is
#     installed, its own `config` validation
#   - deploy/Containerfile*: static checks; with a working podman, builds
#     Containerfile from a static switchyard binary and runs it
#
# Checks that cannot run here print a SKIPPED line and do not fail the run.
# The last line is "N passed, M failed, K skipped"; the exit status is
# non-zero when anything failed.
#
# Environment:
#   SWITCHYARD_BINARY   static switchyard binary for the image check
#                       (default: look in the cargo target dir, else build one)
#   VALIDATE_NO_BUILD=1 never run cargo; skip the image check if no binary
#   VALIDATE_NO_PODMAN=1  skip every podman check
set -uo pipefail

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null)" \
    || root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root" || exit 2

K8S_VERSION=1.37.0
KV_PACKAGE="kubernetes-validate==1.37.0"
IMAGE=localhost/switchyard:validate

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIPPED: $*"; }
# check NAME CMD...: runs CMD, shows its output only when it fails.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

tmp=$(mktemp -d)
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do podman rm -f "$c" >/dev/null 2>&1; done
    rm -rf "$tmp"
}
trap cleanup EXIT

PY=python3
command -v "$PY" >/dev/null || { echo "FAIL: python3 is required"; echo "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- tools ---
# Idempotent: install only when the pinned version is not there already.
pip_ensure() { # MODULE REQUIREMENT
    if "$PY" - "$1" "$2" <<'EOF' 2>/dev/null; then return 0; fi
import importlib, importlib.metadata as md, sys
mod, req = sys.argv[1], sys.argv[2]
importlib.import_module(mod)
if "==" in req:
    name, ver = req.split("==")
    sys.exit(md.version(name) != ver)
EOF
    echo "installing $2 from PyPI"
    "$PY" -m pip install --quiet --disable-pip-version-check "$2"
}
pip_ensure yaml pyyaml || fail "install pyyaml"
have_kv=1
pip_ensure kubernetes_validate "$KV_PACKAGE" || { have_kv=0; fail "install $KV_PACKAGE"; }

# ------------------------------------------------------------ seed config ---
seed_post=""
for dir in "$root/../shared/seed" /work/shared/seed; do
    for f in "$dir"/*.md; do
        [ -f "$f" ] && grep -q '^events {}' "$f" && { seed_post=$f; break 2; }
    done
done
if [ -z "$seed_post" ]; then
    skip "examples/seed/nginx.conf vs seed post: no shared/seed/*.md with the config beside the repo"
else
    check "examples/seed/nginx.conf is byte-identical to the block in $(basename "$seed_post")" \
        "$PY" - "$seed_post" examples/seed/nginx.conf <<'EOF'
import re, sys
post = open(sys.argv[1], "rb").read()
blocks = [b for b in re.findall(rb"^```[^\n]*\n(.*?)^```", post, re.S | re.M)
          if b.startswith(b"events {}")]
if len(blocks) != 1:
    sys.exit(f"expected one fenced block starting with 'events {{}}', found {len(blocks)}")
ours = open(sys.argv[2], "rb").read()
if ours != blocks[0]:
    sys.exit(f"differs from the post ({len(ours)} bytes here, {len(blocks[0])} in the post)")
EOF
fi

# ------------------------------------------------------------- kubernetes ---
k8s=deploy/kubernetes
if [ "$have_kv" = 1 ]; then
    for f in "$k8s"/*.yaml; do
        [ "$(basename "$f")" = kustomization.yaml ] && continue
        check "kubernetes-validate --strict (k8s $K8S_VERSION): $f" \
            "$PY" -m kubernetes_validate --strict --quiet -k "$K8S_VERSION" "$f"
    done
else
    skip "kubernetes schema validation: kubernetes-validate not available"
fi

check "$k8s/kustomization.yaml lists every manifest, none pins a namespace" \
    "$PY" - "$k8s" <<'EOF'
import os, sys, yaml
d = sys.argv[1]
k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
assert k.get("kind") == "Kustomization", "kind is not Kustomization"
assert k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1", "unexpected apiVersion"
listed = k.get("resources") or []
present = sorted(f for f in os.listdir(d) if f.endswith(".yaml") and f != "kustomization.yaml")
assert sorted(listed) == present, f"resources {sorted(listed)} != files {present}"
for f in present:
    for doc in yaml.safe_load_all(open(os.path.join(d, f))):
        if doc and "namespace" in (doc.get("metadata") or {}):
            sys.exit(f"{f}: metadata.namespace set; the manifests are meant to be namespace-agnostic")
EOF

check "$k8s: probes, security context and resources as intended" \
    "$PY" - "$k8s" <<'EOF'
import os, sys, yaml
d = sys.argv[1]
docs = {}
for f in os.listdir(d):
    for doc in yaml.safe_load_all(open(os.path.join(d, f))):
        if doc and doc.get("kind") != "Kustomization":
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
def container(name):
    dep = docs[("Deployment", name)]
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True, f"{name}: runAsNonRoot"
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True, f"{name}: readOnlyRootFilesystem"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name}: resources.{kind}"
    return dep, c
echo, c = container("echo")
assert echo["spec"]["replicas"] == 3
assert c["args"] == ["echo", "--name", "$(POD_NAME)"], c["args"]
assert c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
for p in ("readinessProbe", "livenessProbe"):
    assert c[p]["httpGet"]["path"] == "/healthz", p
sy, c = container("switchyard")
assert sy["spec"]["replicas"] == 2
for p in ("readinessProbe", "livenessProbe"):
    assert "tcpSocket" in c[p], p
svc = docs[("Service", "echo")]["spec"]
assert svc["clusterIP"] == "None" and svc["ports"][0]["port"] == 8080
svc = docs[("Service", "switchyard")]["spec"]
assert svc.get("type", "ClusterIP") == "ClusterIP" and svc["ports"][0]["port"] == 80
conf = docs[("ConfigMap", "switchyard-config")]["data"]["nginx.conf"]
for needle in ("zone echo 64k;", "server echo.default.svc.cluster.local:8080 resolve;"):
    assert needle in conf, needle
# The pod's resolv.conf is the resolver: a `resolver` naming kube-dns would
# not pass `switchyard -t` outside a cluster (names resolve at load time).
assert "resolver " not in conf, "resolver"
EOF

# ---------------------------------------------------------------- compose ---
check "deploy/compose.yaml: seed topology (services, network, mount, port)" \
    "$PY" - deploy/compose.yaml <<'EOF'
import os, sys, yaml
path = sys.argv[1]
c = yaml.safe_load(open(path))
s = c["services"]
assert set(s) == {"echogolem1", "echogolem2", "balancer"}, sorted(s)
assert c["networks"]["echogolemnet"]["name"] == "echogolemnet"
for name, svc in s.items():
    assert svc["networks"] == ["echogolemnet"], name
    assert svc.get("entrypoint") == ["/switchyard"], name
    assert svc.get("image"), name
for n in ("echogolem1", "echogolem2"):
    assert s[n]["command"] == ["echo", "--name", n], s[n]["command"]
b = s["balancer"]
assert b["ports"] == ["8080:8080"], b["ports"]
(vol,) = b["volumes"]
src, dst, mode = vol.split(":")
assert (dst, mode) == ("/etc/switchyard/nginx.conf", "ro,Z"), vol
src = os.path.normpath(os.path.join(os.path.dirname(path), src))
assert src == os.path.normpath("examples/seed/nginx.conf"), src
assert os.path.isfile(src), src
assert b["command"] == ["-c", "/etc/switchyard/nginx.conf", "-g", "daemon off;", "-e", "stderr"]
EOF

if docker compose version >/dev/null 2>&1; then
    check "docker compose config: deploy/compose.yaml" docker compose -f deploy/compose.yaml config -q
elif command -v docker-compose >/dev/null 2>&1; then
    check "docker-compose config (schema): deploy/compose.yaml" \
        docker-compose -f deploy/compose.yaml config -q
else
    skip "compose CLI validation: neither 'docker compose' nor docker-compose is installed"
fi

# ---------------------------------------------------------- Containerfile.source ---
check "deploy/Containerfile*: scratch final stage, UID 65532, entrypoint, CMD, port, config" \
    "$PY" - deploy/Containerfile.source deploy/Containerfile <<'EOF'
import json, re, sys
for path in sys.argv[1:]:
    text = open(path).read()
    final = re.split(r"(?m)^FROM ", text)[-1]
    lines = [l.strip() for l in final.splitlines()]
    def one(prefix):
        hits = [l[len(prefix):].strip() for l in lines if l.startswith(prefix)]
        assert len(hits) == 1, f"{path}: expected one {prefix.strip()} in the final stage, got {hits}"
        return hits[0]
    assert lines[0] == "scratch", f"{path}: final stage is FROM {lines[0]}"
    assert one("USER ") == "65532:65532", path
    assert one("EXPOSE ") == "8080", path
    assert json.loads(one("ENTRYPOINT ")) == ["/switchyard"], path
    assert json.loads(one("CMD ")) == ["-c", "/etc/switchyard/nginx.conf", "-g", "daemon off;", "-e", "stderr"], path
    assert "COPY examples/seed/nginx.conf /etc/switchyard/nginx.conf" in lines, path
EOF

check "deploy/rootfs: passwd entry for 65532" \
    grep -q '^nonroot:x:65532:65532:' deploy/rootfs/etc/passwd
check "deploy/rootfs: group entry for 65532" grep -q '^nonroot:x:65532:' deploy/rootfs/etc/group

# is_static FILE: an ELF executable with no program interpreter.
is_static() {
    [ -x "$1" ] && "$PY" - "$1" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
if data[:4] != b"\x7fELF" or data[4] != 2:
    sys.exit(1)
import struct
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
for i in range(phnum):
    p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
    if p_type == 3:  # PT_INTERP
        sys.exit(1)
EOF
}

find_binary() {
    local t=${CARGO_TARGET_DIR:-$root/target} c
    for c in ${SWITCHYARD_BINARY:-} \
        "$t"/x86_64-unknown-linux-musl/{release,dist}/switchyard \
        "$t"/x86_64-unknown-linux-gnu/{release,dist}/switchyard; do
        if is_static "$c"; then echo "$c"; return 0; fi
    done
    return 1
}

podman_ok=0
if [ "${VALIDATE_NO_PODMAN:-}" = 1 ]; then
    skip "podman checks: VALIDATE_NO_PODMAN=1"
elif ! command -v podman >/dev/null 2>&1; then
    skip "podman build of deploy/Containerfile: podman is not installed (apt-get install podman)"
elif ! podman info >/dev/null 2>&1; then
    skip "podman build of deploy/Containerfile: 'podman info' fails on this machine"
else
    podman_ok=1
fi

if [ "$podman_ok" = 1 ]; then
    binary=$(find_binary)
    if [ -z "$binary" ] && [ "${VALIDATE_NO_BUILD:-}" != 1 ] && command -v cargo >/dev/null; then
        echo "building a static switchyard (glibc +crt-static) for the image check"
        host=$(rustc -vV | sed -n 's/^host: //p')
        if RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --locked --release \
            --target "$host" -p switchyard --bin switchyard >"$tmp/cargo.log" 2>&1; then
            binary=$(find_binary)
        else
            fail "static cargo build for the image check"
            sed 's/^/    /' "$tmp/cargo.log" | tail -20
        fi
    fi
    if [ -z "$binary" ]; then
        skip "podman build of deploy/Containerfile: no static switchyard binary (set SWITCHYARD_BINARY)"
    else
        # The build context Containerfile expects, staged in $tmp so
        # that a CARGO_TARGET_DIR outside the repository works too.
        ctx=$tmp/ctx rel=target/x86_64-unknown-linux-gnu/release/switchyard
        mkdir -p "$ctx/$(dirname "$rel")" "$ctx/examples/seed"
        cp "$binary" "$ctx/$rel"
        cp -r deploy "$ctx/deploy"
        cp examples/seed/nginx.conf "$ctx/examples/seed/"
        check "podman build -f deploy/Containerfile ($binary)" \
            podman build -q -f "$ctx/deploy/Containerfile" \
            --ignorefile "$ctx/deploy/Containerfile.dockerignore" \
            --build-arg "BINARY=$rel" -t "$IMAGE" "$ctx"

        check "image config: user, entrypoint, cmd, exposed port, seed config" bash -c '
            set -e
            got=$(podman image inspect "$1" --format "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.ExposedPorts}}")
            want="65532:65532|[\"/switchyard\"]|[\"-c\",\"/etc/switchyard/nginx.conf\",\"-g\",\"daemon off;\",\"-e\",\"stderr\"]|{\"8080/tcp\":{}}"
            [ "$got" = "$want" ] || { echo "got  $got"; echo "want $want"; exit 1; }
            c=$(podman create "$1")
            trap "podman rm -f $c >/dev/null" EXIT
            podman cp "$c:/etc/switchyard/nginx.conf" "$2/image-nginx.conf"
            cmp "$2/image-nginx.conf" examples/seed/nginx.conf' _ "$IMAGE" "$tmp"

        # Running containers: try podman's defaults, then a fallback for
        # sandboxes where crun cannot set its default rlimits or cgroups.
        run_flags=() run_extra=()
        if podman run --rm "$IMAGE" --version >/dev/null 2>&1; then
            pass "podman run $IMAGE --version"
        elif command -v runc >/dev/null && podman --runtime runc run --rm \
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$IMAGE" --version >/dev/null 2>&1; then
            run_flags=(--runtime runc)
            run_extra=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
            pass "podman run $IMAGE --version (needed --runtime runc and explicit --ulimit here)"
        else
            skip "running the image: podman cannot start containers on this machine ($(podman run --rm "$IMAGE" --version 2>&1 | tail -1))"
            run_flags=(unusable)
        fi
        if [ "${run_flags[0]:-}" != unusable ] && command -v curl >/dev/null; then
            name=switchyard-validate-$$
            containers+=("$name")
            if podman "${run_flags[@]}" run -d --name "$name" "${run_extra[@]}" \
                -p 127.0.0.1::8080 "$IMAGE" echo --name validate >/dev/null 2>&1; then
                port=$(podman port "$name" 8080/tcp | sed 's/.*://')
                check "switchyard echo in the image answers on 127.0.0.1:$port as UID 65532" bash -c '
                    for i in $(seq 50); do
                        curl -fsS -m 2 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && break
                        sleep 0.2
                    done
                    h=$(curl -fsS -m 5 -D - -o /dev/null "http://127.0.0.1:$1/healthz") || exit 1
                    printf "%s" "$h" | grep -qi "^x-served-by: validate" || { echo "$h"; exit 1; }
                    b=$(curl -fsS -m 5 -d foo=bar "http://127.0.0.1:$1/")
                    [ "$b" = foo=bar ] || { echo "echo body: $b"; exit 1; }
                    pid=$(podman inspect -f "{{.State.Pid}}" "$2")
                    uid=$(awk "/^Uid:/ {print \$2}" "/proc/$pid/status")
                    [ "$uid" = 65532 ] || { echo "echo runs as uid $uid"; exit 1; }
                ' _ "$port" "$name"
            else
                fail "podman run -d $IMAGE echo"
            fi
        fi
    fi

    # deploy/Containerfile.source's build stage needs docker.io/library/rust:1-bookworm.
    if podman image exists docker.io/library/rust:1-bookworm 2>/dev/null; then
        check "podman build -f deploy/Containerfile.source (build stage from the local rust:1-bookworm)" \
            podman build -q --pull=never -f deploy/Containerfile.source \
            --ignorefile deploy/Containerfile.source.dockerignore -t localhost/switchyard:validate-src .
    else
        skip "podman build -f deploy/Containerfile.source: docker.io/library/rust:1-bookworm is not in local storage and no container registry is reachable"
    fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
