#!/usr/bin/env bash
# Runs the runtime test binaries under valgrind memcheck. Fails on any memory error
# or any definitely-lost byte, and on a binary that runs past UV_VALGRIND_LIMIT
# seconds (default 900). Usage: bash tests/valgrind.sh [TEST_TARGET ...]
# (default: the runtime suites; the generator suites run bindgen, which is not ours;
# fd_limit is left out: valgrind emulates the descriptor limit itself, not for every
# call, so at the limit libuv's spawn gets descriptors the real limit refuses, then
# cannot close them ("invalid file descriptor") and aborts on the failed close in
# uv__process_open_stream; natively the suite passes, with the EMFILE it expects).
# valgrind runs one thread at a time; --fair-sched=yes hands the CPU over in turn.
# Without it a thread that gives the CPU up may take it straight back, so threads
# that send in a loop until refused can keep the loop thread (which refuses them
# once it runs its drop) waiting for minutes while their queue grows.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(errors loop_and_handles loop_extras async_signal_poll extension tcp_basics dns tcp_streams pipes udp udp_batches attacks_udp_keep tty read_allocator soundness contracts stdio_closed helpers attacks stream_trait extension_fs identity_and_data fs_requests fs_files fs_dirs fs_watch fd_pairs slab_paths process work system async_executor async_net async_cancel async_drop_fuzz async_closed async_senders async_kept executor_memory attacks_async_senders attacks_lifetimes attacks_handles attacks_stdio attacks_recent attacks_sharing attacks_fs_async attacks_work attacks_inputs attacks_loop_handles attacks_drops attacks_drops2 attacks_streams attacks_review attacks_loops attacks_ipc attacks_ipc_reads attacks_futures attacks_futures2 attacks_executor attacks_executor2 attacks_pool attacks_teardown attacks_net attacks_round attacks_rest attacks_runtime perf_timers_paths perf_work_paths perf_write_paths libuv_scenarios_handles libuv_scenarios_requests libuv_scenarios_process attacks_process_wide pool_gate)
args=()
for t in "${targets[@]}"; do
  [ -f "tests/tests/$t.rs" ] && args+=(--test "$t")
done
bins=$(cargo test -q -p uv-tests "${args[@]}" --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
status=0
# Race tests repeat less under valgrind (see uv_tests::iterations).
export UV_UNDER_VALGRIND=1
# A binary still running after 15 minutes (the slowest takes about 5 on a 2-core
# machine) is killed with its children, and counts as failed: a hang then fails
# the run with its name instead of using up CI's time.
limit=${UV_VALGRIND_LIMIT:-900}
for b in $bins; do
  echo "== valgrind $(basename "$b")"
  # One test thread keeps the output readable and the run deterministic.
  rc=0
  timeout -k 10 "$limit" valgrind --quiet --fair-sched=yes --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite "$b" --test-threads=1 -q || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "!! $(basename "$b") still ran under valgrind after ${limit} s and was killed"
    status=1
  elif [ $rc -ne 0 ]; then
    echo "!! $(basename "$b") failed under valgrind"
    status=1
  fi
done
[ $status -eq 0 ] && echo "valgrind: no errors, no definitely-lost bytes"
exit $status
