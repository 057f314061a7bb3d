/* A runtime target for function overrides that calls the original: the example of
 * docs/overrides.md and the tests' check of the `$orig` argument mapping.
 *
 *   [[override]]
 *   function = "scaled"                        # long scaled(long x, long scale, long offset)
 *   target = "runtime:mv_demo_apply3"
 *   args = ["$orig", "a0", "a2", "a1"]         # in the HRT: scaled(x, offset, scale)
 *
 * `orig` is the override's trampoline: it runs the original function (its first instructions,
 * moved, then the rest in place), so a runtime target can wrap the legacy function rather than
 * replace it, as mv_pthread_create does with pthread_create. */
#include "runtime.h"

typedef long orig3_fn(long, long, long);

long mv_demo_apply3(orig3_fn *orig, long a, long b, long c)
{
    return orig(a, b, c);
}
