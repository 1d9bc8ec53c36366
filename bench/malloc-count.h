/* crtfs bench - counting the process's heap allocations.
 *
 * malloc-count.c defines malloc, calloc, realloc, free and the memalign
 * family in the benchmark binary itself.  The dynamic linker then resolves
 * every caller in the process to these definitions (GLib, glibc's own
 * strdup, the engine library), and each one counts and forwards to glibc's
 * allocator through its __libc_* entry points.  Forwarding that way instead
 * of through dlsym(RTLD_NEXT) avoids the recursion dlsym's own allocations
 * would cause.
 *
 * The counters are process-wide, lock-free and relaxed: a reader sees every
 * allocation made before it by the same thread, and those of other threads
 * within a moment.  A window of the form "snapshot, run, snapshot" therefore
 * counts what the whole process allocated meanwhile.
 *
 * A build with AddressSanitizer replaces malloc itself; the counters then
 * stay at 0 and malloc_count_active() says so.
 */
#ifndef CRTFS_BENCH_MALLOC_COUNT_H
#define CRTFS_BENCH_MALLOC_COUNT_H

#include <stdbool.h>
#include <stdint.h>

/* Allocations since the process started: malloc, calloc, the memalign
 * family, and realloc calls that (re)allocate (realloc(p, 0) counts as a
 * free).  Any thread. */
uint64_t malloc_count_allocs(void);

/* free() calls of non-NULL pointers and realloc(p, 0), since start.  Any
 * thread. */
uint64_t malloc_count_frees(void);

/* Whether the interposition is in effect: an allocation made through
 * GLib's g_malloc() is seen.  Any thread. */
bool malloc_count_active(void);

#endif
