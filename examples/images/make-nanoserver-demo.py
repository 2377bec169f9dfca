#!/usr/bin/env python3
"""Writes examples/images/nanoserver-demo: a tiny OCI image layout shaped like a Windows
base image (an image index with two Windows builds, each a manifest, a config with
os.version and a layer in the Windows tar format). It is a stand-in for `pane plan`, not the
real Nano Server: its layer holds a few small files. Re-run to regenerate; output is
byte-for-byte reproducible.

`make-nanoserver-demo.py OUT [--rich] BUILD...` writes the layout to OUT with the given builds
instead (.ci/wine-e2e makes one whose build is the wine host's). `--rich` gives the base layer's
files security descriptors and adds a second layer: a new file with a descriptor and an
alternate data stream, hard links to it and to a base-layer file, a whiteout, a hive."""
import base64, gzip, hashlib, io, json, os, shutil, struct, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "nanoserver-demo")
BUILDS = ["10.0.20348.2700", "10.0.26100.1742"]
RICH = False


def security_descriptor() -> str:
    """O:BAG:SYD:(A;;FA;;;BA) as a self-relative SECURITY_DESCRIPTOR, base64 (MSWINDOWS.rawsd)."""
    admins = bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 32, 544)
    system = bytes([1, 1, 0, 0, 0, 0, 0, 5]) + struct.pack("<I", 18)
    ace = struct.pack("<BBHI", 0, 0, 8 + len(admins), 0x001F01FF) + admins
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(ace), 1, 0) + ace
    owner = 20
    group = owner + len(admins)
    dacl = group + len(system)
    header = struct.pack("<BBHIIII", 1, 0, 0x8004, owner, group, 0, dacl)
    return base64.b64encode(header + admins + system + acl).decode()


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
            if RICH and name.startswith("Files/"):
                info.pax_headers["MSWINDOWS.rawsd"] = security_descriptor()
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def child_layer() -> bytes:
    raw = io.BytesIO()
    pax = {"LIBARCHIVE.creationtime": "1700000000"}

    def entry(name, kind, **fields):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, 0o644, 1700000000
        info.pax_headers = dict(pax, **fields.pop("pax", {}))
        for key, value in fields.items():
            setattr(info, key, value)
        return info

    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["Files", "Hives"]:
            tar.addfile(entry(d, tarfile.DIRTYPE, mode=0o755, pax={"MSWINDOWS.fileattr": "16"}))
        data = b"added by the second layer\n"
        tar.addfile(entry("Files/child.txt", tarfile.REGTYPE, size=len(data),
                          pax={"MSWINDOWS.fileattr": "32", "MSWINDOWS.rawsd": security_descriptor()}),
                    io.BytesIO(data))
        stream = b"[ZoneTransfer]\r\nZoneId=3\r\n"
        tar.addfile(entry("Files/child.txt:Zone.Identifier", tarfile.REGTYPE, size=len(stream)),
                    io.BytesIO(stream))
        tar.addfile(entry("Files/child-link.txt", tarfile.LNKTYPE, linkname="Files/child.txt"))
        tar.addfile(entry("Files/cmd-link.exe", tarfile.LNKTYPE, linkname="Files/Windows/System32/cmd.exe"))
        tar.addfile(entry("Files/.wh.hello.txt", tarfile.REGTYPE))
        hive = b"stand-in registry delta\n"
        tar.addfile(entry("Hives/DefaultUser_Delta", tarfile.REGTYPE, size=len(hive)), io.BytesIO(hive))
    return raw.getvalue()


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "blobs", "sha256"))
    manifests = []
    for build in BUILDS:
        tars = [windows_layer(build)] + ([child_layer()] if RICH else [])
        layers = [blob(gzip.compress(tar, mtime=0)) for tar in tars]
        config = {
            "architecture": "amd64",
            "os": "windows",
            "os.version": build,
            "config": {
                "Cmd": ["c:\\windows\\system32\\cmd.exe"],
                "Env": ["PATH=c:\\Windows\\System32;c:\\Windows"],
                "User": "ContainerUser",
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
        }
        config_blob = blob(json.dumps(config, indent=2).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer} for layer in layers],
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
        if BUILDS[0] == "--rich":
            RICH, BUILDS = True, BUILDS[1:]
    main()
