#!/usr/bin/env python3
"""Writes a single-layer OCI image layout as a tar archive, without Docker.

The layer is an uncompressed tar with fixed mtimes and owners, so rebuilding from the same files gives
the same digests. index.json carries io.containerd.image.name, so `ctr images import` names the image.

usage: mkimage.py --name REF --out FILE [--entrypoint JSON] [--cmd JSON] [--user UID:GID]
                  [--file SRC:DST[:MODE]]... [--symlink LINK:TARGET]... [--dir DST[:MODE]]...
                  [--net-bind DST]

--net-bind DST gives the file DST the capability CAP_NET_BIND_SERVICE (a security.capability xattr in
the layer, as `setcap cap_net_bind_service=+ep` would), so that a non-root user can bind port 53.
"""
import argparse
import hashlib
import io
import json
import struct
import tarfile

EPOCH = 0
CAP_NET_BIND_SERVICE = 10
# struct vfs_cap_data, revision 2, effective flag set: permitted = {CAP_NET_BIND_SERVICE}.
NET_BIND_XATTR = struct.pack("<IIIII", 0x02000000 | 0x1, 1 << CAP_NET_BIND_SERVICE, 0, 0, 0)


def add_dir(layer, path, mode=0o755):
    info = tarfile.TarInfo(path.strip("/"))
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, EPOCH
    layer.addfile(info)


def parent_dirs(paths):
    seen = set()
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            seen.add("/".join(parts[:i]))
    return sorted(seen)


def build_layer(files, symlinks, dirs, net_bind=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        explicit = {d.strip("/"): m for d, m in dirs}
        for d in sorted(set(parent_dirs([dst for _, dst, _ in files] + [l for l, _ in symlinks])) | set(explicit)):
            add_dir(layer, d, explicit.get(d, 0o755))
        for src, dst, mode in sorted(files, key=lambda f: f[1]):
            with open(src, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(dst.strip("/"))
            info.size, info.mode, info.mtime = len(data), mode, EPOCH
            if dst in net_bind:
                # PAX carries binary values through surrogate escapes (hdrcharset=BINARY).
                info.pax_headers = {"SCHILY.xattr.security.capability": NET_BIND_XATTR.decode("utf-8", "surrogateescape")}
            layer.addfile(info, io.BytesIO(data))
        for link, target in sorted(symlinks):
            info = tarfile.TarInfo(link.strip("/"))
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, EPOCH
            layer.addfile(info)
    return buf.getvalue()


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime = len(data), EPOCH
    out.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}", len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--entrypoint", default="null")
    ap.add_argument("--cmd", default="null")
    ap.add_argument("--user", default="")
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--symlink", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[])
    ap.add_argument("--net-bind", action="append", default=[])
    ap.add_argument("--arch", default="amd64", help="the image config's architecture (amd64, arm64)")
    a = ap.parse_args()

    files = []
    for spec in a.file:
        parts = spec.split(":")
        files.append((parts[0], parts[1], int(parts[2], 8) if len(parts) > 2 else 0o755))
    symlinks = [tuple(s.split(":", 1)) for s in a.symlink]
    dirs = []
    for spec in a.dir:
        parts = spec.split(":")
        dirs.append((parts[0], int(parts[1], 8) if len(parts) > 1 else 0o755))

    layer = build_layer(files, symlinks, dirs, set(a.net_bind))
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": a.arch,
        "os": "linux",
        "config": {"Entrypoint": json.loads(a.entrypoint), "Cmd": json.loads(a.cmd),
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    if a.user:
        config["config"]["User"] = a.user
    with tarfile.open(a.out, "w") as out:
        layer_d, layer_n = blob(out, layer)
        cfg_d, cfg_n = blob(out, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg_n},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer_n}],
        }
        man_d, man_n = blob(out, json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d, "size": man_n,
                "annotations": {"io.containerd.image.name": a.name, "org.opencontainers.image.ref.name": a.name},
            }],
        }
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index, sort_keys=True).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), EPOCH
            out.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
