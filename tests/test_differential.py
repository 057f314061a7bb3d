"""Differential tests: every guest image (all variants) and third-party programs, run natively and
under mvemu; stdout, stderr, exit status and the files left behind must agree (see harness.py)."""
from __future__ import annotations

import os

import pytest

from harness import BASE_ENV, BUILD, Case, nosys

VARIANTS = ("glibc", "musl", "pie")
PIE_NAMES = {"hello", "argv_env", "filetool", "malloc_stress", "crasher", "nbody"}   # guest_images/Makefile
THIRD_PARTY = ("busybox", "bash")

def img(name: str) -> str:
    return str(BUILD / name)


def variants_of(name: str):
    return [v for v in VARIANTS if v != "pie" or name in PIE_NAMES]


def P(case: Case, xfail: str | None = None, strict: bool = True):
    marks = [pytest.mark.xfail(reason=xfail, strict=strict)] if xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def per_variant(name: str, *arg_lists, xfail: str | dict | None = None, strict: bool = True, **kw):
    """One case per variant of guest image `name` and per argument list. `xfail` is a reason for
    every variant, or {variant: reason}."""
    out = []
    for v in variants_of(name):
        reason = xfail.get(v) if isinstance(xfail, dict) else xfail
        for args in arg_lists or ((),):
            out.append(P(Case(img(f"{name}.{v}"), args, **kw), reason, strict))
    return out


# -- our guest images -----------------------------------------------------------------------------
IMAGE_CASES = [
    *per_variant("hello", (), ("world",), ("a", "", "b c", "--flag", "-"), ("ünïcödé", "x" * 300)),
    *per_variant("argv_env", ("HOME", "FOO", "EMPTY", "NOT_SET", "PATH"),
                 env={**BASE_ENV, "FOO": "bar baz", "EMPTY": "", "MANY": "=a=b="}),
    *per_variant("argv_env", ("FOO",), ("",), env={"FOO": "only", "LC_ALL": "C"}),
    *per_variant("filetool", (".",), ("{work}/scratch",), files={"scratch": None}),
    *per_variant("malloc_stress", ("1",), ("200",)),
    *per_variant("stdio_exit", (), ("0",), ("42",), ("255",), ("256",), ("atexit",), ("atexit", "9"),
                 ("_exit",), ("_exit", "11"), ("return",), ("return", "0"), ("return", "300")),
    *per_variant("stdio_exit", ("atexit", "4"), ("_exit",), ("return",), stdout_file="out.txt"),
    *per_variant("hello", ("to", "a file"), stdout_file="out.txt"),
    *per_variant("crasher", ("segv",), ("segv_read",), ("ill",), ("div0",), ("int3",), ("abort",),
                 ("stack",), ("none",), (), ("bogus",)),
    *per_variant("mmap_file", (".",)),
    *per_variant("syscalls_misc"),
    *per_variant("nbody", ("1",), ("1000",)),
    *per_variant("spectral_norm", ("20",)),
    *per_variant("fannkuch", ("3",), ("7",)),
    *per_variant("binary_trees", ("6",), ("8",)),
    *per_variant("mandelbrot", ("8",), ("61",), ("64",)),
    *per_variant("getpid_loop", ("1",), ("500",)),
    *per_variant("cow"),
    *per_variant("wp_demo"),
    *per_variant("local_calls"),
    *per_variant("fork_wait"),
    *per_variant("pipeline"),
    *per_variant("signals"),
    *per_variant("threads", ("1",), ("3",)),
    *per_variant("pingpong", ("pipe", "50"), ("futex", "50"), ("fork", "2")),
    *per_variant("mmap_loop", ("1",), ("200",)),
    # benchmarks/multiverse.py's programs; the first case of each is also run hybridized
    # (test_hybridize.py), where hypercall_loop issues its hypercalls and the threads are HRT threads
    *per_variant("touch_pages", ("300",), ("1",)),
    *per_variant("thread_loop", ("20",), ("1",)),
    *per_variant("par_mandelbrot", ("2", "64"), ("1", "61"), ("3", "40")),
    *per_variant("hypercall_loop", ("100",), ("1",)),
    *per_variant("debugme", (), ("5",), ("0",)),
]

# -- stdin piped in --------------------------------------------------------------------------------
TEXT = b"banana 3\napple 10\ncherry 7\napple 10\ndate 1\nbanana 3\nelder 12\n"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2::/bin:\n"
NUMS = b"".join(b"%d %d\n" % (i, i * i) for i in range(1, 40))
BIG = b"".join(b"line %05d %s\n" % (i, b"abcdefgh" * (i % 13)) for i in range(3000))   # ~190 KiB
FILES = {"in.txt": TEXT, "passwd": PASSWD, "nums.txt": NUMS, "big.txt": BIG, "empty": b"",
         "d": None, "d/a.txt": b"A\n", "d/b": b"bb", "d/.hidden": b"", "d/sub": None, "d/sub/x": b"x"}


def bb(*args, stdin=None, files=None, **kw):
    return P(Case(img("busybox"), args, stdin=stdin, files=FILES if files is None else files, **kw))


BUSYBOX_CASES = [
    bb("echo", "hello", "world"),
    bb("echo", "-n", "no newline"),
    bb("echo", "-e", "a\\tb\\nc"),
    bb("echo"),
    bb("true"),
    bb("false"),
    bb("cat", "in.txt"),
    bb("cat", "big.txt"),
    bb("cat", "in.txt", "empty", "passwd"),
    bb("cat", "missing.txt"),
    bb("cat", stdin=TEXT),
    bb("cat", "-", stdin=BIG),
    bb("wc", "in.txt"),
    bb("wc", "-l", "big.txt", "in.txt"),
    bb("wc", stdin=TEXT),
    bb("wc", "-c", stdin=BIG),
    bb("sort", "in.txt"),
    bb("sort", "-u", "in.txt"),
    bb("sort", "-k2,2n", "-r", "in.txt"),
    bb("sort", stdin=TEXT),
    bb("uniq", "-c", stdin=b"a\na\nb\nc\nc\nc\na\n"),
    bb("sed", "s/an/AN/g", "in.txt"),
    bb("sed", "-n", "2,3p", "in.txt"),
    bb("sed", "-i", "s/apple/APPLE/", "in.txt"),
    bb("awk", "{s += $2} END {print s, NR}", "in.txt"),
    bb("awk", "-F:", "{print $1 \"=\" $3}", "passwd"),
    bb("awk", "BEGIN {for (i = 0; i < 5; i++) printf \"%d^2=%d\\n\", i, i*i; print 7/2, 2^10}"),
    bb("grep", "-n", "an", "in.txt"),
    bb("grep", "-c", "apple", "in.txt"),
    bb("grep", "zzz", "in.txt"),
    bb("grep", "-v", "a", stdin=TEXT),
    bb("cut", "-d:", "-f1,3", "passwd"),
    bb("cut", "-c2-4", stdin=TEXT),
    bb("head", "-n", "3", "in.txt"),
    bb("head", "-c", "100", "big.txt"),
    bb("tail", "-n", "2", "in.txt"),
    bb("tail", "-n", "3", "big.txt"),
    bb("seq", "10"),
    bb("seq", "5", "-1", "1"),
    bb("seq", "-s,", "1", "3", "20"),
    bb("expr", "6", "*", "7"),
    bb("expr", "length", "hello"),
    bb("expr", "1", "/", "0"),
    bb("printf", "%s=%d %5.2f|%-4s|%x\\n", "a", "1", "3.14159", "ab", "255"),
    bb("md5sum", "in.txt", "big.txt"),
    bb("md5sum", stdin=BIG),
    bb("sha256sum", "in.txt", "empty"),
    bb("sha256sum", stdin=TEXT),
    bb("base64", "in.txt"),
    bb("base64", "-d", stdin=b"aGVsbG8gd29ybGQK"),
    bb("od", "-c", "in.txt"),
    bb("od", "-A", "x", "-t", "x1z", "passwd"),
    bb("factor", "360", "1001", "2147483647", "600851475143"),
    bb("basename", "/a/b/c.txt", ".txt"),
    bb("dirname", "/a/b/c.txt"),
    bb("tr", "a-z", "A-Z", stdin=TEXT),
    bb("tr", "-d", "aeiou", stdin=BIG),
    bb("ls", "d"),
    bb("ls", "-a", "d"),
    bb("ls", "-1", "."),
    bb("ls", "nowhere"),
    bb("test", "-f", "in.txt"),
    bb("test", "-f", "d"),
    bb("test", "-d", "d"),
    bb("[", "3", "-gt", "2", "]"),
    bb("stat", "-c", "%s %F", "in.txt", "d", "empty"),
    bb("uname", "-sm"),
    bb("pwd"),
    bb("realpath", "d/sub/../a.txt"),
    bb("readlink", "-f", "d/./sub"),
    bb("env"),
    bb("printenv", "PATH"),
    bb("cp", "in.txt", "copy.txt"),
    bb("cp", "-r", "d", "d2"),
    bb("mv", "passwd", "d/passwd.moved"),
    bb("rm", "-r", "d"),
    bb("rm", "missing"),
    bb("mkdir", "-p", "new/a/b"),
    bb("rmdir", "d/sub"),
    bb("ln", "-s", "in.txt", "link.txt"),
    bb("touch", "-d", "2020-01-01", "new.txt"),
    bb("chmod", "600", "in.txt"),
    bb("truncate", "-s", "5", "in.txt"),
    bb("dd", "if=big.txt", "of=part.bin", "bs=1000", "count=3", "skip=2"),
    bb("split", "-l", "1000", "big.txt", "part."),
    bb("tee", "t1", "t2", stdin=TEXT),
    bb("rev", stdin=TEXT),
    bb("fold", "-w", "7", "in.txt"),
    bb("nl", "in.txt"),
    bb("comm", "-12", "in.txt", "in.txt"),
    bb("cmp", "in.txt", "passwd"),
    bb("diff", "in.txt", "passwd"),
    bb("xxd", "passwd"),
    bb("hexdump", "-C", "in.txt"),
    bb("nosuchapplet"),
    # the shell, without fork: builtins only
    bb("sh", "-c", "x=3; y=4; echo $((x * y)); for i in 1 2 3; do echo i=$i; done; exit 5"),
    bb("sh", "-c", "f() { echo \"f($1)\"; return 3; }; f a; echo st=$?; set -- p q r; echo $# $2"),
    bb("sh", "-c", "while read a b; do echo \"$b:$a\"; done", stdin=TEXT),
    bb("sh", "-c", "s=abcdef; echo ${#s} ${s#ab} ${s%ef}; case $s in a*) echo starts-a;; esac"),
    bb("sh", "-c", "cd d && pwd && echo *"),
]

# Shell commands that fork, pipe, exec and wait (clone, pipe2, dup2, execve, wait4, SIGCHLD).
def bbsh(script, stdin=None, **kw):
    return P(Case(img("busybox"), ("sh", "-c", script), stdin=stdin, files=FILES, **kw))


BB = img("busybox")
PROCESS_CASES = [
    bbsh(f"echo a | {BB} cat"),
    bbsh(f"{BB} true && echo ran; {BB} false; echo st=$?"),
    bbsh(f"{BB} cat in.txt | {BB} sort | {BB} uniq -c | {BB} sort -rn | {BB} head -n 3"),
    bbsh(f"{BB} seq 1000 | {BB} awk '{{s += $1}} END {{print s}}'"),
    bbsh(f"x=$({BB} wc -l < in.txt); echo \"lines: $x\"; ( cd d && {BB} ls ); echo back; exit 3"),
    bbsh(f"{BB} sh -c 'exit 7'; echo child=$?; {BB} sh -c 'kill -TERM $$'; echo killed=$?"),
    bbsh(f"for i in 1 2 3; do {BB} echo $i > bg$i.txt & done; wait; {BB} cat bg1.txt bg2.txt bg3.txt; echo all done"),
    bbsh(f"{BB} tr a-z A-Z | {BB} rev > out.txt; {BB} cat out.txt", stdin=TEXT),
    bbsh(f"exec {BB} echo replaced; echo not reached"),
    bbsh(f"{BB} find d -type f | {BB} sort"),
    bbsh(f"echo in.txt passwd | {BB} xargs {BB} wc -l"),
    bbsh("nosuchcommand; echo st=$?"),
    # stdin on a regular file: the shell's `read` seeks back, so the next command sees the rest
    bbsh(f"read a; echo \"got $a\"; {BB} cat", stdin_file="in.txt"),
    bbsh(f"{BB} head -n 2; {BB} wc -l", stdin_file="big.txt"),
    # the shell kills itself: the same status as natively, and one `mvemu:` line naming the signal
    *(bbsh(f"echo before; kill -{sig} $$; echo after") for sig in ("SEGV", "TERM", "KILL", "USR1", "ABRT")),
    *(P(Case(img("busybox"), ("sh", "-c", f"echo before; kill -{sig} $$; echo after")))
      for sig in ("PIPE", "INT")),
]


# -- bash: builtins only, no fork -------------------------------------------------------------------
# bash asks for a socket at start-up; mvemu reports the unimplemented call once (a tolerated note).
BASH_NOTES = nosys("socket")


def sh(script: str, *args, stdin=None, **kw):
    return P(Case(img("bash"), ("-c", script, "bash", *args), stdin=stdin, mvemu_notes=BASH_NOTES, **kw))


BASH_CASES = [
    sh("echo $((6*7))"),
    sh("for ((i = 0; i < 5; i++)); do printf '%d ' $((i * i)); done; echo"),
    sh("n=0; while [[ $n -lt 100 ]]; do n=$((n + 7)); done; echo $n; until false; do break; done"),
    sh("fact() { local r=1 i; for ((i = 2; i <= $1; i++)); do ((r *= i)); done; echo $r; }; fact 20"),
    sh("a=(zero one two three); a+=(four); echo ${#a[@]} ${a[2]} \"${a[@]:1:2}\"; unset 'a[1]'; "
       "echo ${!a[@]}; declare -A m=([x]=1 [y]=2); m[z]=3; for k in x y z; do echo $k=${m[$k]}; done"),
    sh("s='Hello, World'; echo ${s^^} ${s,,} ${#s} ${s:7} ${s:0:5} ${s/World/bash} ${s//l/L}; "
       "t=${s%%,*}; echo \"$t\"; [[ $s == H*d ]] && echo match; [[ $s =~ ([A-Z])[a-z]+$ ]] && "
       "echo ${BASH_REMATCH[1]}"),
    sh("printf '%-6s|%6s|%06.2f|%x|%o|%c|%q\\n' ab cd 3.14159 255 8 xyz 'a b'; printf -v v '%03d' 7; "
       "echo $v"),
    sh("while IFS=' ' read -r name num; do echo \"[$name] [$num]\"; total=$((total + num)); done; "
       "echo total=$total", stdin=TEXT),
    sh("read -r first; read -r -a words; echo \"first=$first\"; echo ${#words[@]} ${words[1]}; "
       "mapfile -t rest; echo ${#rest[@]} \"${rest[-1]}\"", stdin=TEXT),
    sh("echo \"$0 $# $1 $2\"; shift; echo \"$@\"", "one", "two words", "three"),
    sh("case $1 in [0-9]*) echo number;; *) echo other;; esac; x=${UNSET:-default}; echo $x ${#x}", "42"),
    sh("set -e; echo before; false; echo after"),
    sh("exit 3"),
    sh("echo to-stderr >&2; echo to-stdout; return 2 2>/dev/null || exit 4"),
    sh("trap 'echo trapped EXIT' EXIT; echo body"),
    sh("declare -i x=5; x+=10; echo $x; let 'y = x * 2'; echo $y; echo $(( 2**40 )) $(( -7 / 2 )) $(( 7 % -3 ))"),
    sh("echo {1..5} {a..e..2} x{A,B}y; printf '%s\\n' \"${PWD##*/}\""),
    sh("type echo; type -t cd; command -v printf; hash 2>/dev/null; echo ok"),
    sh("echo data > out.txt; echo more >> out.txt; read -r l < out.txt; echo \"$l\"; "
       "exec 3> fd3.txt; echo via-fd3 >&3; exec 3>&-"),
    sh("umask; umask 027; umask; umask -S"),
    sh("read -r a; read -r b; echo \"$b/$a\"; cat_rest() { while read -r l; do echo \"> $l\"; done; }; cat_rest",
       stdin_file="in.txt", files=FILES),
    # with fork/exec/wait
    sh("x=$(echo sub); echo \"got $x\"; y=$(exit 4); echo st=$?"),
    sh("echo start; (echo in subshell; exit 2); echo st=$?; { echo grouped; } | { read -r l; echo \"[$l]\"; }"),
    sh(f"{BB} echo external; {BB} false || echo failed; type -t {BB}"),
    sh("f() { echo \"f $1\"; }; f a | while read -r a b; do echo \"$b/$a\"; done; echo ${PIPESTATUS[@]}"),
    sh("coproc { echo from-coproc; }; read -r line <&${COPROC[0]}; echo $line; wait; echo st=$?"),
]

ENV_AND_REGRESSION_CASES = [
    # The guest gets the environment mvemu was started with, even without any LC_*/LANG (Python's
    # PEP 538 C-locale coercion once added LC_CTYPE=C.UTF-8 to mvemu's os.environ).
    P(Case(img("busybox"), ("env",), env={"PATH": "/usr/bin:/bin"}, id="busybox env (no LC_*)")),
    *per_variant("argv_env", ("LC_CTYPE", "LANG"), env={"PATH": "/usr/bin:/bin"}),
    P(Case(img("busybox"), ("env",), env={}, id="busybox env (empty environment)")),
    # The umask is inherited from whoever starts the program.
    P(Case(img("bash"), ("-c", "umask; echo x > f"), umask=0o077, mvemu_notes=BASH_NOTES,
           id="bash -c umask (umask 077)")),
    P(Case(img("busybox"), ("touch", "f", "g"), umask=0o027, id="busybox touch (umask 027)")),
    P(Case(img("busybox"), ("mkdir", "-p", "a/b"), umask=0o000, id="busybox mkdir (umask 000)")),
    # Regressions. glibc's locale/gconv start-up wakes a futex (FUTEX_WAKE_PRIVATE): with futex
    # missing, glibc aborted ("The futex facility returned an unexpected error code."). It also maps
    # gconv-modules.cache MAP_SHARED read-only, which once made mvemu write it back at exit (EBADF).
    P(Case(img("bash"), ("-c", "echo $((6*7))"), env={**BASE_ENV, "LC_ALL": "C.UTF-8"}, mvemu_notes=BASH_NOTES,
           id="bash -c ... LC_ALL=C.UTF-8")),
    # bash's isnetconn() calls getpeername(0): ENOTSOCK natively; an ENOSYS made bash take stdin for a
    # network connection and source ~/.bashrc for a non-interactive `bash -c`.
    P(Case(img("bash"), ("-c", "echo body"), env={**BASE_ENV, "HOME": "{work}"}, files={".bashrc": b"echo BASHRC\n"},
           mvemu_notes=BASH_NOTES, id="bash -c ... HOME with .bashrc")),
]

ALL_CASES = IMAGE_CASES + BUSYBOX_CASES + PROCESS_CASES + BASH_CASES + ENV_AND_REGRESSION_CASES


@pytest.mark.parametrize("case", ALL_CASES)
def test_differential(case, differ):
    differ(case)


def test_every_image_is_covered(images):
    """Every program in guest_images/build (all variants) has at least one differential case."""
    built = {p.name for p in images.iterdir() if p.is_file() and os.access(p, os.X_OK)}
    # Programs that need the HVM (/dev/hvm) have no native twin; tests/test_hvm_ros.py covers them.
    built -= {b for b in built if b.startswith("hvm_client.")}
    covered = {os.path.basename(p.values[0].prog) for p in ALL_CASES}
    expected = {f"{n}.{v}" for n in {b.split(".")[0] for b in built if "." in b} for v in variants_of(n)}
    assert built - covered == set(), f"guest images without a differential case: {sorted(built - covered)}"
    assert expected <= built, f"variants missing from the build: {sorted(expected - built)}"
    assert set(THIRD_PARTY) <= covered


def test_fork_exec_is_reliable(differ):
    """A five-command pipeline fifteen times in a row; each run must match native Linux. (A thread
    preempted on its way into ring 3 after execve once took another's kernel-stack iret frame: about
    a third of the runs of this pipeline failed.)"""
    case = Case(img("busybox"), ("sh", "-c", f"{BB} cat in.txt | {BB} sort | {BB} uniq -c | {BB} sort -rn | "
                                             f"{BB} head -n 3"), files=FILES)
    for _ in range(15):
        differ(case)


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_threads_repeatedly(variant, differ):
    """pthreads under the ROS scheduler (time slices, futex queues, preemption) twenty times in a row:
    the interleaving varies with host timing, the results must not."""
    case = Case(img(f"threads.{variant}"), ("4",))
    for _ in range(20):
        differ(case)
