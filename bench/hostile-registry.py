#!/usr/bin/env python3
"""A registry that misbehaves on purpose, for bench/hostile.sh.

Modes: endless-manifest (a manifest body that never ends), endless-layer (an honest manifest
whose 10 KiB layer never ends), trickle-layer (the layer's declared bytes, one a second, each
inside any read timeout), silent (accepts connections, never answers). Prints its port.
"""
import hashlib
import json
import socket
import sys
import threading
import time

MODE = sys.argv[1]
LAYER_SIZE = 10 << 10
layer = b"\0" * LAYER_SIZE
layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "windows", "os.version": "10.0.20348.1",
    "rootfs": {"type": "layers", "diff_ids": [layer_digest]}, "config": {},
}).encode()
config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": config_digest, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest, "size": LAYER_SIZE}],
}).encode()


def endless(connection, content_type):
    connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                       "Connection: close\r\n\r\n".encode())
    chunk = b"0" * (64 << 10)
    while True:
        connection.sendall(chunk)


def trickle(connection, body):
    connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
                       "Connection: close\r\n\r\n".encode())
    for byte in body:
        time.sleep(1)
        connection.sendall(bytes([byte]))


def whole(connection, body, content_type="application/octet-stream"):
    connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                       f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def serve(connection):
    try:
        request = b""
        while b"\r\n\r\n" not in request:
            data = connection.recv(4096)
            if not data:
                return
            request += data
        if MODE == "silent":
            while connection.recv(4096):
                pass
            return
        path = request.split(b" ")[1].decode()
        if path == "/v2/":
            whole(connection, b"{}")
        elif "/manifests/" in path:
            if MODE == "endless-manifest":
                endless(connection, "application/vnd.oci.image.manifest.v1+json")
            else:
                whole(connection, manifest, "application/vnd.oci.image.manifest.v1+json")
        elif path.endswith(config_digest):
            whole(connection, config)
        elif path.endswith(layer_digest) and MODE == "trickle-layer":
            trickle(connection, layer)
        elif path.endswith(layer_digest):
            endless(connection, "application/octet-stream")
        else:
            connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    except OSError:
        pass
    finally:
        connection.close()


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)
while True:
    client, _ = server.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
