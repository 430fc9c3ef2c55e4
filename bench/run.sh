#!/usr/bin/env bash
# bench/run.sh: measure the gateway against nginx in front of a local OSS
# stand-in (bench/upstream). See bench/README.md.
#
#   bash bench/run.sh            compare: nginx-default, nginx-tuned, gw-public,
#                                gw-private on 1k, 256k, 64m, then an RSS run
#   bash bench/run.sh scale      gw-public at 16/64/256/512 connections on 1k and
#                                64m, then a 1 GiB object streamed
#   bash bench/run.sh cache      object cache: gw-cache vs nginx-cache (proxy_cache),
#                                gw-nocache and nginx-tuned, behind a 20 ms upstream,
#                                hot sets that fit memory and 4x memory
#   bash bench/run.sh herd       500 concurrent GETs of one cold 64 MiB object:
#                                upstream GETs counted (gw-cache, nginx-cache, gw-nocache)
#
# Environment:
#   DURATION=10 ROUNDS=3       seconds per wrk run, interleaved rounds
#   QUICK=1                    smoke test: 1 round, 3 s runs
#   ONLY=1k,gw-public          only these sizes and/or targets (comma-separated)
#   THREADS=2 CONNS=64         wrk threads and connections (compare mode)
#   BASE_PORT=18080            ports BASE_PORT..BASE_PORT+17 on 127.0.0.1
#   UPSTREAM_DELAY=20ms        upstream first-byte delay (default 0 in compare and
#                              scale, 20ms in cache and herd)
#   CACHE_MEMORY=32 CACHE_DISK=4096   cache mode: [cache] memory / max_size in MiB
#                              (nginx: keys_zone / max_size the same)
#   HERD_N=500                 herd: concurrent requests
#   OUT=bench/results          where CSV and markdown results go
#   KEEP_TMP=1                 keep the temp dir (configs, logs) after exit
#   GATEWAY_BIN=path           measure this prebuilt gateway instead of building the tree
set -euo pipefail
export GOTOOLCHAIN=local

MODE=${1:-compare}
case $MODE in
compare | scale | cache | herd) ;;
*)
	echo "usage: bash bench/run.sh [compare|scale|cache|herd]" >&2
	exit 2
	;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	DURATION=3
	ROUNDS=1
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
ONLY=${ONLY:-}
BASE_PORT=${BASE_PORT:-18080}
OUT=${OUT:-$ROOT/bench/results}
WRK_TIMEOUT=${WRK_TIMEOUT:-60s}
# Scale mode: 64 MiB bodies at 512 connections need ~20 s to complete at all.
SCALE_64M_DURATION=${SCALE_64M_DURATION:-$((DURATION * 3))}

ALL_SIZES=(1k 256k 64m)
ALL_TARGETS=(nginx-default nginx-tuned gw-public gw-private)
case $MODE in
cache) ALL_TARGETS=(nginx-cache gw-cache gw-nocache nginx-tuned) ;;
herd) ALL_TARGETS=(gw-cache nginx-cache gw-nocache) ;;
esac
# The upstream's first-byte delay: none in compare and scale (their numbers
# stay comparable with earlier runs), OSS-like 20 ms for the cache modes.
if [[ $MODE == cache || $MODE == herd ]]; then
	UPSTREAM_DELAY=${UPSTREAM_DELAY:-20ms}
else
	UPSTREAM_DELAY=${UPSTREAM_DELAY:-0}
fi
# Cache mode: [cache] memory and max_size (MiB); nginx-cache gets the same
# keys_zone and max_size. Hot sets: half of CACHE_MEMORY ("mem") and four
# times it ("disk"), in objects of the row's size (at least one).
CACHE_MEMORY=${CACHE_MEMORY:-32}
CACHE_DISK=${CACHE_DISK:-4096}
CACHE_CASES=${CACHE_CASES:-mem,disk}
HERD_N=${HERD_N:-500}
declare -A BYTES=([1k]=1024 [256k]=262144 [64m]=67108864 [1g]=1073741824)

# Ports, all on 127.0.0.1.
declare -A PORT=(
	[upstream]=$BASE_PORT
	[nginx-default]=$((BASE_PORT + 1))
	[nginx-tuned]=$((BASE_PORT + 2))
	[gw-public]=$((BASE_PORT + 3))
	[gw-private]=$((BASE_PORT + 4))
	[nginx-cache]=$((BASE_PORT + 5))
	[gw-cache]=$((BASE_PORT + 6))
	[gw-nocache]=$((BASE_PORT + 7))
	[gw-public-admin]=$((BASE_PORT + 13))
	[gw-private-admin]=$((BASE_PORT + 14))
	[gw-cache-admin]=$((BASE_PORT + 16))
	[gw-nocache-admin]=$((BASE_PORT + 17))
)
# Host header each target is called with ("" = wrk's default, 127.0.0.1:PORT).
declare -A HOSTHDR=([nginx-default]="" [nginx-tuned]="" [gw-public]=img.bench.test [gw-private]=private.bench.test
	[nginx-cache]="" [gw-cache]=cache.bench.test [gw-nocache]=nocache.bench.test)
# Every target gets the same Referer and Origin, so request sizes match;
# gw-public checks them (referer allow list, CORS rule).
REFERER="https://www.bench.test/page.html"
ORIGIN="https://www.bench.test"

export OSS_ACCESS_KEY_ID=LTAIbenchmark OSS_ACCESS_KEY_SECRET=benchmark-secret-not-checked
unset OSS_SESSION_TOKEN || true

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf '[bench] ERROR: %s\n' "$*" >&2
	exit 1
}

# --- selection ---------------------------------------------------------------

selected() { # selected NAME KIND(size|target): honours ONLY
	local name=$1 kind=$2 tok any=0 hit=0
	[[ -z $ONLY ]] && return 0
	local -a list
	IFS=, read -ra list <<<"$ONLY"
	for tok in "${list[@]}"; do
		if [[ $kind == size && -n ${BYTES[$tok]+x} ]] || [[ $kind == target && " ${ALL_TARGETS[*]} " == *" $tok "* ]]; then
			any=1
			[[ $tok == "$name" ]] && hit=1
		fi
	done
	((any == 0 || hit == 1))
}

if [[ -n $ONLY ]]; then
	IFS=, read -ra only_tokens <<<"$ONLY"
	for tok in "${only_tokens[@]}"; do
		[[ -n ${BYTES[$tok]+x} || " ${ALL_TARGETS[*]} " == *" $tok "* ]] ||
			die "ONLY: unknown size or target '$tok' (sizes: ${!BYTES[*]}; targets: ${ALL_TARGETS[*]})"
	done
fi
SIZES=() TARGETS=()
for s in "${ALL_SIZES[@]}"; do selected "$s" size && SIZES+=("$s"); done
for t in "${ALL_TARGETS[@]}"; do selected "$t" target && TARGETS+=("$t"); done
if [[ $MODE != scale ]]; then
	((${#SIZES[@]} > 0)) || die "ONLY=$ONLY selects no size (sizes: ${ALL_SIZES[*]})"
	((${#TARGETS[@]} > 0)) || die "ONLY=$ONLY selects no target (targets: ${ALL_TARGETS[*]})"
fi

# --- processes -----------------------------------------------------------------

TMP=$(mktemp -d /tmp/gwbench.XXXXXX)
chmod 755 "$TMP"
declare -A PGID=()
STARTED=()

# live_in_group PGID: the processes of a process group that are not zombies.
live_in_group() {
	local p
	for p in $(pgrep -g "$1" 2>/dev/null); do
		[[ $(awk '{sub(/.*\) /, ""); print $1}' "/proc/$p/stat" 2>/dev/null) == [^Z]* ]] && echo "$p"
	done
	return 0
}

# stop NAME: SIGTERM to NAME's process group, SIGKILL after 5 s, then reap.
stop() {
	local name=$1 pg=${PGID[$1]:-} i
	[[ -n $pg ]] || return 0
	kill -TERM -- "-$pg" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		[[ -z $(live_in_group "$pg") ]] && break
		sleep 0.1
	done
	if [[ -n $(live_in_group "$pg") ]]; then
		log "$name (process group $pg) ignored SIGTERM; sending SIGKILL"
		kill -KILL -- "-$pg" 2>/dev/null || true
	fi
	wait "$pg" 2>/dev/null || true
	unset "PGID[$name]"
}

cleanup() {
	local rc=$? name
	trap - EXIT INT TERM
	for name in "${STARTED[@]}"; do
		[[ -n ${PGID[$name]:-} ]] && kill -TERM -- "-${PGID[$name]}" 2>/dev/null
	done
	for name in "${STARTED[@]}"; do stop "$name"; done
	wait 2>/dev/null || true
	if ((rc != 0)); then
		local lf
		for name in "${STARTED[@]}"; do
			for lf in "$TMP/$name.log" "$TMP/$name/error.log"; do
				[[ -s $lf ]] || continue
				echo "--- last lines of $lf ---" >&2
				tail -n 15 "$lf" >&2 || true
			done
		done
	fi
	if [[ ${KEEP_TMP:-0} == 1 || $rc != 0 ]]; then
		log "temp dir kept: $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME PORT CMD...: run CMD in its own session (so its process group is
# its PID and everything it forks, e.g. nginx workers, can be killed at once),
# then wait until PORT accepts connections.
start() {
	local name=$1 port=$2
	shift 2
	port_busy "$port" && die "port $port on 127.0.0.1 (for $name) is busy: stop what uses it or set BASE_PORT"
	setsid "$@" >>"$TMP/$name.log" 2>&1 </dev/null &
	local pid=$!
	PGID[$name]=$pid
	[[ " ${STARTED[*]} " == *" $name "* ]] || STARTED+=("$name")
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -n $(live_in_group "$pid") ]] || die "$name exited at start-up (see $TMP/$name.log)"
		port_busy "$port" && break
		sleep 0.05
	done
	port_busy "$port" || die "$name did not listen on 127.0.0.1:$port within 10 s"
	local pg
	pg=$(awk '{sub(/.*\) /, ""); print $3}' "/proc/$pid/stat")
	[[ $pg == "$pid" ]] || die "$name: process group $pg is not its pid $pid"
	log "started $name (pid $pid) on 127.0.0.1:$port"
}

group_pids() { pgrep -g "${PGID[$1]}" || true; }

# cpu_ticks NAME: utime+stime (clock ticks) of every process in NAME's group.
cpu_ticks() {
	local p t=0 v
	for p in $(group_pids "$1"); do
		v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + v))
	done
	echo "$t"
}
CLK_TCK=$(getconf CLK_TCK)

# reset_hwm NAME: reset the peak RSS (VmHWM) of NAME's processes to now.
HWM_RESET_OK=1
reset_hwm() {
	local p
	for p in $(group_pids "$1"); do
		echo 5 >"/proc/$p/clear_refs" 2>/dev/null || HWM_RESET_OK=0
	done
}

# hwm NAME: "SUM_KB MAX_KB NPROC": VmHWM summed over NAME's processes, the
# largest single one, and how many there are.
hwm() {
	local p v sum=0 mx=0 n=0
	for p in $(group_pids "$1"); do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		[[ -n $v ]] || continue
		sum=$((sum + v))
		((v > mx)) && mx=$v
		n=$((n + 1))
	done
	echo "$sum $mx $n"
}

# --- build and start -------------------------------------------------------------

for tool in wrk nginx curl; do
	if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
		log "$tool missing: apt-get install -y nginx wrk"
		apt-get update >/dev/null && apt-get install -y nginx wrk >/dev/null
	fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v curl >/dev/null || die "curl is needed for the sanity checks"

log "building gateway and upstream into $TMP"
if [[ -n ${GATEWAY_BIN:-} ]]; then # a prebuilt gateway, e.g. an older commit for a before/after run
	cp "$GATEWAY_BIN" "$TMP/gateway" || die "GATEWAY_BIN=$GATEWAY_BIN cannot be copied"
else
	(cd "$ROOT" && go build -o "$TMP/gateway" ./cmd/gateway) || die "go build ./cmd/gateway failed"
fi
(cd "$ROOT" && go build -o "$TMP/upstream" ./bench/upstream) || die "go build ./bench/upstream failed"
if [[ $MODE == cache || $MODE == herd ]]; then
	(cd "$ROOT" && go build -o "$TMP/herd" ./bench/herd) || die "go build ./bench/herd failed"
fi
GW_COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
GW_DIRTY=$(cd "$ROOT" && git status --porcelain 2>/dev/null | grep -vc '^?? bench/' || true)

write_nginx_conf() { # NAME PORT EXTRA [HTTP_EXTRA]
	local name=$1 port=$2 extra=$3 hextra=${4:-} dir=$TMP/$1
	mkdir -p "$dir"
	chmod 777 "$dir"
	sed -e "s|__PREFIX__|$dir|g" -e "s|__LISTEN__|$port|g" -e "s|__UPORT__|${PORT[upstream]}|g" \
		-e "s|__USER__|$(id -un)|" -e "s|__GROUP__|$(id -gn)|" \
		-e "s|^__EXTRA__\$|$extra|" -e "s|^__HTTP_EXTRA__\$|$hextra|" "$ROOT/bench/nginx.conf.tmpl" >"$dir/nginx.conf"
}

# nginx-tuned's buffering, which nginx-cache shares.
NGINX_TUNED="            proxy_buffers 16 64k;\n            proxy_buffer_size 64k;\n            proxy_max_temp_file_size 0;"

# start_nginx NAME: write NAME's config and start it.
start_nginx() {
	local name=$1
	case $name in
	nginx-default) write_nginx_conf "$name" "${PORT[$name]}" "" ;;
	nginx-tuned) write_nginx_conf "$name" "${PORT[$name]}" "$NGINX_TUNED" ;;
	nginx-cache)
		# proxy_cache with the lock: one upstream fetch per key, the
		# other requests wait for it (and are served from the file).
		# keys_zone and max_size as the gateway's memory and max_size.
		write_nginx_conf "$name" "${PORT[$name]}" \
			"$NGINX_TUNED\n            proxy_cache bench;\n            proxy_cache_valid 200 10m;\n            proxy_cache_lock on;\n            proxy_cache_lock_timeout 60s;\n            proxy_cache_lock_age 60s;\n            add_header X-Cache-Status \$upstream_cache_status always;" \
			"    proxy_cache_path $TMP/$name/cache levels=1:2 keys_zone=bench:${CACHE_MEMORY}m max_size=${CACHE_DISK}m inactive=60m use_temp_path=off;"
		;;
	esac
	start "$name" "${PORT[$name]}" "$NGINX" -p "$TMP/$name" -e "$TMP/$name/error.log" -c "$TMP/$name/nginx.conf"
}

# write_gateway_conf NAME: the gateway config for gw-public, gw-private,
# gw-cache or gw-nocache.
write_gateway_conf() {
	local name=$1 f=$TMP/$1.toml
	cat >"$f" <<EOF
# generated by bench/run.sh for $name
[server]
http_listen = "127.0.0.1:${PORT[$name]}"
https_listen = ""

[admin]
listen = "127.0.0.1:${PORT[$name-admin]}"
allow = ["127.0.0.1/32"]

[log]
format = "json"
level = "warn"
access_log = false       # off for parity with nginx's access_log off

[credentials]
source = "env"           # OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET (the upstream ignores the signature)
EOF
	if [[ $name == gw-cache ]]; then
		cat >>"$f" <<EOF

[cache]
path = "$TMP/gw-cache-store"
max_size = "${CACHE_DISK}MiB"
memory = "${CACHE_MEMORY}MiB"
max_object_size = "256MiB"
EOF
	fi
	if [[ $name == gw-cache || $name == gw-nocache ]]; then
		# No policy: the cache is the only difference from gw-nocache,
		# and nginx has none either.
		cat >>"$f" <<EOF

[[site]]
name = "bench-${name#gw-}"
domains = ["${HOSTHDR[$name]}"]
bucket = "bucket"
region = "cn-hangzhou"
endpoint = "http://127.0.0.1:${PORT[upstream]}"
access = "public"
tls = "off"
EOF
	fi
	if [[ $name == gw-cache ]]; then
		cat >>"$f" <<EOF

[site.cache]
enabled = true
ttl = "10m"
stale_if_error = "1h"
EOF
	elif [[ $name == gw-public ]]; then
		cat >>"$f" <<EOF

[[site]]
name = "bench-public"
domains = ["img.bench.test"]
bucket = "bucket"
region = "cn-hangzhou"
endpoint = "http://127.0.0.1:${PORT[upstream]}"
access = "public"
tls = "off"

[site.referer]           # checked on every request: wrk sends Referer: $REFERER
allow_empty = false
allow_truncate_query = true
allow = ["https://www.bench.test/*", "https://*.cdn.bench.test/*"]
deny = ["https://evil.bench.test/*"]

[[site.cors]]            # matched on every request: wrk sends Origin: $ORIGIN
allowed_origins = ["https://www.bench.test", "https://*.bench.test"]
allowed_methods = ["GET", "HEAD"]
allowed_headers = ["*"]
expose_headers = ["ETag", "Content-Length", "x-oss-request-id"]
max_age_seconds = 600

[site.disposition]
mode = "auto"
download_param = "download"
fix_content_type = true

[site.limits]            # on, but far above anything the bench reaches
per_ip_rps = 1e9
site_rps = 1e9
allow_ips = ["127.0.0.0/8"]
EOF
	elif [[ $name == gw-private ]]; then
		cat >>"$f" <<EOF

[[site]]
name = "bench-private"
domains = ["private.bench.test"]
bucket = "bucket"
region = "cn-hangzhou"
endpoint = "http://127.0.0.1:${PORT[upstream]}"
access = "private"       # strip client auth, sign every request with V4
tls = "off"
EOF
	fi
}

# restart_gateway NAME: stop and start a gateway (same config and port).
restart_gateway() {
	stop "$1"
	start_gateway "$1"
}

start_gateway() {
	local name=$1 i code
	write_gateway_conf "$name"
	start "$name" "${PORT[$name]}" "$TMP/gateway" run -config "$TMP/$name.toml"
	for ((i = 0; i < 100; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$name-admin]}/readyz" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	die "$name: /readyz answered $code, not 200, after 10 s"
}

NEED=(upstream)
if [[ $MODE == scale ]]; then
	NEED+=(gw-public)
else
	NEED+=("${TARGETS[@]}")
fi
for name in "${NEED[@]}"; do
	port_busy "${PORT[$name]}" && die "port ${PORT[$name]} on 127.0.0.1 (for $name) is busy: stop what uses it or set BASE_PORT"
	if [[ -n ${PORT[$name-admin]+x} ]] && port_busy "${PORT[$name-admin]}"; then
		die "port ${PORT[$name-admin]} on 127.0.0.1 (for $name's admin listener) is busy: stop what uses it or set BASE_PORT"
	fi
done

start upstream "${PORT[upstream]}" "$TMP/upstream" -listen "127.0.0.1:${PORT[upstream]}" -delay "$UPSTREAM_DELAY"
for name in "${NEED[@]}"; do
	case $name in
	nginx-*) start_nginx "$name" ;;
	gw-*) start_gateway "$name" ;;
	esac
done

# --- requests ---------------------------------------------------------------------

url_of() { echo "http://127.0.0.1:${PORT[$1]}/$2"; }

# header_args TARGET: curl/wrk -H arguments, one per line.
header_args() {
	[[ -n ${HOSTHDR[$1]} ]] && echo "Host: ${HOSTHDR[$1]}"
	echo "Referer: $REFERER"
	echo "Origin: $ORIGIN"
}

# check TARGET SIZE: one GET must be 200 with exactly the object's bytes.
check() {
	local t=$1 s=$2 line out
	local -a h=()
	while IFS= read -r line; do h+=(-H "$line"); done < <(header_args "$t")
	out=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "${h[@]}" "$(url_of "$t" "$s")") || die "$t /$s: curl failed"
	[[ $out == "200 ${BYTES[$s]}" ]] || die "$t /$s: got '$out', want '200 ${BYTES[$s]}'"
}

sanity() {
	local t s hdrs code before after
	for t in "${@}"; do
		for s in "${CHECK_SIZES[@]}"; do check "$t" "$s"; done
	done
	if [[ " $* " == *" gw-public "* ]]; then
		hdrs=$(curl -s -D - -o /dev/null -H "Host: img.bench.test" -H "Referer: $REFERER" -H "Origin: $ORIGIN" "$(url_of gw-public 1k)")
		grep -qi '^access-control-allow-origin: https://www.bench.test' <<<"$hdrs" || die "gw-public: no Access-Control-Allow-Origin for the CORS rule"
		code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: img.bench.test" -H "Referer: https://evil.bench.test/x" "$(url_of gw-public 1k)")
		[[ $code == 403 ]] || die "gw-public: a denied Referer got $code, want 403 (referer policy not on?)"
		log "gw-public policy check: CORS header present, foreign Referer refused (403)"
	fi
	if [[ " $* " == *" gw-private "* ]]; then
		before=$(curl -s "$(url_of upstream -/stats)" | sed 's/.*"signed_v4":\([0-9]*\).*/\1/')
		check gw-private 1k
		after=$(curl -s "$(url_of upstream -/stats)" | sed 's/.*"signed_v4":\([0-9]*\).*/\1/')
		((after > before)) || die "gw-private: the upstream saw no V4-signed request"
		log "gw-private signing check: upstream received an OSS4-HMAC-SHA256 Authorization"
	fi
}

# parse_wrk FILE: "REQ_S MIB_S P50_MS P99_MS REQUESTS NON2XX ERRORS READ_MIB"
parse_wrk() {
	awk '
	function ms(v,   n) {
		n = v + 0
		if (v ~ /us$/) return n / 1000
		if (v ~ /ms$/) return n
		if (v ~ /m$/) return n * 60000
		if (v ~ /h$/) return n * 3600000
		if (v ~ /s$/) return n * 1000
		return n
	}
	function mib(v,   n) {
		n = v + 0
		if (v ~ /TB$/) return n * 1048576
		if (v ~ /GB$/) return n * 1024
		if (v ~ /MB$/) return n
		if (v ~ /KB$/) return n / 1024
		return n / 1048576
	}
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/requests in/ { reqs = $1; readm = mib($(NF - 1)) }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
	/^Requests\/sec:/ { rps = $2 }
	/^Transfer\/sec:/ { mbs = mib($2) }
	END { printf "%.2f %.2f %.3f %.3f %d %d %d %.1f\n", rps, mbs, p50, p99, reqs, non2xx, errs, readm }
	' "$1"
}

# sys_ticks: busy ticks of the whole machine (all CPUs) from /proc/stat:
# user+nice+system+irq+softirq (steal and idle left out).
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }

# children_ticks: the user+sys CPU, in ticks, of the children the calling
# shell has reaped (bash's `times`, second line). `times` must run in the
# shell that reaped them, not in a $(...) subshell, hence the file.
children_ticks() {
	times >"$TMP/times.$BASHPID"
	awk -v hz="$CLK_TCK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		printf "%d\n", t * hz + 0.5
	}' "$TMP/times.$BASHPID"
}

# wait_quiet: before a run, wait (up to IDLE_WAIT s) until the rest of the
# machine uses under IDLE_MAX % of one core. Our servers are idle then, so
# what /proc/stat shows is other people's work (builds, tests).
IDLE_MAX=${IDLE_MAX:-25}
IDLE_WAIT=${IDLE_WAIT:-60}
[[ $QUICK == 1 ]] && IDLE_WAIT=${IDLE_WAIT_QUICK:-5}
wait_quiet() {
	local waited=0 a b busy
	while :; do
		a=$(sys_ticks)
		sleep 0.5
		b=$(sys_ticks)
		busy=$(((b - a) * 200 / CLK_TCK))
		((busy < IDLE_MAX)) && break
		if ((waited >= IDLE_WAIT * 2)); then
			log "machine still busy (${busy}% of a core used by others) after ${IDLE_WAIT}s; running anyway"
			break
		fi
		((waited == 0)) && log "machine busy (${busy}% of a core used by others); waiting up to ${IDLE_WAIT}s"
		waited=$((waited + 1))
	done
}

# run_wrk TARGET SIZE CONNS DURATION FILE: one wrk run with the CPU used over
# it. Prints 14 fields: REQ_S MIB_S P50_MS P99_MS REQUESTS NON2XX ERRORS
# READ_MIB CPU% CPU_US_PER_REQ CPU_MS_PER_GIB UPSTREAM_CPU% WRK_CPU% OTHER_CPU%
# (CPU% = 100 per core; OTHER = the machine's user+system minus server,
# upstream and wrk: someone else's load during the run).
# Cache mode sets WRK_ARGS (before the URL, e.g. -s script), WRK_TAIL
# (after it: the script's arguments) and WRK_PATH (the URL's path instead of
# the size) for the hot-set runs.
# PROF_URL/PROF_OUT: fetch PROF_URL (a pprof CPU profile) into PROF_OUT while
# wrk runs, started after the idle wait.
WRK_ARGS=() WRK_TAIL=() WRK_PATH="" PROF_URL="" PROF_OUT=""
run_wrk() {
	local t=$1 s=$2 c=$3 d=$4 f=$5 line url
	local -a h=()
	while IFS= read -r line; do h+=(-H "$line"); done < <(header_args "$t")
	url=$(url_of "$t" "${WRK_PATH:-$s}")
	wait_quiet
	local c0 u0 w0 s0 k0 c1 u1 w1 s1 k1
	echo "# wrk -t$THREADS -c$c -d${d}s --latency --timeout $WRK_TIMEOUT ${WRK_ARGS[*]} ${h[*]} $url ${WRK_TAIL[*]}" >"$f"
	local ppid=""
	if [[ -n $PROF_URL ]]; then
		curl -s -o "$PROF_OUT" "$PROF_URL" &
		ppid=$!
	fi
	c0=$(cpu_ticks "$t")
	u0=$(cpu_ticks upstream)
	children_ticks >"$TMP/k0.$BASHPID"
	k0=$(<"$TMP/k0.$BASHPID")
	s0=$(sys_ticks)
	w0=$(date +%s%N)
	wrk -t"$THREADS" -c"$c" -d"${d}s" --latency --timeout "$WRK_TIMEOUT" "${WRK_ARGS[@]}" "${h[@]}" "$url" "${WRK_TAIL[@]}" >>"$f" 2>&1 ||
		die "wrk failed against $t /$s (see $f)"
	w1=$(date +%s%N)
	s1=$(sys_ticks)
	children_ticks >"$TMP/k1.$BASHPID"
	k1=$(<"$TMP/k1.$BASHPID")
	c1=$(cpu_ticks "$t")
	u1=$(cpu_ticks upstream)
	[[ -n $ppid ]] && { wait "$ppid" || log "pprof fetch $PROF_URL failed"; }
	local r
	r=$(parse_wrk "$f")
	awk -v r="$r" -v dc=$((c1 - c0)) -v du=$((u1 - u0)) -v dk=$((k1 - k0)) -v ds=$((s1 - s0)) \
		-v wall=$((w1 - w0)) -v hz="$CLK_TCK" 'BEGIN {
		split(r, a, " ")
		sec = wall / 1e9
		cpu = dc / hz / sec * 100
		per = (a[5] > 0) ? dc / hz * 1e6 / a[5] : 0
		pergib = (a[8] > 0) ? dc / hz * 1000 / (a[8] / 1024) : 0
		other = (ds - dc - du - dk) / hz / sec * 100
		if (other < 0) other = 0
		printf "%s %.0f %.1f %.1f %.0f %.0f %.0f\n", r, cpu, per, pergib, du / hz / sec * 100, dk / hz / sec * 100, other
	}'
}

# median: the median of the numbers on stdin.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

STAMP=$(date +%Y%m%d-%H%M%S)
RES=$OUT/$STAMP-$MODE
mkdir -p "$RES/raw"
NPROC=$(nproc)
{
	echo "# gateway bench ($MODE) $STAMP"
	echo
	echo "- host: $(uname -srm), $NPROC CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
	echo "- gateway: commit $GW_COMMIT, $GW_DIRTY modified tracked files; $(go version | cut -d' ' -f3)"
	echo "- nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'); wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	if [[ $MODE == cache || $MODE == herd ]]; then
		echo "- upstream first-byte delay $UPSTREAM_DELAY; [cache] memory ${CACHE_MEMORY} MiB, max_size ${CACHE_DISK} MiB (nginx-cache: keys_zone ${CACHE_MEMORY}m, max_size ${CACHE_DISK}m, proxy_cache_lock on)"
	fi
	if [[ $MODE == compare || $MODE == cache ]]; then
		echo "- wrk -t$THREADS --latency --timeout $WRK_TIMEOUT, ${DURATION}s per run, $ROUNDS round(s)"
	elif [[ $MODE == scale ]]; then
		echo "- wrk -t$THREADS --latency --timeout $WRK_TIMEOUT, ${DURATION}s per run (64m: ${SCALE_64M_DURATION}s), one run per point"
	fi
} >"$RES/header.md"

# --- compare mode -----------------------------------------------------------------------------

# The 14 fields run_wrk prints, as CSV column names.
WRK_COLS="req_s,mib_s,p50_ms,p99_ms,requests,non2xx,socket_errors,read_mib,cpu_pct,cpu_us_per_req,cpu_ms_per_gib,upstream_cpu_pct,wrk_cpu_pct,other_cpu_pct"

compare() {
	CHECK_SIZES=("${SIZES[@]}")
	sanity "${TARGETS[@]}"
	local wu=2
	[[ $QUICK == 1 ]] && wu=1
	local t line
	for t in "${TARGETS[@]}"; do
		local -a h=()
		while IFS= read -r line; do h+=(-H "$line"); done < <(header_args "$t")
		log "warm-up: $t /1k for ${wu}s"
		wrk -t"$THREADS" -c"$CONNS" -d"${wu}s" --timeout "$WRK_TIMEOUT" "${h[@]}" "$(url_of "$t" 1k)" >/dev/null 2>&1 || true
	done

	local runs=$RES/runs.csv rss=$RES/rss.csv
	# runs.csv columns: 1 size 2 round 3 target 4 conns 5 duration_s, then
	# 6 req_s 7 mib_s 8 p50_ms 9 p99_ms 10 requests 11 non2xx 12 socket_errors
	# 13 read_mib 14 cpu_pct 15 cpu_us_per_req 16 cpu_ms_per_gib
	# 17 upstream_cpu_pct 18 wrk_cpu_pct 19 other_cpu_pct
	echo "size,round,target,conns,duration_s,$WRK_COLS" >"$runs"
	echo "size,process,pids,vmhwm_sum_kib,vmhwm_max_kib" >"$rss"
	local s r i n=${#TARGETS[@]} res f sum mx np
	for s in "${SIZES[@]}"; do
		for t in "${TARGETS[@]}" upstream; do reset_hwm "$t"; done
		for ((r = 1; r <= ROUNDS; r++)); do
			for ((i = 0; i < n; i++)); do
				t=${TARGETS[$(((i + r - 1) % n))]}
				f=$RES/raw/$s-r$r-$t.txt
				log "size $s round $r/$ROUNDS: $t (wrk -t$THREADS -c$CONNS -d${DURATION}s)"
				res=$(run_wrk "$t" "$s" "$CONNS" "$DURATION" "$f")
				echo "$s,$r,$t,$CONNS,$DURATION,${res// /,}" >>"$runs"
			done
		done
		for t in "${TARGETS[@]}" upstream; do
			read -r sum mx np < <(hwm "$t")
			echo "$s,$t,$np,$sum,$mx" >>"$rss"
		done
	done

	# Dedicated RSS run: 64 clients downloading /64m through each gateway.
	local rssrun=$RES/rss-64m.csv cur
	echo "target,conns,duration_s,$WRK_COLS,vmhwm_kib,vmrss_after_kib" >"$rssrun"
	for t in gw-public gw-private; do
		[[ " ${TARGETS[*]} " == *" $t "* ]] || continue
		# A fresh process: VmHWM is then this run's peak alone, not memory
		# the Go runtime still holds from the earlier rows.
		restart_gateway "$t"
		log "RSS run: $t (restarted), wrk -t$THREADS -c64 -d${DURATION}s /64m"
		res=$(run_wrk "$t" 64m 64 "$DURATION" "$RES/raw/rss-64m-$t.txt")
		read -r sum _ _ < <(hwm "$t")
		cur=$(awk '/^VmRSS:/ {print $2}' "/proc/${PGID[$t]}/status")
		echo "$t,64,$DURATION,${res// /,},$sum,$cur" >>"$rssrun"
	done

	report_compare
}

report_compare() {
	local runs=$RES/runs.csv md=$RES/results.md summary=$RES/summary.csv
	# summary.csv: medians over rounds, sums for the error counts.
	echo "size,target,runs,req_s,mib_s,p50_ms,p99_ms,cpu_pct,cpu_us_per_req,cpu_ms_per_gib,other_cpu_pct,non2xx,socket_errors" >"$summary"
	local s t col nr bad1 bad2
	for s in "${SIZES[@]}"; do
		for t in "${TARGETS[@]}"; do
			local -a vals=()
			for col in 6 7 8 9 14 15 16 19; do
				vals+=("$(awk -F, -v s="$s" -v t="$t" -v c=$col '$1 == s && $3 == t { print $c }' "$runs" | median)")
			done
			nr=$(awk -F, -v s="$s" -v t="$t" '$1 == s && $3 == t' "$runs" | wc -l)
			bad1=$(awk -F, -v s="$s" -v t="$t" '$1 == s && $3 == t { n += $11 } END { print n + 0 }' "$runs")
			bad2=$(awk -F, -v s="$s" -v t="$t" '$1 == s && $3 == t { n += $12 } END { print n + 0 }' "$runs")
			echo "$s,$t,$nr,$(
				IFS=,
				echo "${vals[*]}"
			),$bad1,$bad2" >>"$summary"
		done
	done

	{
		cat "$RES/header.md"
		echo "- targets interleaved, order rotated each round; every value is the median over the rounds"
		echo "- MB/s is MiB/s as wrk counts it (partial bodies included); CPU % is the server's processes over the run, 100 = one core of $NPROC"
		echo "- CPU µs/req and CPU ms/GiB: server CPU time ÷ completed requests, ÷ GiB read by wrk; 'other CPU %' is load from outside the bench during the run"
		echo
		echo "## Throughput and latency (wrk -t$THREADS -c$CONNS -d${DURATION}s)"
		echo
		echo "| size | target | req/s | MB/s | p50 ms | p99 ms | CPU % | CPU µs/req | CPU ms/GiB | other CPU % | non-2xx/3xx | socket errors |"
		echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		awk -F, 'NR > 1 { printf "| %s | %s | %.1f | %.1f | %.2f | %.2f | %.0f | %.1f | %.0f | %.0f | %d | %d |\n", $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$summary"
		echo
		echo "## Gateway ÷ nginx (ratios of the medians; CPU ratios >1 = the gateway spends more CPU per unit)"
		echo
		echo "| size | gateway | req/s ÷ nginx-default | MB/s ÷ nginx-default | req/s ÷ nginx-tuned | MB/s ÷ nginx-tuned | CPU/unit ÷ nginx-default | CPU/unit ÷ nginx-tuned |"
		echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		# CPU per unit: per request for 1k and 256k, per GiB for 64m (few
		# 64 MiB requests complete in a run, so per request is coarse there).
		awk -F, '
		NR > 1 {
			rps[$1, $2] = $4; mbs[$1, $2] = $5; cpu[$1, $2] = ($1 == "64m") ? $10 : $9
			if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
		}
		function ratio(a, b) { return (a != "" && b + 0 > 0) ? sprintf("%.2f", a / b) : "n/a" }
		END {
			split("gw-public gw-private", gws, " ")
			for (i = 1; i <= n; i++) {
				s = order[i]
				for (j = 1; j <= 2; j++) {
					g = gws[j]
					if (!((s, g) in rps)) continue
					printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, g,
						ratio(rps[s, g], rps[s, "nginx-default"]), ratio(mbs[s, g], mbs[s, "nginx-default"]),
						ratio(rps[s, g], rps[s, "nginx-tuned"]), ratio(mbs[s, g], mbs[s, "nginx-tuned"]),
						ratio(cpu[s, g], cpu[s, "nginx-default"]), ratio(cpu[s, g], cpu[s, "nginx-tuned"])
				}
			}
		}' "$summary"
		echo
		echo "## Peak RSS (VmHWM) per size row"
		echo
		if [[ $HWM_RESET_OK == 1 ]]; then
			echo "VmHWM is reset (clear_refs 5) before each size row, so each row is the peak during that row's runs."
		else
			echo "**clear_refs could not reset VmHWM here: each row is the peak since the process started.**"
		fi
		echo "nginx: 'sum' adds master and workers (shared pages counted once per process); 'largest' is one process."
		echo
		echo "| size | process | processes | VmHWM sum MiB | VmHWM largest MiB |"
		echo "| --- | --- | ---: | ---: | ---: |"
		awk -F, 'NR > 1 { printf "| %s | %s | %d | %.1f | %.1f |\n", $1, $2, $3, $4 / 1024, $5 / 1024 }' "$RES/rss.csv"
		if [[ $(wc -l <"$RES/rss-64m.csv") -gt 1 ]]; then
			echo
			echo "## RSS run: 64 clients downloading /64m through the gateway (wrk -t$THREADS -c64 -d${DURATION}s)"
			echo
			echo "| target | req/s | MB/s | p50 ms | p99 ms | non-2xx | socket errors | CPU % | other CPU % | VmHWM MiB | VmRSS after MiB |"
			echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
			awk -F, 'NR > 1 { printf "| %s | %.1f | %.1f | %.0f | %.0f | %d | %d | %d | %d | %.1f | %.1f |\n", $1, $4, $5, $6, $7, $9, $10, $12, $17, $18 / 1024, $19 / 1024 }' "$RES/rss-64m.csv"
		fi
		warn_errors "$runs" 11 12 19
	} >"$md"
	cat "$md"
	log "results: $md (runs: $runs, summary: $summary, raw wrk output: $RES/raw/)"
}

# warn_errors CSV COL_NON2XX COL_ERRS COL_OTHER: warning lines when a run had
# errors, or ran while something else loaded the machine.
warn_errors() {
	local bad busy
	bad=$(awk -F, -v a="$2" -v b="$3" 'NR > 1 && ($a > 0 || $b > 0)' "$1" | wc -l)
	if ((bad > 0)); then
		echo
		echo "**WARNING: $bad run(s) had non-2xx/3xx responses or socket errors; see raw/ (a run with errors is not comparable).**"
	fi
	busy=$(awk -F, -v c="$4" 'NR > 1 && $c > 50' "$1" | wc -l)
	if ((busy > 0)); then
		echo
		echo "**NOTE: $busy run(s) shared the machine with more than half a core of outside load ('other CPU'); compare medians, rerun if a row looks off.**"
	fi
}

# --- scale mode ----------------------------------------------------------------------------------

scale() {
	CHECK_SIZES=(1k 64m 1g)
	sanity gw-public
	local t=gw-public csv=$RES/scale.csv s c res f sum
	local -a conns=(16 64 256 512)
	local -a ssizes=()
	for s in 1k 64m; do selected "$s" size && ssizes+=("$s"); done
	# scale.csv columns: 1 size 2 conns 3 duration_s, then the 14 run_wrk
	# fields (4 req_s ... 17 other_cpu_pct), 18 vmhwm_kib
	# Each point runs against a freshly started gateway, so its VmHWM is that
	# point's peak, not memory the Go runtime kept from an earlier point.
	echo "size,conns,duration_s,$WRK_COLS,vmhwm_kib,vmrss_start_kib" >"$csv"
	local d base
	for s in "${ssizes[@]}"; do
		d=$DURATION
		[[ $s == 64m ]] && d=$SCALE_64M_DURATION
		for c in "${conns[@]}"; do
			restart_gateway "$t"
			base=$(awk '/^VmRSS:/ {print $2}' "/proc/${PGID[$t]}/status")
			f=$RES/raw/scale-$s-c$c.txt
			log "scale: $t (restarted) /$s wrk -t$THREADS -c$c -d${d}s"
			res=$(run_wrk "$t" "$s" "$c" "$d" "$f")
			read -r sum _ _ < <(hwm "$t")
			echo "$s,$c,$d,${res// /,},$sum,$base" >>"$csv"
		done
	done

	# 1 GiB: one curl alone (time to first byte, total time, speed), then 16
	# wrk connections for the duration (MB/s counts partial bodies).
	local big=$RES/scale-1g.csv
	echo "test,clients,duration_s,mib_s,ttfb_ms,total_s,p50_ms,p99_ms,completed,non2xx,socket_errors,cpu_pct,upstream_cpu_pct,client_cpu_pct,other_cpu_pct,vmhwm_kib" >"$big"
	if selected 1g size; then
		restart_gateway "$t"
		wait_quiet
		local c0 u0 w0 s0 k0 c1 u1 w1 s1 k1 out code size ttfb total speed
		c0=$(cpu_ticks "$t")
		u0=$(cpu_ticks upstream)
		children_ticks >"$TMP/k0.curl"
		k0=$(<"$TMP/k0.curl")
		s0=$(sys_ticks)
		w0=$(date +%s%N)
		log "scale: $t (restarted) /1g, one curl"
		# curl runs in this shell (not in $(...)) so `times` sees its CPU.
		curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total} %{speed_download}\n' \
			-H "Host: img.bench.test" -H "Referer: $REFERER" -H "Origin: $ORIGIN" "$(url_of "$t" 1g)" >"$TMP/curl.out"
		w1=$(date +%s%N)
		s1=$(sys_ticks)
		children_ticks >"$TMP/k1.curl"
		k1=$(<"$TMP/k1.curl")
		c1=$(cpu_ticks "$t")
		u1=$(cpu_ticks upstream)
		read -r code size ttfb total speed <"$TMP/curl.out"
		[[ $code == 200 && $size == "${BYTES[1g]}" ]] || die "/1g via curl: status $code, $size bytes"
		read -r sum _ _ < <(hwm "$t")
		awk -v ttfb="$ttfb" -v total="$total" -v speed="$speed" -v dc=$((c1 - c0)) -v du=$((u1 - u0)) -v dk=$((k1 - k0)) \
			-v ds=$((s1 - s0)) -v wall=$((w1 - w0)) -v hz="$CLK_TCK" -v hwm="$sum" 'BEGIN {
			sec = wall / 1e9
			o = (ds - dc - du - dk) / hz / sec * 100
			if (o < 0) o = 0
			printf "curl,1,%.2f,%.1f,%.2f,%.2f,,,1,0,0,%.0f,%.0f,%.0f,%.0f,%d\n", total, speed / 1048576, ttfb * 1000, total, dc / hz / sec * 100, du / hz / sec * 100, dk / hz / sec * 100, o, hwm
		}' >>"$big"

		restart_gateway "$t"
		log "scale: $t (restarted) /1g wrk -t$THREADS -c16 -d${DURATION}s"
		res=$(run_wrk "$t" 1g 16 "$DURATION" "$RES/raw/scale-1g-c16.txt")
		read -r sum _ _ < <(hwm "$t")
		local -a w
		read -ra w <<<"$res"
		echo "wrk,16,$DURATION,${w[1]},,,${w[2]},${w[3]},${w[4]},${w[5]},${w[6]},${w[8]},${w[11]},${w[12]},${w[13]},$sum" >>"$big"
	fi

	local md=$RES/results.md
	{
		cat "$RES/header.md"
		echo "- target: gw-public (every policy on). CPU % = utime+stime of the process over the run ÷ wall time (100 = one core; >100 = more than one of the $NPROC cores); 'other' = load from outside the bench"
		echo
		echo "## gw-public under concurrency (wrk -t$THREADS; 1k ${DURATION}s, 64m ${SCALE_64M_DURATION}s; gateway restarted before each point)"
		echo
		echo "| size | conns | s | req/s | MB/s | p50 ms | p99 ms | non-2xx | socket errors | gateway CPU % | CPU µs/req | CPU ms/GiB | upstream CPU % | wrk CPU % | other CPU % | gateway VmRSS at start MiB | gateway VmHWM MiB |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		awk -F, 'NR > 1 {
			p50 = ($8 > 0) ? sprintf("%.2f", $6) : "-"; p99 = ($8 > 0) ? sprintf("%.2f", $7) : "-"; per = ($8 > 0) ? sprintf("%.1f", $13) : "-"
			printf "| %s | %d | %d | %.1f | %.1f | %s | %s | %d | %d | %d | %s | %.0f | %d | %d | %d | %.1f | %.1f |\n", $1, $2, $3, $4, $5, p50, p99, $9, $10, $12, per, $14, $15, $16, $17, $19 / 1024, $18 / 1024
		}' "$csv"
		if [[ $(wc -l <"$big") -gt 1 ]]; then
			echo
			echo "## 1 GiB object through gw-public"
			echo
			echo "Fresh gateway for each. curl: one download alone. wrk: 16 connections for ${DURATION}s; MB/s counts partial bodies, 'completed' only whole ones."
			echo
			echo "| test | clients | MB/s | TTFB ms | total s | p50 ms | p99 ms | completed | non-2xx | socket errors | gateway CPU % | upstream CPU % | client CPU % | other CPU % | gateway VmHWM MiB |"
			echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
			awk -F, 'NR > 1 {
				p50 = ($1 == "wrk" && $9 == 0) ? "-" : $7; p99 = ($1 == "wrk" && $9 == 0) ? "-" : $8
				printf "| %s | %d | %.1f | %s | %s | %s | %s | %d | %d | %d | %d | %d | %d | %d | %.1f |\n", $1, $2, $4, $5, $6, p50, p99, $9, $10, $11, $12, $13, $14, $15, $16 / 1024
			}' "$big"
		fi
		warn_errors "$csv" 9 10 17
	} >"$md"
	cat "$md"
	log "results: $md (csv: $csv $big, raw wrk output: $RES/raw/)"
}

# --- cache mode ---------------------------------------------------------------------------------

# Cache mode runs every target in the "mem" case and only the caching ones
# (CACHE_ONLY_TARGETS) in the "disk" case: without a cache the hot set's
# size changes nothing, so their "mem" row is the reference for both.
CACHE_ONLY_TARGETS=(nginx-cache gw-cache)
LAT_DURATION=${LAT_DURATION:-5}
[[ $QUICK == 1 ]] && LAT_DURATION=2
WARM_CONC=${WARM_CONC:-128}
PROFILE=${PROFILE:-1}

# upstream_stat FIELD [PATH]: a number from the upstream's /-/stats.
upstream_stat() {
	local q=""
	[[ -n ${2:-} ]] && q="?path=$2"
	curl -s "$(url_of upstream "-/stats$q")" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# hot_keys SIZE CASE: how many objects of SIZE make the hot set: half of
# CACHE_MEMORY ("mem") or four times it ("disk"), at least one.
hot_keys() {
	local b=${BYTES[$1]} m=$((CACHE_MEMORY * 1048576)) k
	case $2 in
	mem) k=$((m / 2 / b)) ;;
	disk) k=$((m * 4 / b)) ;;
	*) die "CACHE_CASES: unknown case '$2' (mem, disk)" ;;
	esac
	((k < 1)) && k=1
	echo "$k"
}

# cache_header TARGET: the response header that says hit or miss.
cache_header() {
	case $1 in
	nginx-*) echo X-Cache-Status ;;
	*) echo X-Cache ;;
	esac
}

# herd_client TARGET ARGS...: bench/herd against TARGET (its Host header
# and cache header added).
herd_client() {
	local t=$1
	shift
	local -a a=(-report-header "$(cache_header "$t")")
	[[ -n ${HOSTHDR[$t]} ]] && a+=(-host "${HOSTHDR[$t]}")
	"$TMP/herd" "${a[@]}" "$@"
}

# cache_check TARGET: the second GET of a key must be a hit.
cache_check() {
	local t=$1 hdr line v
	hdr=$(cache_header "$t")
	local -a h=()
	while IFS= read -r line; do h+=(-H "$line"); done < <(header_args "$t")
	curl -s -o /dev/null "${h[@]}" "$(url_of "$t" obj/sanity-check/1k)" || die "$t: curl failed"
	v=$(curl -s -D - -o /dev/null "${h[@]}" "$(url_of "$t" obj/sanity-check/1k)" | tr -d '\r' | awk -F': ' -v h="$hdr" 'tolower($1) == tolower(h) { print $2 }')
	[[ $v == HIT ]] || die "$t: second GET of /obj/sanity-check/1k has $hdr '$v', want HIT"
	log "$t cache check: second GET answered $hdr: HIT"
}

# warm TARGET SIZE FROM KEYS: one GET of each key FROM..KEYS-1, then a check
# that the first keys (up to 1000) are hits now. Every body is checked.
warm() {
	local t=$1 s=$2 from=$3 keys=$4 out hdr
	hdr=$(cache_header "$t")
	if ((keys > from)); then
		log "warm: $t /obj/{$from..$((keys - 1))}/$s ($((keys - from)) keys, $WARM_CONC at a time)"
		out=$(herd_client "$t" -url "$(url_of "$t" "obj/%d/$s")" -from "$from" -keys "$keys" -c "$WARM_CONC" -size "${BYTES[$s]}") ||
			die "warm $t $s: $out"
		echo "$t $s warm $from..$keys: $out" >>"$RES/warm.txt"
	fi
	out=$(herd_client "$t" -url "$(url_of "$t" "obj/%d/$s")" -keys "$((keys < 1000 ? keys : 1000))" -c 16 -size "${BYTES[$s]}" -want-header "$hdr=HIT") ||
		die "after warming, $t answers /obj/N/$s without $hdr: HIT: $out"
	echo "$t $s hit check: $out" >>"$RES/warm.txt"
}

# The wrk script of the hot-set runs: each request is a random key of the
# hot set. Each thread builds its request strings once, in init.
write_hot_lua() {
	cat >"$TMP/hot.lua" <<'EOF'
-- bench/run.sh cache: GET /obj/<random 0..keys-1>/<size>; args: keys size
local n, reqs = 0, {}
local threads = 0
function setup(thread)
	thread:set("tid", threads)
	threads = threads + 1
end
function init(args)
	n = tonumber(args[1])
	for i = 0, n - 1 do
		reqs[i + 1] = wrk.format("GET", "/obj/" .. i .. "/" .. args[2])
	end
	math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end
function request()
	return reqs[math.random(n)]
end
EOF
}

# profile_run SIZE CASE KEYS: one more gw-cache hot-set run (not counted)
# with a CPU profile from the admin listener's pprof, plus its top list.
profile_run() {
	local s=$1 c=$2 k=$3 p=$RES/prof/gw-cache-$s-$c secs=$((DURATION > 3 ? DURATION - 1 : DURATION))
	mkdir -p "$RES/prof"
	log "profile: gw-cache $s $c (wrk -c$CONNS -d${DURATION}s, pprof for ${secs}s)"
	PROF_URL="http://127.0.0.1:${PORT[gw-cache-admin]}/debug/pprof/profile?seconds=$secs" PROF_OUT="$p.pprof" \
		run_wrk gw-cache "$s" "$CONNS" "$DURATION" "$p.wrk.txt" >/dev/null
	if [[ -s $p.pprof ]]; then
		(cd "$ROOT" && go tool pprof -top -nodecount=45 "$TMP/gateway" "$p.pprof") >"$p.top.txt" 2>&1 || true
		(cd "$ROOT" && go tool pprof -top -cum -nodecount=45 "$TMP/gateway" "$p.pprof") >"$p.cum.txt" 2>&1 || true
	fi
}

# gw_memory SIZE CASE: where gw-cache's memory is after a row: its RSS
# split, the Go runtime's own account and the cache's, and a heap profile.
gw_memory() {
	local p=$RES/prof/gw-cache-$1-$2 admin="http://127.0.0.1:${PORT[gw-cache-admin]}"
	mkdir -p "$RES/prof"
	{
		echo "# $1 $2"
		grep -E '^(VmHWM|VmRSS|RssAnon|RssFile):' "/proc/${PGID[gw-cache]}/status" | tr -s ' \t' ' '
		curl -s "$admin/metrics" | grep -E '^(go_memstats_(heap_(inuse|idle|released|sys)|sys|next_gc)_bytes|go_goroutines|gateway_cache_bytes)' || true
	} >"$p.mem.txt"
	curl -s -o "$p.heap" "$admin/debug/pprof/heap" || true
	if [[ -s $p.heap ]]; then
		(cd "$ROOT" && go tool pprof -top -sample_index=inuse_space -nodecount=25 "$TMP/gateway" "$p.heap") >"$p.heap.txt" 2>&1 || true
		(cd "$ROOT" && go tool pprof -top -sample_index=alloc_space -nodecount=25 "$TMP/gateway" "$p.heap") >"$p.alloc.txt" 2>&1 || true
	fi
}

cache_mode() {
	CHECK_SIZES=("${SIZES[@]}")
	sanity "${TARGETS[@]}"
	local t
	for t in "${TARGETS[@]}"; do
		[[ " ${CACHE_ONLY_TARGETS[*]} " == *" $t "* ]] && cache_check "$t"
	done
	write_hot_lua
	local -a cases
	IFS=, read -ra cases <<<"$CACHE_CASES"
	local runs=$RES/runs.csv rss=$RES/rss.csv
	# runs.csv: 1 size 2 case 3 keys 4 kind (load: -c$CONNS, lat: -t1 -c1)
	# 5 round 6 target 7 conns 8 duration_s, 9..22 the run_wrk fields
	# (9 req_s 10 mib_s 11 p50 12 p99 13 requests 14 non2xx 15 errors
	# 16 read_mib 17 cpu_pct 18 cpu_us_per_req 19 cpu_ms_per_gib
	# 20 upstream_cpu 21 wrk_cpu 22 other_cpu), 23 upstream GETs in the run
	echo "size,case,keys,kind,round,target,conns,duration_s,$WRK_COLS,upstream_gets" >"$runs"
	echo "size,case,keys,process,pids,vmhwm_sum_kib,vmhwm_max_kib" >"$rss"
	: >"$RES/warm.txt"
	local s c k prev r i n res f g0 g1 sum mx np kind
	for s in "${SIZES[@]}"; do
		prev=0
		for c in "${cases[@]}"; do
			k=$(hot_keys "$s" "$c")
			local -a tl=() lt=()
			for t in "${TARGETS[@]}"; do
				[[ $c == mem || " ${CACHE_ONLY_TARGETS[*]} " == *" $t "* ]] && tl+=("$t")
			done
			# Latency at one connection: the caching targets, and in
			# "mem" gw-nocache (the upstream's delay plus the proxy).
			for t in "${tl[@]}"; do
				[[ $t == nginx-tuned ]] && continue
				[[ $t == gw-nocache && $c != mem ]] && continue
				lt+=("$t")
			done
			for t in "${tl[@]}" upstream; do reset_hwm "$t"; done
			for t in "${tl[@]}"; do
				[[ " ${CACHE_ONLY_TARGETS[*]} " == *" $t "* ]] && warm "$t" "$s" "$prev" "$k"
			done
			((k > prev)) && prev=$k
			WRK_ARGS=(-s "$TMP/hot.lua") WRK_TAIL=(-- "$k" "$s")
			for ((r = 1; r <= ROUNDS; r++)); do
				for kind in load lat; do
					local -a cur=("${tl[@]}")
					[[ $kind == lat ]] && cur=("${lt[@]}")
					n=${#cur[@]}
					for ((i = 0; i < n; i++)); do
						t=${cur[$(((i + r - 1) % n))]}
						f=$RES/raw/$s-$c-$kind-r$r-$t.txt
						g0=$(upstream_stat gets)
						if [[ $kind == load ]]; then
							log "$s $c ($k keys) round $r/$ROUNDS: $t (wrk -t$THREADS -c$CONNS -d${DURATION}s)"
							res=$(run_wrk "$t" "$s" "$CONNS" "$DURATION" "$f")
							echo "$s,$c,$k,$kind,$r,$t,$CONNS,$DURATION,${res// /,},$(($(upstream_stat gets) - g0))" >>"$runs"
						else
							log "$s $c ($k keys) round $r/$ROUNDS: $t latency (wrk -t1 -c1 -d${LAT_DURATION}s)"
							res=$(THREADS=1 run_wrk "$t" "$s" 1 "$LAT_DURATION" "$f")
							echo "$s,$c,$k,$kind,$r,$t,1,$LAT_DURATION,${res// /,},$(($(upstream_stat gets) - g0))" >>"$runs"
						fi
					done
				done
			done
			for t in "${tl[@]}"; do
				read -r sum mx np < <(hwm "$t")
				echo "$s,$c,$k,$t,$np,$sum,$mx" >>"$rss"
			done
			[[ " ${tl[*]} " == *" gw-cache "* ]] && gw_memory "$s" "$c"
			if [[ $PROFILE == 1 && " ${tl[*]} " == *" gw-cache "* ]]; then
				profile_run "$s" "$c" "$k"
			fi
			WRK_ARGS=() WRK_TAIL=()
		done
	done
	report_cache
}

report_cache() {
	local runs=$RES/runs.csv md=$RES/results.md summary=$RES/summary.csv
	# summary.csv: medians over the rounds; sums for upstream GETs and errors.
	echo "size,case,keys,kind,target,runs,req_s,mib_s,p50_ms,p99_ms,cpu_pct,cpu_us_per_req,cpu_ms_per_gib,other_cpu_pct,upstream_gets,non2xx,socket_errors" >"$summary"
	awk -F, 'NR > 1 { id = $1 "," $2 "," $3 "," $4 "," $6; if (!(id in seen)) { seen[id] = 1; print id } }' "$runs" | while IFS= read -r id; do
		local -a vals=()
		local col
		for col in 9 10 11 12 17 18 19 22; do
			vals+=("$(awk -F, -v id="$id" -v c=$col '($1 "," $2 "," $3 "," $4 "," $6) == id { print $c }' "$runs" | median)")
		done
		echo "$id,$(awk -F, -v id="$id" '($1 "," $2 "," $3 "," $4 "," $6) == id { n++ } END { print n }' "$runs"),$(
			IFS=,
			echo "${vals[*]}"
		),$(awk -F, -v id="$id" '($1 "," $2 "," $3 "," $4 "," $6) == id { g += $23; a += $14; b += $15 } END { print g + 0 "," a + 0 "," b + 0 }' "$runs")"
	done >>"$summary"

	local mem_mib=$CACHE_MEMORY limit_mib=$((CACHE_MEMORY + 64))
	{
		cat "$RES/header.md"
		echo "- hot sets: 'mem' = objects filling half of memory (${CACHE_MEMORY} MiB), 'disk' = 4 x memory; each wrk request GETs a random key of the set (wrk -s hot.lua); caches warmed first and checked for hits"
		echo "- gw-nocache and nginx-tuned (no cache) run in the 'mem' case only: every request goes to the upstream (${UPSTREAM_DELAY} first-byte delay) whatever the hot set"
		echo "- values are medians over the rounds; 'upstream GETs' is the sum over the rounds (0 for a cache serving only hits)"
		echo
		echo "## Throughput under load (wrk -t$THREADS -c$CONNS -d${DURATION}s)"
		echo
		echo "| size | hot set | keys | target | req/s | MB/s | p50 ms | p99 ms | CPU % | CPU µs/req | CPU ms/GiB | upstream GETs | other CPU % | non-2xx | socket errors |"
		echo "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		awk -F, 'NR > 1 && $4 == "load" { printf "| %s | %s | %d | %s | %.1f | %.1f | %.2f | %.2f | %.0f | %.1f | %.0f | %d | %.0f | %d | %d |\n", $1, $2, $3, $5, $7, $8, $9, $10, $11, $12, $13, $15, $14, $16, $17 }' "$summary"
		echo
		echo "## Hit latency at one connection (wrk -t1 -c1 -d${LAT_DURATION}s)"
		echo
		echo "| size | hot set | target | req/s | p50 ms | p99 ms | upstream GETs |"
		echo "| --- | --- | --- | ---: | ---: | ---: | ---: |"
		awk -F, 'NR > 1 && $4 == "lat" { printf "| %s | %s | %s | %.1f | %.3f | %.3f | %d |\n", $1, $2, $5, $7, $9, $10, $15 }' "$summary"
		echo
		echo "## Ratios and targets (medians; gw-nocache is the 'mem' row's in both cases)"
		echo
		echo "| size | hot set | gw-cache ÷ nginx-cache req/s | MB/s | CPU/unit | gw-cache ÷ gw-nocache req/s | MB/s | gw-cache hit p50 ms (c1) | target | met |"
		echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
		awk -F, '
		NR > 1 {
			id = $1 SUBSEP $2 SUBSEP $4 SUBSEP $5
			rps[id] = $7; mbs[id] = $8; p50[id] = $9; cpu[id] = ($1 == "64m") ? $13 : $12
			if (!(($1, $2) in seen)) { seen[$1, $2] = 1; order[++n] = $1 SUBSEP $2 }
		}
		function r(a, b) { return (a != "" && b + 0 > 0) ? a / b : -1 }
		function f(x) { return (x < 0) ? "n/a" : sprintf("%.2f", x) }
		END {
			for (i = 1; i <= n; i++) {
				split(order[i], sc, SUBSEP); s = sc[1]; c = sc[2]
				g = s SUBSEP c SUBSEP "load" SUBSEP "gw-cache"; x = s SUBSEP c SUBSEP "load" SUBSEP "nginx-cache"
				u = s SUBSEP "mem" SUBSEP "load" SUBSEP "gw-nocache"; l = s SUBSEP c SUBSEP "lat" SUBSEP "gw-cache"
				if (!(g in rps)) continue
				rn = r(rps[g], rps[x]); mn = r(mbs[g], mbs[x]); cn = r(cpu[g], cpu[x]); ru = r(rps[g], rps[u]); mu = r(mbs[g], mbs[u])
				lat = (l in p50) ? sprintf("%.3f", p50[l]) : "n/a"
				tgt = ""; met = ""
				if (s == "64m") { tgt = "MB/s >= 1.0x nginx-cache"; met = (mn < 0) ? "n/a" : (mn >= 1.0 ? "yes" : "**no**") }
				if (s == "1k") {
					tgt = "req/s >= 0.5x nginx-cache, >= 2x gw-nocache; p50 < 1 ms"
					met = (rn < 0 || ru < 0) ? "n/a" : ((rn >= 0.5 && ru >= 2) ? "yes" : "**no**")
					if (l in p50) met = met ((p50[l] < 1) ? "; p50 yes" : "; p50 **no**")
				}
				if (s == "256k") { tgt = "p50 < 1 ms"; met = (l in p50) ? ((p50[l] < 1) ? "yes" : "**no**") : "n/a" }
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, c, f(rn), f(mn), f(cn), f(ru), f(mu), lat, tgt, met
			}
		}' "$summary"
		echo
		echo "CPU/unit: per request for 1k and 256k, per GiB for 64m; above 1 = gw-cache spends more CPU than nginx-cache."
		echo
		echo "## Peak RSS (VmHWM) per row, warm-up included"
		echo
		if [[ $HWM_RESET_OK == 1 ]]; then
			echo "VmHWM is reset (clear_refs 5) before each row's warm-up, so each value is that row's peak. Target for gw-cache: under memory + 64 MiB = $limit_mib MiB."
		else
			echo "**clear_refs could not reset VmHWM here: each row is the peak since the process started.** Target for gw-cache: under memory + 64 MiB = $limit_mib MiB."
		fi
		echo
		echo "| size | hot set | keys | process | processes | VmHWM sum MiB | VmHWM largest MiB |"
		echo "| --- | --- | ---: | --- | ---: | ---: | ---: |"
		awk -F, 'NR > 1 { printf "| %s | %s | %d | %s | %d | %.1f | %.1f |\n", $1, $2, $3, $4, $5, $6 / 1024, $7 / 1024 }' "$RES/rss.csv"
		awk -F, -v lim="$limit_mib" -v mem="$mem_mib" 'NR > 1 && $4 == "gw-cache" { if ($6 / 1024 > m) { m = $6 / 1024; w = $1 " " $2 } }
			END { if (m > 0) printf "\ngw-cache peak: %.1f MiB (%s) against memory %d MiB + 64 MiB = %d MiB: %s\n", m, w, mem, lim, (m < lim) ? "met" : "**not met**" }' "$RES/rss.csv"
		if compgen -G "$RES/prof/*.mem.txt" >/dev/null; then
			echo
			echo "## gw-cache memory after each row (/proc status, Go runtime and cache metrics)"
			echo
			echo '```'
			cat "$RES"/prof/*.mem.txt
			echo '```'
		fi
		if compgen -G "$RES/prof/*.top.txt" >/dev/null; then
			echo
			echo "## gw-cache CPU profiles (one extra hot-set run per row, not counted above)"
			local p
			for p in "$RES"/prof/*.top.txt; do
				echo
				echo "### $(basename "$p" .top.txt)"
				echo
				echo '```'
				sed -n '1,30p' "$p"
				echo '```'
			done
		fi
		warn_errors "$runs" 14 15 22
	} >"$md"
	cat "$md"
	log "results: $md (runs: $runs, summary: $summary, raw wrk output: $RES/raw/, warm-up: $RES/warm.txt, profiles: $RES/prof/)"
}

# --- herd mode ----------------------------------------------------------------------------------

herd_mode() {
	local csv=$RES/herd.csv t path g out rc sum store
	echo "target,clients,ok,bad,net_errors,upstream_gets,statuses,cache_header,wall_ms,ttfb_p50_ms,ttfb_max_ms,total_p50_ms,total_max_ms,vmhwm_kib,after_hit,after_upstream_gets,first_error" >"$csv"
	for t in "${TARGETS[@]}"; do
		# A fresh server with an empty cache, and a key nobody asked for.
		stop "$t"
		case $t in
		gw-cache) rm -rf "$TMP/gw-cache-store" ;;
		nginx-cache) rm -rf "$TMP/nginx-cache/cache" ;;
		esac
		case $t in
		nginx-*) start_nginx "$t" ;;
		gw-*) start_gateway "$t" ;;
		esac
		path=/obj/herd-$t-$STAMP/64m
		[[ $(upstream_stat path_gets "$path") == 0 ]] || die "herd: $path is not cold on the upstream"
		reset_hwm "$t"
		wait_quiet
		log "herd: $t, $HERD_N concurrent GETs of cold $path"
		rc=0
		out=$(herd_client "$t" -url "$(url_of "$t" "${path#/}")" -n "$HERD_N" -size "${BYTES[64m]}") || rc=$?
		g=$(upstream_stat path_gets "$path")
		read -r sum _ _ < <(hwm "$t")
		echo "$t: $out" >>"$RES/herd.txt"
		((rc == 0)) || log "herd: $t: some requests failed: $out"
		# One more GET afterwards: a hit for a cache, no new upstream GET.
		local after ag
		after=$(herd_client "$t" -url "$(url_of "$t" "${path#/}")" -n 1 -size "${BYTES[64m]}" | sed -n 's/.*x-cache[-a-z]*=\([^ ]*\).*/\1/p')
		ag=$(upstream_stat path_gets "$path")
		awk -v t="$t" -v g="$g" -v h="$sum" -v after="$after" -v ag="$ag" -v line="$out" 'BEGIN {
			n = split(line, kv, " ")
			for (i = 1; i <= n; i++) { p = index(kv[i], "="); if (p) v[substr(kv[i], 1, p - 1)] = substr(kv[i], p + 1) }
			ch = ("x-cache" in v) ? v["x-cache"] : v["x-cache-status"]
			st = v["statuses"]; gsub(/,/, " ", st); gsub(/,/, " ", ch)
			fe = ""; p = index(line, "first_error="); if (p) { fe = substr(line, p + 12); gsub(/,/, ";", fe) }
			printf "%s,%s,%s,%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%d,%s,%d,%s\n", t, v["requests"], v["ok"], v["bad"], v["net_errors"], g,
				st, ch, v["wall_ms"], v["ttfb_ms_p50"], v["ttfb_ms_max"], v["total_ms_p50"], v["total_ms_max"], h, after, ag, fe
		}' >>"$csv"
	done
	local md=$RES/results.md
	{
		cat "$RES/header.md"
		echo "- each target restarted with an empty cache; $HERD_N clients (bench/herd, one connection each) released together on one cold 64 MiB key; every body checked (length and the o % 251 pattern)"
		echo
		echo "## Thundering herd: $HERD_N concurrent GETs of one cold 64 MiB object"
		echo
		echo "| target | clients | complete and correct | failed | upstream GETs for the key | statuses | cache header | wall s | TTFB p50 ms | TTFB max ms | total p50 ms | total max ms | VmHWM MiB | next GET | upstream GETs after it |"
		echo "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
		awk -F, 'NR > 1 { printf "| %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %.1f | %s | %s |\n", $1, $2, $3, $4 + $5, $6, $7, $8, $9 / 1000, $10, $11, $12, $13, $14 / 1024, $15, $16 }' "$csv"
		awk -F, 'NR > 1 && $17 != "" { printf "\n**%s: first failure: %s**\n", $1, $17 }' "$csv"
		echo
		echo "Target: gw-cache makes 1 upstream GET. gw-nocache (no cache) is the control: one upstream GET per client."
	} >"$md"
	cat "$md"
	log "results: $md (csv: $csv, client output: $RES/herd.txt)"
}

case $MODE in
compare) compare ;;
scale) scale ;;
cache) cache_mode ;;
herd) herd_mode ;;
esac
