# Finds a JDK 25+ for k2j; sourced (POSIX sh) by ./mvnw, ./k2j and, through ./mvnw, .ci/run, so all three pick
# the same JDK. k2j_use_jdk NAME exports JAVA_HOME, or prints one line saying what is missing and exits 1.
# Looked at, in order: $JAVA_HOME, /usr/lib/jvm/temurin-25-jdk-amd64, /usr/lib/jvm/*25* and other 25+ names,
# SDKMAN's and macOS's JDK folders, the javac on the PATH.

K2J_MIN_JDK=25

# Major version of a java binary, or 0 when it does not run.
k2j_java_major() {
  _k2j_v="$("$1" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)[."].*/\1/p; s/.*version "\([0-9][0-9]*\)".*/\1/p' | head -n 1)" || true
  echo "${_k2j_v:-0}"
}

# Prints the first JDK home (java and javac, major >= 25) among the candidates; returns 1 when there is none.
k2j_find_jdk() {
  _k2j_noglob=0
  case "$-" in *f*) _k2j_noglob=1; set +f ;; esac   # ./mvnw runs with globbing off
  _k2j_path_javac="$(command -v javac 2>/dev/null || true)"
  [ -n "$_k2j_path_javac" ] && _k2j_path_javac="$(dirname "$(dirname "$(readlink -f "$_k2j_path_javac" 2>/dev/null || echo "$_k2j_path_javac")")")"
  _k2j_found=""
  for _k2j_d in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*25* /usr/lib/jvm/*-2[5-9]* \
      /usr/lib/jvm/*-2[5-9].* /usr/lib/jvm/*-[3-9][0-9]* "${HOME:-/nonexistent}"/.sdkman/candidates/java/2[5-9]* \
      /Library/Java/JavaVirtualMachines/*/Contents/Home "$_k2j_path_javac"; do
    if [ -n "$_k2j_d" ] && [ -x "$_k2j_d/bin/java" ] && [ -x "$_k2j_d/bin/javac" ] \
        && [ "$(k2j_java_major "$_k2j_d/bin/java")" -ge "$K2J_MIN_JDK" ]; then
      _k2j_found="$_k2j_d"
      break
    fi
  done
  [ "$_k2j_noglob" = 1 ] && set -f
  [ -n "$_k2j_found" ] || return 1
  echo "$_k2j_found"
}

# Exports JAVA_HOME as a JDK 25+ (and MAVEN_OPTS without the JDK's sun.misc.Unsafe warnings from Maven's own
# libraries), or prints one line naming what is missing and how to get it, and exits 1.
k2j_use_jdk() {
  if ! _k2j_jdk="$(k2j_find_jdk)"; then
    _k2j_have="$(command -v java 2>/dev/null || true)"
    [ -n "$_k2j_have" ] && _k2j_have=" (java on the PATH is version $(k2j_java_major "$_k2j_have"))"
    echo "$1: needs a JDK $K2J_MIN_JDK or newer with javac and found none${_k2j_have} in \$JAVA_HOME, /usr/lib/jvm, ~/.sdkman or the PATH; install one (Eclipse Temurin 25: https://adoptium.net, or 'sdk install java 25-tem') and set JAVA_HOME to it" >&2
    exit 1
  fi
  JAVA_HOME="$_k2j_jdk"
  export JAVA_HOME
  # Only on the JDK picked here: JDK 17 rejects the option (so it is not in .mvn/jvm.config).
  case " ${MAVEN_OPTS:-} " in
    *" --sun-misc-unsafe-memory-access=allow "*) ;;
    *) MAVEN_OPTS="--sun-misc-unsafe-memory-access=allow${MAVEN_OPTS:+ $MAVEN_OPTS}"; export MAVEN_OPTS ;;
  esac
}
