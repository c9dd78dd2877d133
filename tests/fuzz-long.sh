#!/usr/bin/env bash
# The API fuzzer's long run: a million calls (UV_FUZZ_CALLS) under valgrind memcheck,
# in one process. Fails on any finding of the fuzzer (a panic, a broken invariant, a
# leak of Rust allocations or descriptors, a hang), on any memory error and on any
# definitely-lost byte. The other UV_FUZZ_* variables of tests/src/fuzz.rs apply
# (UV_FUZZ_SEED, UV_FUZZ_PER_SEED, UV_FUZZ_SKIP, ...).
# Usage: bash tests/fuzz-long.sh     (UV_FUZZ_CALLS=20000 bash tests/fuzz-long.sh for a short one)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
test_name=random_calls_on_every_handle_type
bin=$(cargo test -q --release -p uv-tests --test fuzz --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
[ -n "$bin" ] || { echo "the fuzz test binary did not build"; exit 1; }
# Valgrind reads a Unix socket name as a C string, but a name that fills all of
# sun_path (108 bytes; libuv truncates longer ones to that) has no NUL, which Linux
# accepts: the check then reads past the field into libuv's stack frame.
supp=$(mktemp)
trap 'rm -f "$supp"' EXIT
cat > "$supp" <<'SUPP'
{
   unix-socket-name-filling-sun_path-bind
   Memcheck:Param
   socketcall.bind(my_addr.sun_path)
   ...
   fun:uv_pipe_bind2
}
{
   unix-socket-name-filling-sun_path-connect
   Memcheck:Param
   socketcall.connect(serv_addr.sun_path)
   ...
   fun:uv_pipe_connect2
}
SUPP
echo "== valgrind $(basename "$bin"): ${UV_FUZZ_CALLS:=1000000} calls from seed ${UV_FUZZ_SEED:=1}"
# UV_FUZZ_WORKER fuzzes in this process (no child to trace); valgrind is slow, so an
# operation may take longer before the watchdog calls it a hang.
UV_FUZZ_WORKER=1 UV_FUZZ_CALLS=$UV_FUZZ_CALLS UV_FUZZ_SEED=$UV_FUZZ_SEED \
  UV_FUZZ_WATCHDOG_SECS=${UV_FUZZ_WATCHDOG_SECS:-600} \
  valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --suppressions="$supp" "$bin" "$test_name" --exact --nocapture --test-threads=1
echo "fuzz-long: no findings, no memory errors, no definitely-lost bytes"
