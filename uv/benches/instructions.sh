#!/usr/bin/env bash
# The user-space instruction ratio uv/raw of every benchmark: callgrind runs one
# child process of each variant (the same `--variant raw|uv --count N` child the
# benchmark's parent starts) at a small count, and the script prints the instructions
# of each (callgrind's total, user space only) and their ratio. Instruction counts do
# not depend on the machine's load, so the figure is reproducible on a busy machine
# where CPU times are not.
#
# Two sizes are run, N and 2N: "uv/raw" is the ratio of the totals at N (process
# start-up included, the same code in both variants), "marginal" the ratio of the
# differences 2N - N (start-up and other fixed costs cancel: the cost per operation),
# and "extra/op" the uv variant's extra instructions per counted operation.
#
# Usage: bash uv/benches/instructions.sh [--scale S] [--single] [NAME...]
#   --scale S   size as a fraction of each benchmark's full count (default 0.01)
#   --single    run size N only (no marginal figures; half the time)
#   NAME...     only these benchmarks (case names, as in the tables)
# async_pummel_1/2 count the loop thread only (callgrind --separate-threads=yes,
# the main thread's total): their sending threads spin until the loop made its
# callbacks, so what they run depends on how callgrind schedules the threads,
# while the loop thread's count does not (the same to a few dozen instructions
# from run to run). They run with valgrind's fair scheduling (--fair-sched=yes):
# with its default lock a spinning sender took the lock back each time it let it
# go, and the loop thread, waking from epoll_wait, waited for it until the
# benchmark's watchdog (120 s) ended the child, even on an idle machine.
# A case whose child fails is reported and the others still run; the exit status
# is then 1.
# Environment: UV_INSTR_KEEP=DIR keeps the callgrind files there (for
# `callgrind_annotate`).
set -euo pipefail
cd "$(dirname "$0")/../.."

scale=0.01
single=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --single) single=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) names+=("$1"); shift ;;
  esac
done

command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

keep="${UV_INSTR_KEEP:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "$keep" ] && mkdir -p "$keep"

# The bench binaries, built as `cargo bench` builds them (optimised, with debug info).
mapfile -t bins < <(cargo bench -q -p libuv-safe --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .target.kind == ["bench"]
                and .target.name != "uv" and .executable != null) | .executable')
[ ${#bins[@]} -gt 0 ] || { echo "no bench binaries were built" >&2; exit 1; }

wanted() {
  [ ${#names[@]} -eq 0 ] && return 0
  local n
  for n in "${names[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

# Cases whose loop thread alone is counted (see the usage above).
loop_thread_only=" async_pummel_1 async_pummel_2 "

# Runs one child under callgrind; prints "instructions count".
measure() {
  local bin=$1 case=$2 variant=$3 count=$4
  local out="$work/$case.$variant.$count.out"
  local line threads=()
  [[ "$loop_thread_only" == *" $case "* ]] && threads=(--separate-threads=yes --fair-sched=yes)
  line=$(valgrind --tool=callgrind "${threads[@]}" --callgrind-out-file="$out" \
    "$bin" --variant "$variant" --count "$count" --case "$case" 2>"$work/err" |
    grep '^UVBENCH' || true)
  if [ -z "$line" ]; then
    echo "$case: the $variant child failed under callgrind:" >&2
    tail -5 "$work/err" >&2
    exit 1
  fi
  # With one file per thread, the main thread's (the loop's) is the figure.
  [ ${#threads[@]} -gt 0 ] && out="$out-01"
  [ -n "$keep" ] && cp "$out" "$keep/"
  local ir callbacks
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out" 2>/dev/null || true)
  callbacks=$(sed -n 's/.* count=\([0-9]*\).*/\1/p' <<<"$line")
  # Both must be numbers: a figure made of a missing one is no figure.
  if ! [[ "$ir" =~ ^[0-9]+$ && "$callbacks" =~ ^[0-9]+$ ]]; then
    echo "$case: no instruction total or count for the $variant child at $count" \
      "(callgrind file $out: ${ir:-none}; count: ${callbacks:-none})" >&2
    exit 1
  fi
  echo "$ir $callbacks"
}

failed=0

printf '%-20s %9s %14s %14s %8s %9s %9s\n' benchmark count "raw instr" "uv instr" uv/raw marginal extra/op
for bin in "${bins[@]}"; do
  while read -r case full; do
    wanted "$case" || continue
    n=$(awk -v f="$full" -v s="$scale" 'BEGIN { n = int(f * s + 0.5); print (n < 1 ? 1 : n) }')
    raw1='' uv1='' c_raw='' c_uv=''
    read -r raw1 c_raw < <(measure "$bin" "$case" raw "$n") || true
    read -r uv1 c_uv < <(measure "$bin" "$case" uv "$n") || true
    if [ -z "$raw1" ] || [ -z "$uv1" ]; then
      failed=1
      continue
    fi
    if [ "$c_raw" != "$c_uv" ]; then
      echo "$case: the variants made different callbacks ($c_raw raw, $c_uv uv)" >&2
      failed=1
      continue
    fi
    marginal=- extra=-
    if [ "$single" = 0 ]; then
      raw2='' uv2=''
      read -r raw2 _ < <(measure "$bin" "$case" raw $((2 * n))) || true
      read -r uv2 _ < <(measure "$bin" "$case" uv $((2 * n))) || true
      if [ -z "$raw2" ] || [ -z "$uv2" ]; then
        failed=1
        continue
      fi
      marginal=$(awk -v a="$uv1" -v b="$uv2" -v c="$raw1" -v d="$raw2" \
        'BEGIN { printf "%.3f", (b - a) / (d - c) }')
      extra=$(awk -v a="$uv1" -v b="$uv2" -v c="$raw1" -v d="$raw2" -v n="$n" \
        'BEGIN { printf "%.0f", ((b - a) - (d - c)) / n }')
    fi
    ratio=$(awk -v u="$uv1" -v r="$raw1" 'BEGIN { printf "%.3f", u / r }')
    printf '%-20s %9s %14s %14s %8s %9s %9s\n' "$case" "$n" "$raw1" "$uv1" "$ratio" "$marginal" "$extra"
  done < <("$bin" --list)
done
exit "$failed"
