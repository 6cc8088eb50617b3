#!/usr/bin/env bash
# Installing portlab, checked the way a teacher's machine would see it (issue 14).
#
#   tests/test_package.sh prefix BUILD_DIR SOURCE_DIR VERSION
#       cmake --install into a scratch prefix: every program of build/bin and nothing else,
#       programs that find their data under the prefix, man pages naming it.
#   tests/test_package.sh deb BUILD_DIR SOURCE_DIR VERSION
#       cpack builds the .deb; dpkg installs it into a scratch root (its own admin dir, so the
#       machine's packages are never touched); an installed lab runs, man -l renders its page,
#       bash completes its options; dpkg --purge leaves nothing behind; apt-get resolves it
#       on an empty system (-s), and installs and purges it for real in an overlay of this
#       machine inside a private mount namespace (as root, where overlayfs works).
#
# The judges are the tools a Debian user has: dpkg, dpkg-deb, ldd, man, bash. Everything
# happens under a mktemp -d directory, removed at the end; ctest bounds the time.
set -euo pipefail

mode=$1 build=$2 source=$3 version=$4
scratch=$(mktemp -d "${TMPDIR:-/tmp}/portlab-package.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export PATH="$PATH:/usr/sbin:/sbin"  # ldconfig, for dpkg
export MANWIDTH=200 MAN_KEEP_FORMATTING= LC_ALL=C.UTF-8

failures=0
check() {  # check "what should hold" command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failures=$((failures + 1)); fi
}
contains() { grep -qF -- "$2" <<<"$1"; }

# The programs a build makes, listed from build/bin itself: every labNN_name, the two tools.
programs=$(cd "$build/bin" && ls -1 | grep -E '^(lab[0-9][0-9]_[a-z0-9_]+|portlab-sim|portlab-viz)$' | sort)
[ -n "$programs" ] || { echo "FAILED: no programs in $build/bin (build first)"; exit 1; }

# Files under ROOT/PREFIX, relative to ROOT/PREFIX, each kind of file where it belongs.
check_layout() {
  local top=$1 files program unexpected
  files=$(cd "$top" && find . -type f -o -type l | sed 's#^\./##' | sort)
  unexpected=$(grep -vE '^(bin/[^/]+|share/portlab/.+|share/man/man1/[^/]+\.1\.gz|share/bash-completion/completions/[^/]+)$' <<<"$files" || true)
  check "nothing installed outside bin/, share/portlab/, share/man/man1/, share/bash-completion/${unexpected:+ (found: $unexpected)}" \
    test -z "$unexpected"
  check "bin/ holds exactly the programs of build/bin" \
    test "$(grep '^bin/' <<<"$files" | sed 's#^bin/##')" = "$programs"
  for program in $programs; do
    check "$program has a man page and a bash completion" \
      test -s "$top/share/man/man1/$program.1.gz" -a -s "$top/share/bash-completion/completions/$program"
  done
  check "the docs are installed as in the source tree" diff -r "$source/docs" "$top/share/portlab/docs"
  check "an example trace for every scenario portlab-sim lists" \
    test "$("$top/bin/portlab-sim" --list | cut -d' ' -f1 | sort)" = \
         "$(cd "$top/share/portlab/examples" && ls -1 | sed 's/\.jsonl$//' | sort)"
  check "every installed scenario file is a scenario portlab-sim lists, and there are at least 12" \
    test -z "$(comm -13 <("$top/bin/portlab-sim" --list | cut -d' ' -f1 | sort) \
                        <(cd "$top/share/portlab/scenarios" && ls -1 | sed 's/\.scenario$//' | sort))" -a \
         "$(ls -1 "$top/share/portlab/scenarios" | wc -l)" -ge 12
  check "an installed scenario file runs: portlab-sim --scenario-file share/portlab/scenarios/web.scenario" \
    bash -c '"$1" --scenario-file "$2" >/dev/null' _ "$top/bin/portlab-sim" "$top/share/portlab/scenarios/web.scenario"
}

# An installed lab runs from its prefix and points at the page installed beside it.
check_lab_finds_its_data() {
  local top=$1 help page
  check "lab01 links no library that is missing or in the build tree" \
    bash -c '! ldd "$1" | grep -E "not found|$2"' _ "$top/bin/lab01_ports_and_services" "$build"
  help=$("$top/bin/lab01_ports_and_services" --help)
  page="$top/share/portlab/docs/labs/01_ports_and_services.md"
  check "lab01 --help names its exercises under the prefix: $page" contains "$help" "Exercises: $page"
  check "lab01 runs from the prefix (--json 22 exits 0)" \
    bash -c '"$1" --json 22 >/dev/null' _ "$top/bin/lab01_ports_and_services"
}

# man-db renders the page: its name, every long option lab08 --help lists, examples.
check_man_page() {
  local top=$1 prefix_seen=$2 page text option
  page="$top/share/man/man1/lab08_port_scanner.1.gz"
  text=$(man --nh --nj -l "$page" 2>&1 | col -b)
  check "man -l renders lab08_port_scanner's NAME" grep -q "^ *lab08_port_scanner - scan" <<<"$text"
  for section in SYNOPSIS DESCRIPTION OPTIONS EXAMPLES "SEE ALSO"; do
    check "lab08's man page has $section" grep -q "^$section" <<<"$text"
  done
  for option in $("$top/bin/lab08_port_scanner" --help | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u); do
    check "lab08's man page documents $option" contains "$text" "$option"
  done
  text=$(man --nh --nj -l "$top/share/man/man1/lab01_ports_and_services.1.gz" 2>&1 | col -b)
  check "lab01's man page names the installed exercises ($prefix_seen/share/portlab/...)" \
    contains "$text" "$prefix_seen/share/portlab/docs/labs/01_ports_and_services.md"
  check "no man page names the build tree" bash -c '! zgrep -lF "$1/share/portlab" "$2"/share/man/man1/*.gz' _ "$build" "$top"
}

# bash, with only the installed completion file, completes options and their values.
check_completion() {
  local top=$1
  complete_words() {  # complete_words PROGRAM WORD... -> what bash offers for the last word
    bash --norc -c '
      source "$1/share/bash-completion/completions/$2"
      spec=$(complete -p "$2") && fn=${spec#*-F } && fn=${fn%% *}
      shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); PATH="'"$top"'/bin:$PATH"
      "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
      printf "%s\n" "${COMPREPLY[@]}"' _ "$top" "$@"
  }
  check "bash completes lab08_port_scanner --sc to --scan" \
    test "$(complete_words lab08_port_scanner lab08_port_scanner --sc)" = "--scan"
  check "bash completes every scenario after portlab-sim --scenario" \
    test "$(complete_words portlab-sim portlab-sim --scenario "" | sort)" = \
         "$("$top/bin/portlab-sim" --list | cut -d' ' -f1 | sort)"
}

# The real thing, `apt-get install ./portlab_*.deb`, on a throwaway copy of this machine: in a
# private mount namespace (unshare -m) /usr, /etc and /var are overlays whose changes all land
# in the scratch directory, so the machine itself never changes, and the namespace ends with
# the command. Needs root and overlayfs (skipped without them, e.g. in a locked-down
# container). The libraries it depends on are those tools/setup installed, so apt-get only
# unpacks (were one missing, it would fetch it from Debian like any apt-get install).
check_apt_get_in_overlay() {
  local deb=$1 overlay="$scratch/overlay" status=0
  case "$overlay" in /usr/* | /etc/* | /var/*) echo "skipped: apt-get in an overlay ($overlay is under an overlaid folder)"; return ;; esac
  if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
    echo "skipped: apt-get in an overlay (needs root and unshare -m)"; return
  fi
  mkdir -p "$overlay/results"
  timeout 120 unshare -m --propagation private bash -s "$overlay" "$deb" >"$overlay/log" 2>&1 <<'INSIDE' || status=$?
set -u
overlay=$1 deb=$2 results=$1/results
for d in usr etc var; do
  mkdir -p "$overlay/$d-up" "$overlay/$d-work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$overlay/$d-up,workdir=$overlay/$d-work" "/$d" || exit 77
done
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "$deb" || exit 1
dpkg -L portlab >"$results/files"
command -v lab01_ports_and_services >"$results/which"
lab01_ports_and_services --json 22 >/dev/null; echo $? >"$results/lab01_status"
MANWIDTH=200 man --nh --nj lab08_port_scanner 2>&1 | col -b >"$results/man"
bash --norc -c 'source /usr/share/bash-completion/completions/lab08_port_scanner && complete -p lab08_port_scanner' >"$results/complete" 2>&1
apt-get purge -y -q portlab || exit 1
while read -r path; do [ -d "$path" ] || [ ! -e "$path" ] || echo "$path"; done <"$results/files" >"$results/left"
dpkg-query -W -f='${Status}' portlab >"$results/status_after" 2>/dev/null
exit 0
INSIDE
  if [ "$status" = 77 ]; then echo "skipped: apt-get in an overlay (overlayfs cannot be mounted here)"; return; fi
  check "apt-get installs and purges the .deb in an overlay of this machine" test "$status" = 0
  [ "$status" = 0 ] || { cat "$overlay/log"; return; }
  check "lab01_ports_and_services is on PATH at /usr/bin" test "$(cat "$overlay/results/which")" = /usr/bin/lab01_ports_and_services
  check "lab01_ports_and_services --json 22 exits 0" test "$(cat "$overlay/results/lab01_status")" = 0
  check "man lab08_port_scanner shows its page" grep -q "^ *lab08_port_scanner - scan" "$overlay/results/man"
  check "its completion loads in bash" grep -q "complete -F .* lab08_port_scanner" "$overlay/results/complete"
  check "apt-get purge leaves none of its files" test ! -s "$overlay/results/left"
  check "dpkg no longer lists portlab as installed" bash -c '! grep -q "install ok installed" "$1"' _ "$overlay/results/status_after"
}

case "$mode" in
  prefix)
    # Not installed: build/bin/ programs find build/share/portlab, the source tree's docs.
    check "from build/bin, lab01 --help names the source tree's page through build/share/portlab" \
      test "$(realpath "$("$build/bin/lab01_ports_and_services" --help | sed -n 's/^Exercises: //p')")" = \
           "$(realpath "$source/docs/labs/01_ports_and_services.md")"
    prefix="$scratch/prefix"
    cmake --install "$build" --prefix "$prefix" --strip >/dev/null
    check_layout "$prefix"
    check_lab_finds_its_data "$prefix"
    check_man_page "$prefix" "$prefix"
    check_completion "$prefix"
    ;;
  deb)
    cpack --config "$build/CPackConfig.cmake" -B "$scratch/package" >"$scratch/cpack.log" 2>&1 ||
      { cat "$scratch/cpack.log"; echo "FAILED: cpack"; exit 1; }
    deb=$(ls "$scratch"/package/portlab_*.deb)
    check "the package is named portlab_${version}_$(dpkg --print-architecture).deb" \
      test "$(basename "$deb")" = "portlab_${version}_$(dpkg --print-architecture).deb"
    check "its Version is the project's ($version)" test "$(dpkg-deb -f "$deb" Version)" = "$version"
    recommends=$(dpkg-deb -f "$deb" Recommends)
    for peer in nmap tcpdump tshark iproute2; do
      check "it recommends $peer" contains "$recommends" "$peer"
    done
    # Depends must name the package of every library a program links directly (its NEEDED
    # entries, readelf -d), as dpkg itself knows the file ldd resolves it to (dpkg -S).
    depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | awk '{ print $1 }')
    libraries=$(for program in $programs; do
                  needed=$(readelf -d "$build/bin/$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
                  ldd "$build/bin/$program" | awk -v needed="$(echo $needed)" '
                    BEGIN { n = split(needed, names, " "); for (i = 1; i <= n; i++) wanted[names[i]] = 1 }
                    ($1 in wanted) && $3 ~ /^\// { print $3 }'
                done | sort -u)
    check "the programs link some libraries (readelf, ldd)" test -n "$libraries"
    for library in $libraries; do
      owner=$(dpkg -S "$library" 2>/dev/null || dpkg -S "$(readlink -f "$library")" 2>/dev/null || true)
      owner=${owner%%:*}
      [ -n "$owner" ] || continue  # not from a package (e.g. a local build): no claim on it
      check "Depends names $owner (for $(basename "$library"))" grep -qxF "$owner" <<<"$depends"
    done

    # apt-get, simulating (-s) on a machine with nothing installed (an empty dpkg status,
    # caches in memory, no lock): every Depends and Recommends resolves from the archive the
    # machine knows, as on a fresh Debian 12. Skipped when apt has no package lists.
    if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
      : >"$scratch/empty-status"
      check "apt-get would install ./$(basename "$deb") and all it needs on an empty system" \
        bash -c 'apt-get -s -q -o Dir::State::status="$1" -o Debug::NoLocking=1 -o Dir::Cache::pkgcache= \
                   -o Dir::Cache::srcpkgcache= install "$2" 2>&1 | grep -q "^Inst portlab "' _ "$scratch/empty-status" "$deb"
    else
      echo "skipped: apt-get has no package lists (apt-get update) to resolve the Depends against"
    fi

    root="$scratch/root"
    mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
    touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
    # --path-include: undo a path-exclude of /usr/share/man in /etc/dpkg/dpkg.cfg.d (slim images).
    dpkg_scratch=(dpkg --root="$root" --log="$scratch/dpkg.log" --force-not-root --force-depends --path-include="*")
    "${dpkg_scratch[@]}" --install "$deb" >"$scratch/dpkg.out" 2>&1 ||
      { cat "$scratch/dpkg.out"; echo "FAILED: dpkg --install into the scratch root"; exit 1; }
    check "dpkg lists portlab $version as installed in the scratch root" \
      test "$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status} ${Version}' portlab)" = \
           "install ok installed $version"
    check_layout "$root/usr"
    check_lab_finds_its_data "$root/usr"
    check_man_page "$root/usr" "/usr"
    check_completion "$root/usr"

    "${dpkg_scratch[@]}" --purge portlab >"$scratch/dpkg.out" 2>&1 ||
      { cat "$scratch/dpkg.out"; echo "FAILED: dpkg --purge"; exit 1; }
    left=$(cd "$root" && find . -mindepth 1 -not -path './var/lib/dpkg*' -not -path ./var -not -path ./var/lib)
    check "purging leaves nothing behind${left:+ (left: $left)}" test -z "$left"
    check "dpkg no longer knows portlab in the scratch root" \
      bash -c '! dpkg-query --admindir="$1" -W -f="\${Status}" portlab 2>/dev/null | grep -q installed' _ "$root/var/lib/dpkg"

    check_apt_get_in_overlay "$deb"
    ;;
  *) echo "usage: tests/test_package.sh prefix|deb BUILD_DIR SOURCE_DIR VERSION" >&2; exit 2 ;;
esac

echo "$failures failed"
[ "$failures" = 0 ]
