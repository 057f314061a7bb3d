#!/bin/bash
# Native self-check of the built guest images (run by `make verify`):
#  - each case runs twice per variant (.glibc/.musl/.pie): stdout, stderr and exit status
#    must be identical across runs (determinism);
#  - stdout and exit status must be identical across variants, except where noted;
#  - every binary is a static x86-64 ELF without PT_INTERP (readelf).
# argv[0] is passed as the bare program name (without the variant suffix) so output that
# prints argv[0] is comparable across variants.
set -u
cd "$(dirname "$0")/.."
B=$(pwd)/build
T=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "keeping $T" || trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# run VARIANT_BIN NAME OUTPREFIX ARGS... ; DIR placeholder @DIR@ becomes a fresh directory
run1() {
    local bin=$1 name=$2 out=$3 d a; shift 3
    d=$(mktemp -d "$T/dir.XXXXXX")
    local args=()
    for a in "$@"; do
        [ "$a" = @DIR@ ] && a=$d
        args+=("$a")
    done
    # The outer subshell swallows bash's "Segmentation fault" job message.
    ( (cd "$T" && exec -a "$name" "$bin" "${args[@]}" >"$out.out" 2>"$out.err" </dev/null); exit $? ) 2>/dev/null
    echo $? >"$out.rc"
    # Directory contents left behind (names, types, sizes, file hashes; no times).
    (cd "$d" && find . -mindepth 1 | LC_ALL=C sort | while read -r f; do
        if [ -L "$f" ]; then echo "$f -> $(readlink "$f")";
        elif [ -d "$f" ]; then echo "$f/";
        else echo "$f $(wc -c <"$f") $(md5sum <"$f" | cut -c1-32)"; fi
    done) >"$out.dir"
}

# case NAME ARGS... : compares runs and variants
case_() {
    name=$1; shift
    label="$name $*"
    first=
    for v in glibc musl pie; do
        bin=$B/$name.$v
        [ -x "$bin" ] || continue
        p=$T/$(echo "$label.$v" | tr -c 'A-Za-z0-9._\n-' '_')
        run1 "$bin" "$name" "$p.1" "$@"
        run1 "$bin" "$name" "$p.2" "$@"
        for k in out err rc dir; do
            cmp -s "$p.1.$k" "$p.2.$k" || { bad "$label [$v]: $k differs between two runs"; continue 2; }
        done
        if [ -z "$first" ]; then first=$p.1; fv=$v; ok; continue; fi
        same=1
        for k in out rc dir; do
            cmp -s "$first.$k" "$p.1.$k" || { bad "$label: $k differs $fv vs $v"; same=0; }
        done
        if ! cmp -s "$first.err" "$p.1.err"; then
            echo "note: $label: stderr differs $fv vs $v:"; diff "$first.err" "$p.1.err" | sed 's/^/    /'
        fi
        [ $same = 1 ] && ok
    done
}

case_ hello
case_ hello one "two words" ''
case_ argv_env HOME_NOT_SET_X PATH_IS
export MVEMU_TEST_VAR="value with spaces"
case_ argv_env MVEMU_TEST_VAR UNSET_VAR_XYZ
case_ filetool @DIR@
case_ malloc_stress
case_ malloc_stress 3000
for m in "" 0 1 42 atexit "atexit 9" _exit "_exit 6" return; do case_ stdio_exit $m; done
for m in segv segv_read ill div0 int3 abort stack none; do case_ crasher $m; done
case_ mmap_file @DIR@
case_ syscalls_misc
case_ nbody; case_ nbody 100
case_ spectral_norm; case_ spectral_norm 50
case_ fannkuch; case_ fannkuch 8
case_ binary_trees; case_ binary_trees 6
case_ mandelbrot; case_ mandelbrot 61
case_ getpid_loop; case_ getpid_loop 10000
case_ mmap_loop; case_ mmap_loop 2000

# Expected values.
expect() { # expect NAME.VARIANT "ARGS" EXPECTED_STDOUT_FILE_CONTENT
    got=$("$B/$1" $2 2>/dev/null)
    [ "$got" = "$3" ] && ok || bad "$1 $2: got '$got'"
}
expect nbody.glibc 1000 "-0.169075164
-0.169087605"
expect spectral_norm.glibc 100 "1.274219991"
expect fannkuch.glibc 7 "228
Pfannkuchen(7) = 16"

status() { # status EXPECTED CMD...
    want=$1; shift
    ( ("$@" >/dev/null 2>&1 </dev/null); exit $? ) 2>/dev/null; got=$?
    [ "$got" = "$want" ] && ok || bad "$*: exit $got, want $want"
}
for v in glibc musl; do
    status 139 "$B/crasher.$v" segv
    status 139 "$B/crasher.$v" segv_read
    status 132 "$B/crasher.$v" ill
    status 136 "$B/crasher.$v" div0
    status 133 "$B/crasher.$v" int3
    status 134 "$B/crasher.$v" abort
    status 3 "$B/stdio_exit.$v"
    status 4 "$B/argv_env.$v" a b c
done

# Third-party binaries.
echo hello | "$B/busybox" tr a-z A-Z | grep -qx HELLO && ok || bad "busybox tr"
[ "$("$B/bash" -c 'echo $((6*7))')" = 42 ] && ok || bad "bash -c"

# Static x86-64, no PT_INTERP, no DT_NEEDED.
for f in "$B"/*.glibc "$B"/*.musl "$B"/*.pie "$B/busybox" "$B/bash"; do
    readelf -h "$f" | grep -q 'Machine:.*X86-64' || { bad "$f: not x86-64"; continue; }
    readelf -lW "$f" | grep -q INTERP && { bad "$f: PT_INTERP"; continue; }
    readelf -dW "$f" 2>/dev/null | grep -q NEEDED && { bad "$f: DT_NEEDED"; continue; }
    ok
done

echo "verify: $pass passed, $fail failed"
[ $fail = 0 ]
