"""Which file system a SQLite database lives on.

SQLite relies on POSIX advisory locks and, in WAL mode, on shared memory; on network file
systems (NFS, SMB/CIFS, sshfs, …) those are missing or unreliable, and concurrent writers can
corrupt the database or lose acknowledged writes. QFlow refuses such a location unless the
user accepts the risk explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

MOUNTS = Path("/proc/mounts")
ALLOW_ENV = "QFLOW_ALLOW_NETWORK_SQLITE"
NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "9p",
    }
)


def network_filesystem(path: Path) -> str | None:
    """The type of the network file system ``path`` is on, or None (local, or unknown)."""
    try:
        lines = MOUNTS.read_text(encoding="utf-8").splitlines()
    except OSError:  # not Linux, or /proc not mounted: cannot tell
        return None
    target = os.path.realpath(path)
    best, kind = "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind if kind in NETWORK_TYPES else None


def network_sqlite_allowed() -> bool:
    return os.environ.get(ALLOW_ENV) == "1"
