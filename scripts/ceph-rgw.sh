#!/usr/bin/env bash
# Single-node Ceph cluster (one mon, one memstore OSD, one radosgw) on 127.0.0.1, all state under DIR.
#
#   scripts/ceph-rgw.sh start DIR   # prints shell assignments: RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY
#   scripts/ceph-rgw.sh stop DIR    # stops every daemon started for DIR
#
# Why these settings: no cephx (auth ... = none) and no mgr keep start-up at ~15 s; memstore keeps the OSD off
# the disk; pool size 1 with few PGs lets a single OSD reach active+clean; `tcp_nodelay=1` on beast avoids a
# ~44 ms Nagle delay on every small response. See docs/testing.md.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

log() { echo "ceph-rgw: $*" >&2; }

# A `ceph` command against the new monitor, retried: under load its first commands can time out, or the monitor can
# drop one sent before the client had the monmap ("handle_command on fsid 0000... != <fsid>" in mon.a.log), which
# leaves the client waiting forever. Every command used here is idempotent, so a retry with a short deadline is safe.
ceph_cmd() {
    local conf=$1 attempt out
    shift
    for attempt in 1 2 3 4 5 6; do
        if out=$(timeout 20 ceph -c "$conf" --connect-timeout 15 "$@" 2>"$conf.cmd.err"); then
            printf '%s\n' "$out"
            return 0
        fi
        log "ceph $* failed (attempt $attempt): $(tail -n 1 "$conf.cmd.err")"
        sleep 1
    done
    return 1
}

stop() {
    local d=$1 pidfile pid pids=()
    [[ -d "$d/run" ]] || return 0
    for name in client.rgw.0 osd.0 mon.a; do
        pidfile="$d/run/$name.pid"
        [[ -f "$pidfile" ]] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$pidfile"
    done
    # The state is throw-away (memstore), so a clean shutdown is not needed: give it 3 s, then kill.
    for _ in $(seq 1 30); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

dump_logs() {
    local d=$1 f
    for f in "$d"/log/*.log; do
        [[ -f "$f" ]] || continue
        echo "----- tail $f" >&2
        tail -n 30 "$f" >&2
    done
}

# EXIT trap of `start`: a failed start leaves nothing running ($? on entry is the script's exit status).
start_failed() {
    local rc=$? d=$1
    if [[ $rc != 0 ]]; then log "start failed ($rc)"; dump_logs "$d"; stop "$d"; fi
}

start() {
    local d
    mkdir -p "$2"
    d=$(cd "$2" && pwd)
    local mon_port rgw_port fsid osd_uuid conf access secret
    mon_port=$(free_port)
    rgw_port=$(free_port)
    fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    access=${RGW_ACCESS_KEY:-RGWTESTACCESSKEY$(python3 -c 'import secrets; print(secrets.token_hex(2).upper())')}
    secret=${RGW_SECRET_KEY:-$(python3 -c 'import secrets; print(secrets.token_hex(20))')}
    conf="$d/ceph.conf"
    mkdir -p "$d/run" "$d/log" "$d/mon" "$d/osd" "$d/rgw"
    # Any failure below leaves nothing running.
    started_dir=$d  # global: the trap runs after `start` returned
    trap 'start_failed "$started_dir"' EXIT

    cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
ms bind msgr2 = false
ms bind ipv6 = false
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = $d/run
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
log file = $d/log/\$name.log
log to stderr = false
err to stderr = false
crash dir = $d/crash
keyring = $d/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $d/mon/\$name
mon cluster log file = $d/log/cluster.log
[osd]
osd data = $d/osd/\$name
# The OSD's own start-up crush commands can race its first monmap and fail with 'wrong fsid'; the script
# places the OSD in the crush map itself instead.
osd crush update on start = false
osd class update on start = false
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-4294967296}
osd max object size = 1073741824
[client.rgw.0]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $d/rgw
rgw thread pool size = 64
# SSE-C over plain HTTP (loopback only): the integration suite checks that the gateway's own reads carry the key.
rgw crypt require ssl = false
CONF

    log "monitor on 127.0.0.1:$mon_port"
    monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$d/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$d/monmap" >"$d/log/mon-mkfs.out" 2>&1
    ceph-mon -c "$conf" -i a

    # `ceph osd create` also proves the monitor answers.
    local osd_id
    # `osd create` with a uuid returns the same id when repeated, and the crush commands are no-ops the second time.
    osd_id=$(ceph_cmd "$conf" osd create "$osd_uuid")
    if [[ "$osd_id" != "0" ]]; then
        log "unexpected osd id '$osd_id'"
        dump_logs "$d"; stop "$d"; exit 1
    fi
    ceph_cmd "$conf" osd crush add-bucket localhost host >/dev/null
    ceph_cmd "$conf" osd crush move localhost root=default >/dev/null
    ceph_cmd "$conf" osd crush add osd.0 1.0 host=localhost >/dev/null
    mkdir -p "$d/osd/osd.0"
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$d/log/osd-mkfs.out" 2>&1
    local up=0 attempt
    for attempt in 1 2 3; do
        ceph-osd -c "$conf" -i 0
        for _ in $(seq 1 60); do
            if timeout 10 ceph -c "$conf" osd dump 2>/dev/null | grep -q '^osd.0 up'; then up=1; break; fi
            # A daemon that died during init is retried (seen once: a start-up race with the monitor).
            if ! { [[ -f "$d/run/osd.0.pid" ]] && kill -0 "$(cat "$d/run/osd.0.pid")" 2>/dev/null; }; then break; fi
            sleep 0.25
        done
        [[ $up == 1 ]] && break
        log "osd.0 not up (attempt $attempt), restarting it"
        if [[ -f "$d/run/osd.0.pid" ]]; then kill -KILL "$(cat "$d/run/osd.0.pid")" 2>/dev/null || true; fi
        sleep 0.5
    done
    if [[ $up != 1 ]]; then log "osd.0 did not come up"; exit 1; fi
    log "osd.0 up (memstore)"

    log "radosgw on 127.0.0.1:$rgw_port"
    radosgw -c "$conf" -n client.rgw.0

    # radosgw creates its pools on first start; the user can be created once the zone exists.
    local ok=0
    for _ in $(seq 1 120); do
        if timeout 20 radosgw-admin -c "$conf" user create --uid=tester --display-name=tester \
            --access-key="$access" --secret="$secret" >"$d/log/user-create.out" 2>&1; then
            ok=1; break
        fi
        if grep -q 'already exists' "$d/log/user-create.out"; then ok=1; break; fi
        sleep 0.5
    done
    if [[ $ok != 1 ]]; then
        log "could not create the S3 user"; cat "$d/log/user-create.out" >&2
        dump_logs "$d"; stop "$d"; exit 1
    fi

    # Ready means a real signed S3 request succeeds.
    ok=0
    for _ in $(seq 1 120); do
        if RGW_ENDPOINT="http://127.0.0.1:$rgw_port" RGW_ACCESS_KEY="$access" RGW_SECRET_KEY="$secret" \
            python3 - >/dev/null 2>&1 <<'PY'
import os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"], aws_secret_access_key=os.environ["RGW_SECRET_KEY"],
                  config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
s3.list_buckets()
PY
        then ok=1; break; fi
        sleep 0.5
    done
    if [[ $ok != 1 ]]; then
        log "radosgw did not answer S3 requests"; dump_logs "$d"; stop "$d"; exit 1
    fi

    cat >"$d/env" <<ENV
RGW_ENDPOINT=http://127.0.0.1:$rgw_port
RGW_ACCESS_KEY=$access
RGW_SECRET_KEY=$secret
ENV
    cat "$d/env"
}

case "$cmd" in
    start) start "$cmd" "$dir" ;;
    stop) stop "$dir" ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
