#!/usr/bin/env bash
# Builds the container image: the project's .deb (packaging/build-packages.sh), staged with the
# jails' /dev/null into packaging/container/, the build context; then `podman build` (or
# `docker build` with ENGINE=docker). Arguments are passed to the build, e.g.
#     bash packaging/container/build.sh -t sftpd-wrapper:test --build-arg BASE=localhost/base
# With SFTPD_DEB=FILE the .deb is taken from FILE instead of being built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
engine=${ENGINE:-podman}
deb=${SFTPD_DEB:-}
if [ -z "$deb" ]; then
    bash packaging/build-packages.sh >/dev/null
    deb=$(ls -t target/debian/sftpd-wrapper_*.deb | head -n 1)
fi
cp "$deb" "$here/sftpd-wrapper.deb"
# A tar of one character device, 1:3 (/dev/null), at .dev/null: ADD extracts it as the engine's
# root, so the image holds the node without CAP_MKNOD in the build or in the container. The
# archive is written from the header fields alone (no device node is read or created here).
python3 - "$here/jail-dev.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as tar:
    d = tarfile.TarInfo(".dev"); d.type = tarfile.DIRTYPE; d.mode = 0o755
    n = tarfile.TarInfo(".dev/null"); n.type = tarfile.CHRTYPE; n.mode = 0o666
    n.devmajor, n.devminor = 1, 3
    for info in (d, n):
        info.uid = info.gid = 0; info.uname = info.gname = "root"; info.mtime = 0
        tar.addfile(info)
PY
args=("$@")
case " ${args[*]-} " in *" -t "*|*" --tag "*) ;; *) args+=(-t sftpd-wrapper) ;; esac
"$engine" build -f "$here/Containerfile" "${args[@]}" "$here"
