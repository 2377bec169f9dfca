#!/usr/bin/env python3
"""Writes examples/images/nanoserver-demo: a tiny OCI image layout shaped like a Windows
base image (an image index with two Windows builds, each a manifest, a config with
os.version and a layer in the Windows tar format). It is a stand-in for `pane plan`, not the
real Nano Server: its layer holds a few small files. Re-run to regenerate; output is
byte-for-byte reproducible.

`make-nanoserver-demo.py OUT BUILD...` writes the layout to OUT with the given builds instead
(.ci/wine-e2e makes one whose build is the wine host's)."""
import gzip, hashlib, io, json, os, shutil, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "nanoserver-demo")
BUILDS = ["10.0.20348.2700", "10.0.26100.1742"]


def blob(data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(OUT, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def windows_layer(build: str) -> bytes:
    files = {
        "Files/Windows/System32/cmd.exe": b"MZ stand-in for cmd.exe\n",
        "Files/hello.txt": f"hello from a Windows {build} stand-in layer\n".encode(),
        "UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi": b"stand-in boot manager\n",
    }
    dirs = ["Files", "Files/Windows", "Files/Windows/System32", "Hives", "UtilityVM", "UtilityVM/Files",
            "UtilityVM/Files/EFI", "UtilityVM/Files/EFI/Microsoft", "UtilityVM/Files/EFI/Microsoft/Boot"]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            info.pax_headers = {"MSWINDOWS.fileattr": "16", "LIBARCHIVE.creationtime": "1700000000"}
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            info.pax_headers = {"MSWINDOWS.fileattr": "32", "LIBARCHIVE.creationtime": "1700000000"}
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "blobs", "sha256"))
    manifests = []
    for build in BUILDS:
        tar = windows_layer(build)
        compressed = gzip.compress(tar, mtime=0)
        layer = blob(compressed)
        config = {
            "architecture": "amd64",
            "os": "windows",
            "os.version": build,
            "config": {
                "Cmd": ["c:\\windows\\system32\\cmd.exe"],
                "Env": ["PATH=c:\\Windows\\System32;c:\\Windows"],
                "User": "ContainerUser",
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        }
        config_blob = blob(json.dumps(config, indent=2).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }
        descriptor = blob(json.dumps(manifest, indent=2).encode())
        manifests.append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **descriptor,
            "platform": {"architecture": "amd64", "os": "windows", "os.version": build},
        })
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    index_blob = blob(json.dumps(index, indent=2).encode())
    top = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", **index_blob,
            "annotations": {"org.opencontainers.image.ref.name": "ltsc2022"},
        }],
    }
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(top, f, indent=2)
    with open(os.path.join(OUT, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        OUT, BUILDS = os.path.abspath(sys.argv[1]), sys.argv[2:]
    main()
