/* crtfs - buffer pool (the seed's DMF_BufferPool child).
 *
 * A pool owns `count` buffers of `size` bytes, each with a client context
 * area of `context_size` bytes.  Buffers are handed out as pointers to their
 * data; the context and the owning pool are found from that pointer.
 *
 * In look-aside mode the pool grows on demand: a get on an empty pool
 * allocates an extra buffer (up to CRT_BUFPOOL_LOOKASIDE_LIMIT in all), and
 * an extra buffer is freed when it is put back.  The `count` preallocated buffers are
 * never freed before the pool.
 *
 * Memory kind CRT_MEMORY_LOCKED keeps every buffer resident with mlock(2);
 * creation fails with a clear error when RLIMIT_MEMLOCK refuses.
 *
 * Threads: every function is thread-safe (one mutex per pool).  Nothing
 * blocks except on that mutex.
 */
#ifndef CRTFS_BUFPOOL_H
#define CRTFS_BUFPOOL_H

#include <glib.h>

#include <crtfs/export.h>
#include <stddef.h>

G_BEGIN_DECLS

typedef enum {
    CRT_MEMORY_NORMAL = 0,
    CRT_MEMORY_LOCKED,
} CrtMemory;

typedef struct CrtBufPool CrtBufPool;

typedef struct {
    guint count;          /* preallocated buffers */
    guint free;           /* buffers in the pool now */
    guint in_use;         /* buffers handed out (preallocated + extra) */
    guint peak_in_use;    /* highest in_use seen */
    guint extra;          /* look-aside buffers allocated and not yet freed */
    guint64 gets;         /* successful gets */
    guint64 puts;         /* puts */
    guint64 empty_gets;   /* gets that found the pool empty and returned NULL */
    guint64 extra_allocs; /* look-aside allocations ever made */
    size_t size;          /* data bytes per buffer */
    size_t context_size;  /* context bytes per buffer */
} CrtBufPoolStats;

/* Largest size, context size and count a pool accepts; larger ones fail with
 * -EINVAL (and the total is checked against overflow). */
#define CRT_BUFPOOL_MAX_SIZE ((size_t)1 << 30)
#define CRT_BUFPOOL_MAX_COUNT 65536u
#define CRT_BUFPOOL_MAX_TOTAL ((size_t)4 << 30)
/* A look-aside pool holds at most this many buffers in all (preallocated
 * and extra): 8 times its count, and at least 64. */
#define CRT_BUFPOOL_LOOKASIDE_LIMIT(count) MAX(8u * (count), 64u)

/* Create a pool.  `count` may be 0 only in look-aside mode.  `size` may be 0
 * (then buffers carry only a context).  On error returns NULL and sets
 * `error` (G_IO_ERROR domain, with the errno's GIOErrorEnum code) and, if
 * `errno_out` is not NULL, *errno_out to the positive errno. */
CRT_API CrtBufPool *crt_bufpool_new(guint count, size_t size, size_t context_size,
                                    gboolean lookaside, CrtMemory memory, int *errno_out,
                                    GError **error);

/* The argument checks of crt_bufpool_new() without creating anything:
 * 0, or -EINVAL with `error` naming the value. */
CRT_API int crt_bufpool_check(guint count, size_t size, size_t context_size,
                              gboolean lookaside, GError **error);

/* Free the pool and every buffer in it.  Buffers still handed out must not
 * be used or put afterwards (a programmer error). */
CRT_API void crt_bufpool_free(CrtBufPool *pool);

/* Take a buffer (its data pointer), or NULL when the pool is empty and not
 * in look-aside mode (or an extra allocation failed).  The caller owns the
 * buffer until it puts it back.  Buffer contents are left as they were. */
CRT_API void *crt_bufpool_get(CrtBufPool *pool);

/* Return a buffer taken from this pool.  Extra look-aside buffers are freed.
 * Putting a buffer twice or into another pool is a programmer error (checked
 * with g_return_if_fail where cheap). */
CRT_API void crt_bufpool_put(CrtBufPool *pool, void *buffer);

/* The pool a buffer belongs to, its context area (NULL when context_size is
 * 0), and its data size.  Valid while the buffer is handed out. */
CRT_API CrtBufPool *crt_bufpool_of(void *buffer);
CRT_API void *crt_bufpool_context(void *buffer);
CRT_API size_t crt_bufpool_buffer_size(CrtBufPool *pool);

/* Number of buffers in the pool now (not handed out). */
CRT_API guint crt_bufpool_free_count(CrtBufPool *pool);

CRT_API void crt_bufpool_get_stats(CrtBufPool *pool, CrtBufPoolStats *stats);

/* Parse "normal" or "locked"; returns 0 or -EINVAL. */
CRT_API int crt_memory_from_string(const char *s, CrtMemory *out);
CRT_API const char *crt_memory_to_string(CrtMemory memory);

G_END_DECLS

#endif
