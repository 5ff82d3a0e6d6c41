#!/usr/bin/env bash
# Validates the deployment files offline:
#   - examples/seed/nginx.conf is byte-identical to the seed post's block
#   - every manifest in deploy/kubernetes against the Kubernetes schema
#     (kubernetes-validate, strict), and the kustomization's resource list
#   - deploy/compose.yaml: structure (python) and, where a compose CLI is
#     installed, its own `config` validation
#   - deploy/Containerfile*: static checks; with a working podman, builds
#     Containerfile from a static switchyard binary, runs it, and serves the
#     seed topology with it (echogolem1, echogolem2 and the balancer with
#     examples/seed/nginx.conf on one podman network; the seed's request
#     twice through the balancer's port on 127.0.0.1)
#
# Checks that cannot run here print a SKIPPED line and do not fail the run.
# The last line is "N passed, M failed, K skipped"; the exit status is
# non-zero when anything failed.
#
# Environment:
#   SWITCHYARD_BINARY   static switchyard binary for the image check
#                       (default: build one, glibc +crt-static, in
#                       target-static/ or $SWITCHYARD_STATIC_TARGET_DIR)
#   VALIDATE_NO_BUILD=1 never run cargo: use a static binary found in
#                       target-static/ or the cargo target dir, else skip
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
containers=() networks=()
cleanup() {
    local c
    for c in "${containers[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
    for c in "${networks[@]}"; do podman network rm -f "$c" >/dev/null 2>&1; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# ---------------------------------------------------------------- systemd ---
unit=deploy/systemd/switchyard.service
sy_bin=${CARGO_TARGET_DIR:-$root/target}/debug/switchyard
if [ ! -x "$sy_bin" ] && [ "${VALIDATE_NO_BUILD:-}" != 1 ] && command -v cargo >/dev/null; then
    cargo build --quiet --locked -p switchyard --bin switchyard >/dev/null 2>&1
fi
if [ ! -x "$sy_bin" ]; then
    skip "$unit: no switchyard binary at $sy_bin to check the unit's commands with"
else
    # The unit as systemd would load it, with the binary where it is here.
    sed "s#/usr/local/bin/switchyard#$sy_bin#g" "$unit" >"$tmp/switchyard.service"
    if command -v systemd-analyze >/dev/null; then
        check "systemd-analyze verify $unit" bash -c 'cd "$1" && systemd-analyze verify ./switchyard.service' _ "$tmp"
    else
        skip "systemd-analyze verify $unit: systemd-analyze is not installed"
    fi
    # The unit's command lines run as systemd runs them (no shell; its
    # directories made by hand, in a temporary root): ExecStartPre, the
    # service, a reload while it serves (the ExecReload lines), then its
    # KillSignal, within TimeoutStopSec.
    check "$unit: ExecStartPre, ExecStart, ExecReload and KillSignal work with switchyard" \
        "$PY" - "$tmp/switchyard.service" "$tmp/unit" <<'EOF'
import os, re, shlex, signal, socket, subprocess, sys, time, urllib.request
unit_text, base = open(sys.argv[1]).read(), sys.argv[2]
def lines(key):
    return [l.split("=", 1)[1] for l in unit_text.splitlines() if l.startswith(key + "=")]
dirs = {"/etc/switchyard": "etc", "/var/lib/switchyard": "var/lib/switchyard",
        "/run/switchyard": "run/switchyard", "/var/log/switchyard": "var/log/switchyard"}
for d in dirs.values():
    os.makedirs(os.path.join(base, d), exist_ok=True)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
open(os.path.join(base, "etc/nginx.conf"), "w").write(
    "events {}\nhttp {\n  server {\n    listen 127.0.0.1:%d;\n    location / { return 200 \"up\\n\"; }\n  }\n}\n" % port)
def argv(cmd):
    cmd = cmd.lstrip("+-")
    for real, here in dirs.items():
        cmd = cmd.replace(real, os.path.join(base, here))
    return shlex.split(cmd)
assert len([c for c in lines("ExecStartPre") if " -t " in c]) == 1, "one -t before start"
for c in lines("ExecStartPre"):
    r = subprocess.run(argv(c), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (c, r.stderr)
svc = subprocess.Popen(argv(lines("ExecStart")[0]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
def get():
    return urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5).read()
try:
    deadline = time.time() + 20
    while True:
        try:
            assert get() == b"up\n"
            break
        except OSError:
            assert svc.poll() is None, svc.stderr.read()
            assert time.time() < deadline, "the service did not answer"
            time.sleep(0.1)
    pid_file = os.path.join(base, "run/switchyard/switchyard.pid")
    assert open(pid_file).read().strip() == str(svc.pid), "pid file"
    for c in lines("ExecReload"):
        r = subprocess.run(argv(c.replace("$MAINPID", str(svc.pid))), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (c, r.stderr)
    assert get() == b"up\n"
    assert svc.poll() is None, "exited on reload"
    (kill,) = lines("KillSignal")
    svc.send_signal(getattr(signal, kill))
    limit = int(re.match(r"(\d+)s", lines("TimeoutStopSec")[0]).group(1))
    svc.wait(timeout=limit)
finally:
    if svc.poll() is None:
        svc.kill()
EOF
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

# A separate target dir for the static build: its RUSTFLAGS would
# otherwise rebuild what the ordinary builds share.
static_target=${SWITCHYARD_STATIC_TARGET_DIR:-$root/target-static}
find_binary() {
    local t=${CARGO_TARGET_DIR:-$root/target} c d
    for d in "$static_target" "$t"; do
        for c in "$d"/x86_64-unknown-linux-musl/{release,dist}/switchyard \
            "$d"/x86_64-unknown-linux-gnu/{release,dist}/switchyard; do
            if is_static "$c"; then echo "$c"; return 0; fi
        done
    done
    return 1
}

podman_ok=0
if [ "${VALIDATE_NO_PODMAN:-}" = 1 ]; then
    skip "podman checks: VALIDATE_NO_PODMAN=1"
elif ! command -v podman >/dev/null 2>&1; then
    skip "podman build of deploy/Containerfile: podman is not installed (apt-get install podman)"
elif ! podman info >/dev/null 2>&1; then
    skip "podman build of deploy/Containerfile: 'podman info' fails on this machine: $(podman info 2>&1 | tail -1)"
else
    podman_ok=1
fi

# http_seed PORT OUT: the seed post's `http localhost:8080 foo=bar` (HTTPie
# sends a JSON object) with curl; headers and body in OUT.h and OUT.b.
http_seed() {
    curl -sS -m 5 -D "$2.h" -o "$2.b" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, */*;q=0.5' \
        --data-binary '{"foo": "bar"}' "http://127.0.0.1:$1/"
}
# wait_http URL: polls until URL answers (at most ~10 s).
wait_http() {
    local _
    for _ in $(seq 50); do
        curl -s -m 1 -o /dev/null "$1" && return 0
        sleep 0.2
    done
    return 1
}

if [ "$podman_ok" = 1 ]; then
    # Build (cargo does nothing when it is up to date) so that the image
    # holds the current sources; a binary found lying around may be stale.
    binary=""
    if [ -n "${SWITCHYARD_BINARY:-}" ]; then
        if is_static "$SWITCHYARD_BINARY"; then
            binary=$SWITCHYARD_BINARY
        else
            fail "SWITCHYARD_BINARY=$SWITCHYARD_BINARY is not a static executable (scratch has no dynamic loader)"
        fi
    elif [ "${VALIDATE_NO_BUILD:-}" != 1 ] && command -v cargo >/dev/null; then
        host=$(rustc -vV | sed -n 's/^host: //p')
        echo "building a static switchyard (glibc +crt-static, $host) in $static_target for the image check"
        if CARGO_TARGET_DIR=$static_target RUSTFLAGS='-C target-feature=+crt-static' \
            cargo build --quiet --locked --release \
            --target "$host" -p switchyard --bin switchyard >"$tmp/cargo.log" 2>&1; then
            is_static "$static_target/$host/release/switchyard" && binary=$static_target/$host/release/switchyard
        else
            fail "static cargo build for the image check"
            sed 's/^/    /' "$tmp/cargo.log" | tail -20
        fi
    else
        binary=$(find_binary)
    fi
    if [ -z "$binary" ]; then
        skip "podman build of deploy/Containerfile: no static switchyard binary (set SWITCHYARD_BINARY)"
    else
        # The build context Containerfile expects, staged in $tmp so
        # that a CARGO_TARGET_DIR outside the repository works too.
        ctx=$tmp/ctx rel=target/x86_64-unknown-linux-gnu/release/switchyard
        mkdir -p "$ctx/$(dirname "$rel")" "$ctx/examples/seed"
        cp "$binary" "$ctx/$rel"
        cp -a deploy "$ctx/deploy"
        cp examples/seed/nginx.conf "$ctx/examples/seed/"
        check "podman build -f deploy/Containerfile ($binary)" \
            podman build -q -f "$ctx/deploy/Containerfile" \
            --ignorefile "$ctx/deploy/Containerfile.dockerignore" \
            --build-arg "BINARY=$rel" -t "$IMAGE" "$ctx"

        check "image config: user, entrypoint, cmd, exposed port, seed config, /logs" bash -c '
            set -e
            got=$(podman image inspect "$1" --format "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.ExposedPorts}}")
            want="65532:65532|[\"/switchyard\"]|[\"-c\",\"/etc/switchyard/nginx.conf\",\"-g\",\"daemon off;\",\"-e\",\"stderr\"]|{\"8080/tcp\":{}}"
            [ "$got" = "$want" ] || { echo "got  $got"; echo "want $want"; exit 1; }
            c=$(podman create "$1")
            trap "podman rm -f $c >/dev/null" EXIT
            podman cp "$c:/etc/switchyard/nginx.conf" "$2/image-nginx.conf"
            cmp "$2/image-nginx.conf" examples/seed/nginx.conf
            m=$(podman mount "$c")
            trap "podman umount $c >/dev/null; podman rm -f $c >/dev/null" EXIT
            [ "$(stat -c %u:%g "$m/logs")" = 65532:65532 ] || { echo "/logs is not owned by 65532"; exit 1; }
            [ "$(readlink "$m/logs/access.log")" = /dev/stdout ] || { echo "/logs/access.log is not a link to /dev/stdout"; exit 1; }' \
            _ "$IMAGE" "$tmp"

        # Running containers. As root, podman asks the OCI runtime for
        # RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 4194304 in the container;
        # where the hard limits are lower and CAP_SYS_RESOURCE is withheld
        # (this sandbox: nofile 20000, nproc 32768 for conmon and runc, and
        # no CAP_SYS_RESOURCE in the bounding set) runc's setrlimit() fails
        # with EPERM ("error setting rlimit type 7: operation not
        # permitted"). Then ask for limits within the hard ones, with the
        # runtime podman picks and then with runc.
        nofile=$(ulimit -Hn)
        [ "$nofile" = unlimited ] && nofile=1048576
        [ "$nofile" -gt 1048576 ] && nofile=1048576
        limits=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)
        run_flags=(unusable) run_extra=()
        podman run --rm "$IMAGE" -v >"$tmp/run-default.log" 2>&1
        default_rc=$?
        if [ "$default_rc" = 0 ]; then
            run_flags=() run_extra=()
            pass "podman run $IMAGE -v (podman's defaults)"
        elif podman run --rm "${limits[@]}" "$IMAGE" -v >"$tmp/run.log" 2>&1; then
            run_flags=() run_extra=("${limits[@]}")
        elif command -v runc >/dev/null && podman --runtime runc run --rm "${limits[@]}" \
            "$IMAGE" -v >"$tmp/run.log" 2>&1; then
            run_flags=(--runtime runc) run_extra=("${limits[@]}")
        fi
        if [ "$default_rc" != 0 ] && [ "${run_flags[0]:-}" != unusable ]; then
            why=$(grep -o 'error setting rlimit[^"]*' "$tmp/run-default.log" | head -1)
            pass "podman ${run_flags[*]}${run_flags[*]:+ }run ${run_extra[*]} $IMAGE -v (defaults fail here: ${why:-$(tail -1 "$tmp/run-default.log")})"
        elif [ "${run_flags[0]:-}" = unusable ]; then
            skip "running the image: podman cannot start a container on this machine, even with ${limits[*]} and runc: $(tail -1 "$tmp/run.log" 2>/dev/null || tail -1 "$tmp/run-default.log")"
        fi
        prun() { podman "${run_flags[@]}" run "${run_extra[@]}" "$@"; }

        if [ "${run_flags[0]:-}" = unusable ]; then
            skip "the seed topology in the image: no container can start here (see above)"
        elif ! command -v curl >/dev/null; then
            skip "switchyard echo and the seed topology in the image: curl is not installed"
        else
            name=switchyard-validate-$$
            containers+=("$name")
            if prun -d --name "$name" -p 127.0.0.1::8080 "$IMAGE" echo --name validate >/dev/null 2>"$tmp/echo.log"; then
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
                fail "podman run -d $IMAGE echo: $(tail -1 "$tmp/echo.log")"
            fi
            podman rm -f -t 2 "$name" >/dev/null 2>&1

            # The seed topology, as the seed post runs it: a network that
            # resolves container names (netavark + aardvark-dns), the two
            # echo backends under the names the config uses, then the
            # balancer with examples/seed/nginx.conf and its port published
            # on 127.0.0.1. The balancer resolves the names with the static
            # binary's getaddrinfo (glibc's built-in files and dns).
            net=switchyard-validate-$$
            seed_ok=1
            for c in echogolem1 echogolem2; do
                if podman container exists "$c"; then
                    if [ "$(podman inspect -f '{{index .Config.Labels "switchyard-validate"}}' "$c" 2>/dev/null)" = 1 ]; then
                        podman rm -f -t 2 "$c" >/dev/null 2>&1   # left by an interrupted run
                    else
                        seed_ok=0
                        skip "the seed topology in the image: a container named $c exists and is not this script's (podman rm -f $c to allow the check)"
                    fi
                fi
            done
            if [ "$seed_ok" = 1 ]; then
                if ! podman network create "$net" >"$tmp/net.log" 2>&1; then
                    seed_ok=0
                    fail "podman network create $net: $(tail -1 "$tmp/net.log")"
                elif [ "$(podman network inspect -f '{{.DNSEnabled}}' "$net" 2>/dev/null)" != true ]; then
                    networks+=("$net")
                    seed_ok=0
                    skip "the seed topology in the image: podman network $net resolves no container names (DNS not enabled: install aardvark-dns for netavark, or the dnsname CNI plugin)"
                else
                    networks+=("$net")
                fi
            fi
            if [ "$seed_ok" = 1 ]; then
                for c in echogolem1 echogolem2; do
                    containers+=("$c")
                    if ! prun -d --name "$c" --label switchyard-validate=1 --network "$net" \
                        -p 127.0.0.1::8080 "$IMAGE" echo --name "$c" >/dev/null 2>"$tmp/$c.log"; then
                        seed_ok=0
                        fail "podman run $c: $(tail -1 "$tmp/$c.log")"
                    fi
                done
            fi
            if [ "$seed_ok" = 1 ]; then
                # The seed post starts the echo servers first: wait until both answer.
                for c in echogolem1 echogolem2; do
                    p=$(podman port "$c" 8080/tcp | sed 's/.*://')
                    wait_http "http://127.0.0.1:$p/healthz" || { seed_ok=0; fail "$c did not answer /healthz on 127.0.0.1:$p"; }
                done
            fi
            if [ "$seed_ok" = 1 ]; then
                lb=switchyard-validate-balancer-$$
                containers+=("$lb")
                if prun -d --name "$lb" --label switchyard-validate=1 --network "$net" \
                    -v "$root/examples/seed/nginx.conf:/etc/switchyard/nginx.conf:ro,Z" \
                    -p 127.0.0.1::8080 "$IMAGE" >/dev/null 2>"$tmp/lb.log"; then
                    lbport=$(podman port "$lb" 8080/tcp | sed 's/.*://')
                    export -f wait_http http_seed
                    check "seed topology in the image: the seed's request twice through 127.0.0.1:$lbport reaches echogolem1 and echogolem2, body echoed" bash -c '
                        wait_http "http://127.0.0.1:$1/healthz" || { echo "the balancer does not answer"; podman logs "$2" 2>&1 | tail -5; exit 1; }
                        served=""
                        for i in 1 2; do
                            http_seed "$1" "$3/seed$i" || exit 1
                            head -1 "$3/seed$i.h" | grep -q "^HTTP/1.1 200" || { cat "$3/seed$i.h"; exit 1; }
                            by=$(sed -n "s/^[Xx]-[Ss]erved-[Bb]y: *\([^[:space:]]*\).*/\1/p" "$3/seed$i.h")
                            [ -n "$by" ] || { echo "request $i: no X-Served-By"; cat "$3/seed$i.h"; exit 1; }
                            python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1])) != {\"foo\": \"bar\"})" "$3/seed$i.b" ||
                                { echo "request $i ($by): body is not {\"foo\": \"bar\"}:"; cat "$3/seed$i.b"; exit 1; }
                            served="$served $by"
                        done
                        [ "$(echo $served | tr " " "\n" | sort | tr "\n" " ")" = "echogolem1 echogolem2 " ] ||
                            { echo "served by:$served (want echogolem1 and echogolem2)"; exit 1; }
                        podman logs "$2" 2>/dev/null | grep -q "\"POST / HTTP/1.1\" 200 " ||
                            { echo "no access log line on the balancer stdout"; podman logs "$2" 2>&1 | tail -5; exit 1; }
                    ' _ "$lbport" "$lb" "$tmp"
                else
                    fail "podman run the balancer with examples/seed/nginx.conf: $(tail -1 "$tmp/lb.log")"
                fi
                # The balancer as deploy/kubernetes runs it: read-only root
                # filesystem, a writable /tmp, the Deployment's args.
                k8s_args=$("$PY" -c '
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
(c,) = d["spec"]["template"]["spec"]["containers"]
print("\0".join(c["args"]), end="")' deploy/kubernetes/switchyard-deployment.yaml | tr '\0' '\n')
                mapfile -t k8s_argv <<<"$k8s_args"
                ro=switchyard-validate-ro-$$
                containers+=("$ro")
                if prun -d --name "$ro" --label switchyard-validate=1 --network "$net" \
                    --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,size=64m,mode=1777 \
                    -p 127.0.0.1::8080 "$IMAGE" "${k8s_argv[@]}" >/dev/null 2>"$tmp/ro.log"; then
                    roport=$(podman port "$ro" 8080/tcp | sed 's/.*://')
                    check "the balancer with a read-only root and the kubernetes Deployment's args serves the seed request" bash -c '
                        wait_http "http://127.0.0.1:$1/healthz" || { echo "no answer on 127.0.0.1:$1"; podman logs "$2" 2>&1 | tail -5; exit 1; }
                        http_seed "$1" "$3/ro" || exit 1
                        head -1 "$3/ro.h" | grep -q "^HTTP/1.1 200" && grep -qi "^x-served-by: echogolem[12]" "$3/ro.h" ||
                            { cat "$3/ro.h"; podman logs "$2" 2>&1 | tail -5; exit 1; }
                    ' _ "$roport" "$ro" "$tmp"
                else
                    fail "podman run --read-only the balancer with the Deployment's args: $(tail -1 "$tmp/ro.log")"
                fi
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
