/* crtfs bench - heap allocation counting by interposition (see
 * malloc-count.h).
 *
 * Nothing here may allocate, take a lock or call into GLib on the counting
 * path: these functions run before main(), inside the dynamic linker, and
 * under every lock of every library in the process.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <glib.h>

#include "malloc-count.h"

/* glibc's allocator under its internal names (exported since 2.2.5). */
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

/* Static storage is zero before any constructor runs, so counting works
 * from the first allocation the dynamic linker makes for us. */
static atomic_uint_fast64_t allocs;
static atomic_uint_fast64_t frees;

static inline void count_alloc(void)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
}

static inline void count_free(void)
{
    atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
}

void *malloc(size_t size)
{
    count_alloc();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    count_alloc();
    return __libc_calloc(n, size);
}

/* realloc(p, 0) frees p in glibc; every other call may allocate, and a
 * reallocation in a steady state is exactly what we want to see. */
void *realloc(void *p, size_t size)
{
    if (p && size == 0)
        count_free();
    else
        count_alloc();
    return __libc_realloc(p, size);
}

void free(void *p)
{
    if (p)
        count_free();
    __libc_free(p);
}

void *memalign(size_t alignment, size_t size)
{
    count_alloc();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    count_alloc();
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size)
{
    count_alloc();
    return __libc_valloc(size);
}

void *pvalloc(size_t size)
{
    count_alloc();
    return __libc_pvalloc(size);
}

/* glibc exports no __libc_posix_memalign, so the argument checks it would
 * make are repeated here before forwarding to memalign. */
int posix_memalign(void **out, size_t alignment, size_t size)
{
    void *p;

    if (alignment == 0 || alignment % sizeof(void *) != 0 ||
        (alignment & (alignment - 1)) != 0)
        return EINVAL;
    count_alloc();
    p = __libc_memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

uint64_t malloc_count_allocs(void)
{
    return atomic_load_explicit(&allocs, memory_order_relaxed);
}

uint64_t malloc_count_frees(void)
{
    return atomic_load_explicit(&frees, memory_order_relaxed);
}

/* g_malloc lives in another library, so the compiler cannot elide the
 * pair the way it may elide malloc/free written here. */
bool malloc_count_active(void)
{
    uint64_t before = malloc_count_allocs();

    g_free(g_malloc(16));
    return malloc_count_allocs() != before;
}
