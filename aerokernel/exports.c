/* AeroKernel functions exported to programs and to the VMM: ordinary global symbols, found by
 * name in the image's ELF symbol table and called on an HRT vCPU (HVM_WORK_CALL, or directly
 * from HRT code in the accelerator model). Signature: long f(long). */
#include "kernel.h"
#include "x86.h"

long aerokernel_add(long x)
{
    return x + 0x1000;
}

long aerokernel_read_cr0(long unused)
{
    (void)unused;
    return (long)read_cr0();
}
