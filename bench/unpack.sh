#!/usr/bin/env bash
# Unpack benchmark: a generated Windows layer (FILES files, TOTAL_MIB MiB uncompressed,
# default 50,000 and 1024, PAX MSWINDOWS records, gzip -1) unpacked into the portable layer
# store by pane and staged as the legacy import folder a Windows import hands to ImportLayer,
# next to `gzip -dc | tar -x` and `gzip -dc > /dev/null` on the same file.
# Reports MB/s of uncompressed data and pane's peak RSS.
#   bash bench/unpack.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
files=${FILES:-50000}
total_mib=${TOTAL_MIB:-1024}
cargo build --release -q -p pane-wclayer --bin pane-wclayer-unpack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/layer.tar" "$files" "$total_mib" <<'PY'
import os, sys, tarfile
out, files, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
size = total // files
noise = os.urandom(1 << 20)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
    for d in ["Files", "Hives"] + [f"Files/dir{i:03d}" for i in range(100)]:
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE
        info.pax_headers = {"MSWINDOWS.fileattr": "16"}
        tar.addfile(info)
    for i in range(files):
        # A quarter random, the rest repeated: compresses about like binaries do.
        start = (i * 4099) % (len(noise) - size)
        chunk = noise[start:start + size // 4]
        data = (chunk * 4)[:size]
        info = tarfile.TarInfo(f"Files/dir{i % 100:03d}/file{i:06d}.bin"); info.size = len(data)
        info.pax_headers = {"MSWINDOWS.fileattr": "32", "LIBARCHIVE.creationtime": "1700000000"}
        tar.addfile(info, __import__("io").BytesIO(data))
PY
diff_id="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
bytes=$(stat -c %s "$work/layer.tar")
gzip -1 -c "$work/layer.tar" > "$work/layer.tgz"
rm "$work/layer.tar"
sync

measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
rate() { python3 -c "print(round($bytes / $1 / 1e6))"; }
read -r pane_s pane_kb < <(measure target/release/pane-wclayer-unpack "$work/layer.tgz" "$diff_id" "$work/store")
rm -rf "$work/store"
read -r stage_s stage_kb < <(measure target/release/pane-wclayer-unpack --import-folder "$work/layer.tgz" "$diff_id" "$work/staging")
rm -rf "$work/staging"
mkdir "$work/tar-x"
read -r tar_s _ < <(measure sh -c "gzip -dc '$work/layer.tgz' | tar -x -C '$work/tar-x'")
read -r gz_s _ < <(measure sh -c "gzip -dc '$work/layer.tgz' > /dev/null")
echo "layer: $files files, $((bytes >> 20)) MiB uncompressed, $(( $(stat -c %s "$work/layer.tgz") >> 20 )) MiB gzip"
echo "pane unpack:         ${pane_s} s  $(rate "$pane_s") MB/s  peak RSS $((pane_kb / 1024)) MiB"
echo "pane import folder:  ${stage_s} s  $(rate "$stage_s") MB/s  peak RSS $((stage_kb / 1024)) MiB"
echo "gzip -dc | tar -x:   ${tar_s} s  $(rate "$tar_s") MB/s"
echo "gzip -dc > /dev/null: ${gz_s} s  $(rate "$gz_s") MB/s"
