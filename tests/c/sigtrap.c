/* sigtrap: int3 under a SIGTRAP handler: the saved RIP is the address after the int3 (as Linux
 * reports it), si_code is SI_KERNEL, and execution resumes right there. */
#define _GNU_SOURCE
#include "testlib.h"

#include <signal.h>
#include <ucontext.h>

static volatile int hits;
static volatile long saved_rip, code;
extern char after_int3[];

static void on_trap(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    hits++;
    code = si->si_code;
    saved_rip = ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, NULL);
    __asm__ volatile("int3\n.globl after_int3\nafter_int3: nop");
    printf("hits %d, rip after int3 %s, si_code %s\n", hits, saved_rip == (long)after_int3 ? "yes" : "no",
           code == 0x80 ? "SI_KERNEL" : "other");
    return 0;
}
