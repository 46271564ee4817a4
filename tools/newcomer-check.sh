#!/usr/bin/env bash
# The newcomer check: clones this checkout's committed HEAD into an empty temporary folder (nothing beside it, so
# no ../shared), puts a java 17 first on the PATH with JAVA_HOME unset, and runs the README's two commands, read
# from its "The two commands" section: the demo generation, then the test suite. Exits 1 when either fails; the
# last line says PASS or FAIL.
#   tools/newcomer-check.sh [--keep]      --keep: leave the temporary folder (its path is printed)
# Uncommitted changes are not checked (the clone has only commits). Maven's local repository (~/.m2) is shared
# with this machine, so dependencies already downloaded are not downloaded again.
set -uo pipefail

keep=0
case "${1:-}" in
  --keep) keep=1 ;;
  "") ;;
  *) echo "usage: tools/newcomer-check.sh [--keep]" >&2; exit 2 ;;
esac

SRC="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[newcomer %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { say "$*"; echo "newcomer-check: FAIL: $*"; exit 1; }

rev="$(git -C "$SRC" rev-parse HEAD)" || fail "$SRC is not a git checkout"
[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no)" ] \
  || say "note: $SRC has uncommitted changes; only the commit $rev is checked"

work="$(mktemp -d "${TMPDIR:-/tmp}/k2j-newcomer.XXXXXX")" || fail "cannot make a temporary folder"
cleanup() { if [ "$keep" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
repo="$work/k2j"
say "cloning $SRC at $rev into $repo"
git clone -q --no-checkout "$SRC" "$repo" && git -C "$repo" checkout -q --detach "$rev" || fail "git clone failed"
[ "$(ls -A "$work")" = "k2j" ] || fail "the temporary folder holds more than the clone"

# java 17 first on the PATH, as on a machine whose default java is 17; the repository must find its JDK 25 itself.
unset JAVA_HOME MAVEN_OPTS K2J_HOME
jdk17=""
for d in /usr/lib/jvm/java-17-openjdk* /usr/lib/jvm/*17*; do
  if [ -x "$d/bin/java" ]; then jdk17="$d"; break; fi
done
if [ -n "$jdk17" ]; then
  PATH="$jdk17/bin:$PATH"
elif ! java -version 2>&1 | grep -q 'version "17'; then
  fail "no java 17 found (looked in /usr/lib/jvm and the PATH)"
fi
export PATH
say "java first on the PATH: $(command -v java) ($(java -version 2>&1 | head -n 1))"

# The README's two commands: the first line of each of the first two bash blocks under "## The two commands".
mapfile -t cmds < <(awk '/^## The two commands/ {on=1; next} on && /^## / {exit}
  on && /^```bash/ {inblk=1; first=1; next} inblk && /^```/ {inblk=0; next} inblk && first {print; first=0}' \
  "$repo/README.md")
[ "${#cmds[@]}" -eq 2 ] || fail "expected two commands in the README's 'The two commands' section, found ${#cmds[@]}"

status=0
summary=()
for i in 0 1; do
  cmd="${cmds[$i]}"
  log="$work/command-$((i + 1)).log"
  say "running: $cmd (output in $log)"
  start=$(date +%s)
  (cd "$repo" && bash -c "$cmd") >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  echo "----- last lines of: $cmd" >&2
  tail -n 25 "$log" >&2
  if grep -q '^\[INFO\] Reactor Summary' "$log"; then
    echo "----- test totals per module (surefire):" >&2
    grep -E '^\[(INFO|ERROR|WARNING)\] Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$' "$log" >&2
  fi
  echo "----- exit $rc after ${secs} s" >&2
  summary+=("'$cmd' exit $rc (${secs} s)")
  [ "$rc" -eq 0 ] || status=1
done

if [ "$status" -eq 0 ]; then
  echo "newcomer-check: PASS at ${rev:0:10}: ${summary[0]}; ${summary[1]}"
else
  keep=1
  echo "newcomer-check: FAIL at ${rev:0:10}: ${summary[0]}; ${summary[1]} (logs in $work)"
fi
exit "$status"
