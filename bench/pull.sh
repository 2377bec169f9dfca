#!/usr/bin/env bash
# Pull benchmark: an image of LAYERS layers × LAYER_MIB MiB (default 3 × 300) served by a
# loopback docker-registry. Times `pane pull` against `skopeo copy` of the same image to an
# OCI layout, and against `sha256sum` of the largest layer (the single-core hashing limit).
# Reports peak RSS of pane. Needs docker-registry, skopeo and a release build of pane.
#   bash bench/pull.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${LAYERS:-3}
mib=${LAYER_MIB:-300}
pane=target/release/pane
cargo build --release -q -p pane-cli
work=$(mktemp -d)
trap 'kill $registry_pid 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$work/layout" "$layers" "$mib" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, layers, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{out}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
descs, diffs = [], []
for i in range(layers):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = os.urandom(mib << 20)
        info = tarfile.TarInfo(f"Files/blob{i}.bin"); info.size = len(payload)
        info.pax_headers = {"MSWINDOWS.fileattr": "32"}
        tar.addfile(info, io.BytesIO(payload))
    data = raw.getvalue()
    diffs.append("sha256:" + hashlib.sha256(data).hexdigest())
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(data)})
config = {"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2700",
          "rootfs": {"type": "layers", "diff_ids": diffs}}
cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(json.dumps(config).encode())}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": descs}
m = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(json.dumps(manifest).encode()),
     "annotations": {"org.opencontainers.image.ref.name": "v1"}}
json.dump({"schemaVersion": 2, "manifests": [m]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
sleep 1
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://127.0.0.1:$port/bench/image:v1"
largest=$(ls -S "$work/layout/blobs/sha256" | head -1)
sync

seconds() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
read -r pane_s pane_kb < <(seconds "$pane" --quiet --root "$work/pane" pull --host-build 10.0.20348 "127.0.0.1:$port/bench/image:v1")
read -r skopeo_s _ < <(seconds skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$port/bench/image:v1" "oci:$work/skopeo:v1")
read -r sha_s _ < <(seconds sh -c "cat '$work/layout/blobs/sha256/$largest' | sha256sum")
total_mib=$((layers * mib))
echo "image: $layers layers x $mib MiB = $total_mib MiB"
echo "pane pull:        ${pane_s} s  ($(python3 -c "print(round($total_mib/$pane_s))") MiB/s), peak RSS $((pane_kb / 1024)) MiB"
echo "skopeo copy:      ${skopeo_s} s  ($(python3 -c "print(round($total_mib/$skopeo_s))") MiB/s)"
echo "sha256sum 1 layer: ${sha_s} s  ($(python3 -c "print(round($mib/$sha_s))") MiB/s single-core limit)"
