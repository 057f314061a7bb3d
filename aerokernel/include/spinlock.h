/* Spin locks between HRT vCPUs (the VMM interleaves them; there are no interrupts to mask). */
#ifndef AK_SPINLOCK_H
#define AK_SPINLOCK_H

struct spinlock {
    volatile int locked;
    int owner;              /* cpu id + 1 of the holder, 0 if free or unknown */
    const char *name;
};

#define SPINLOCK_INIT(n) { 0, 0, (n) }

void spin_lock(struct spinlock *l);      /* panics on a self-deadlock (the holder is this CPU) */
void spin_unlock(struct spinlock *l);
int spin_holding(struct spinlock *l);    /* held by this CPU? */

#endif
