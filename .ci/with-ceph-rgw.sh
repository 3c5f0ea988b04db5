#!/usr/bin/env bash
# with-ceph-rgw.sh CMD ARGS...: run CMD with a throw-away Ceph RADOS Gateway (S3) up, then stop it.
#
# Starts .ci/ceph-rgw.sh in a fresh directory on a free loopback port (apt-installs Ceph the first
# time, ~20 s; starting takes ~16 s), exports what it prints (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, S3_ENDPOINT) and S3_CEPH_DIR (the fault tests stop and restart the
# gateway through it), runs CMD, and stops the daemons on any exit (a trap), keeping CMD's status.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
dir="$(mktemp -d "${TMPDIR:-/tmp}/vault-ceph-rgw.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() { bash "$here/ceph-rgw.sh" stop "$dir" || true; rm -rf "$dir"; }
trap cleanup EXIT
credentials="$(bash "$here/ceph-rgw.sh" start "$dir" "$port")"
for assignment in $credentials; do
  export "${assignment?}"
done
export S3_CEPH_DIR="$dir"
echo "with-ceph-rgw: S3 gateway at $S3_ENDPOINT (data in $dir)" >&2
"$@"
