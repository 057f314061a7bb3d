/* The Multiverse runtime: guest code that `mvemu hybridize` adds to a program (docs/hybridize.md).
 *
 * It runs in ring 3 as ordinary program code, called by the program's own libc in place of main
 * (libc is initialised: TLS, stdio, atexit), but it uses no libc itself: raw system calls only
 * (syscall.h). It is linked at address 0 and must work wherever the toolchain puts it, so every
 * symbol is hidden (all references are RIP-relative) and it has no writable data: it is loaded in
 * the fat binary's read-only, executable segment. The build checks both. */
#ifndef MV_RUNTIME_H
#define MV_RUNTIME_H

#pragma GCC visibility push(hidden)

#include "hvm_abi.h"

/* Filled in by the toolchain in the output file: read it through mv_config_get() only. */
extern const struct mv_config mv_config;

/* The address of mv_config, hidden from the optimiser: the values the compiler saw are not the
 * ones in the fat binary, so it must not fold them. */
static inline const struct mv_config *mv_config_get(void)
{
    const struct mv_config *cfg = &mv_config;
    __asm__("" : "+r"(cfg));
    return cfg;
}

/* What __libc_start_main calls instead of main. */
int mv_main(int argc, char **argv, char **envp);

/* Split execution (hybrid.c): run main in the HRT. Returns 0 when main ran there, with its result
 * in *status; anything else means "not possible here": the caller runs main in the ROS. */
int mv_hybrid_main(const struct mv_config *cfg, int hvm_fd, int argc, char **argv, char **envp,
                   int *status);

#endif
