/* Spin locks. The VMM interleaves HRT vCPUs (deterministic mode) so a waiter spins until the
 * holder's vCPU runs again; there are no interrupts on HRT vCPUs, hence nothing to mask. */
#include "cpu.h"
#include "kernel.h"
#include "spinlock.h"

void spin_lock(struct spinlock *l)
{
    int me = this_cpu_id() + 1;             /* 0 before TR is loaded: no self-deadlock check */
    if (me && l->locked && l->owner == me)
        panic("spinlock %s: already held by this cpu", l->name);
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
        while (l->locked)
            cpu_relax();
    l->owner = me;
}

void spin_unlock(struct spinlock *l)
{
    l->owner = 0;
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

int spin_holding(struct spinlock *l)
{
    int me = this_cpu_id() + 1;
    return me && l->locked && l->owner == me;
}
