#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gio/gio.h>

#include <crtfs/bufpool.h>

/* Buffer layout.
 *
 * Every buffer is one slot:
 *
 *   [ context, context_stride bytes ][ BufHeader, 64 bytes ][ data, data_stride bytes ]
 *
 * The header sits immediately before the data so that the data pointer handed
 * to callers finds its header by subtracting a constant, whatever the pool's
 * context size: crt_bufpool_of() needs no pool to start from.  Slots start on a
 * 64-byte boundary and every part is a multiple of 64 bytes, so headers never
 * share a cache line with another buffer's data and both the context and the
 * data are 64-byte aligned (more than the 16 bytes callers may rely on).
 *
 * The `count` preallocated slots are carved out of one block allocated at
 * creation, so get and put never allocate; only look-aside extras have a
 * block (a slot) each, which put releases again. */

#define BUF_ALIGN 64u
#define BUF_HEADER_SIZE 64u

/* A buffer's state, kept in the header so that a double put is caught.  The
 * values are unlikely bit patterns so that a stray pointer is caught too. */
#define BUF_MAGIC_FREE 0x6672ee42u
#define BUF_MAGIC_HANDED_OUT 0x6f75742bu

typedef struct BufHeader BufHeader;

struct BufHeader {
    /* Set when the slot is laid out, read-only afterwards. */
    CrtBufPool *pool;
    void *context; /* NULL when the pool has no context area */
    gboolean extra;

    guint32 magic;         /* BUF_MAGIC_*; pool->lock */
    BufHeader *free_next;  /* free-list link; pool->lock */
    BufHeader *extra_prev; /* live look-aside list links; pool->lock */
    BufHeader *extra_next;
};

G_STATIC_ASSERT(sizeof(BufHeader) <= BUF_HEADER_SIZE);

struct CrtBufPool {
    /* Set by crt_bufpool_new(), read-only afterwards. */
    CrtMemory memory;
    gboolean lookaside;
    size_t context_stride; /* context_size rounded up to BUF_ALIGN */
    size_t data_stride;    /* size rounded up to BUF_ALIGN */
    size_t footprint;      /* bytes per slot */
    size_t extra_len;      /* bytes allocated per look-aside slot */
    void *block;           /* the preallocated slots, NULL when count is 0 */
    size_t block_len;

    /* The one lock of the pool; nothing else is taken while it is held. */
    GMutex lock;
    BufHeader *free_list;  /* stack of free preallocated buffers; lock */
    BufHeader *extras;     /* look-aside buffers handed out; lock */
    CrtBufPoolStats stats; /* lock */
};

static size_t round_up(size_t n, size_t align)
{
    return (n + align - 1) & ~(align - 1);
}

static BufHeader *header_of(void *buffer)
{
    return (BufHeader *)((char *)buffer - BUF_HEADER_SIZE);
}

static void *data_of(BufHeader *header)
{
    return (char *)header + BUF_HEADER_SIZE;
}

/* Reports a creation failure both ways the caller may want it: as a GError
 * with words and as a plain errno for code that maps it onto a return value. */
static void set_error(int err, int *errno_out, GError **error, const char *format, ...)
    G_GNUC_PRINTF(4, 5);

static void set_error(int err, int *errno_out, GError **error, const char *format, ...)
{
    va_list args;
    char *message;

    va_start(args, format);
    message = g_strdup_vprintf(format, args);
    va_end(args);
    g_set_error_literal(error, G_IO_ERROR, g_io_error_from_errno(err), message);
    g_free(message);
    if (errno_out != NULL)
        *errno_out = err;
}

/* Checks the arguments and computes the slot layout.  The per-argument limits
 * keep every stride far from overflowing, so only the total needs a checked
 * multiplication. */
static int layout_pool(CrtBufPool *pool, guint count, size_t size, size_t context_size,
                       int *errno_out, GError **error)
{
    size_t total;

    if (size > CRT_BUFPOOL_MAX_SIZE) {
        set_error(EINVAL, errno_out, error,
                  "buffer size %zu is larger than the maximum of %zu bytes", size,
                  CRT_BUFPOOL_MAX_SIZE);
        return -EINVAL;
    }
    if (context_size > CRT_BUFPOOL_MAX_SIZE) {
        set_error(EINVAL, errno_out, error,
                  "buffer context size %zu is larger than the maximum of %zu bytes",
                  context_size, CRT_BUFPOOL_MAX_SIZE);
        return -EINVAL;
    }
    if (count > CRT_BUFPOOL_MAX_COUNT) {
        set_error(EINVAL, errno_out, error,
                  "buffer count %u is larger than the maximum of %u", count,
                  CRT_BUFPOOL_MAX_COUNT);
        return -EINVAL;
    }
    if (count == 0 && !pool->lookaside) {
        set_error(EINVAL, errno_out, error,
                  "buffer count 0 is only allowed in look-aside mode");
        return -EINVAL;
    }

    pool->context_stride = round_up(context_size, BUF_ALIGN);
    pool->data_stride = round_up(size, BUF_ALIGN);
    pool->footprint = pool->context_stride + BUF_HEADER_SIZE + pool->data_stride;
    if (!g_size_checked_mul(&total, count, pool->footprint) ||
        total > CRT_BUFPOOL_MAX_TOTAL) {
        set_error(EINVAL, errno_out, error,
                  "%u buffers of %zu bytes (%zu with header and context) need more "
                  "than the maximum of %zu bytes",
                  count, size, pool->footprint, CRT_BUFPOOL_MAX_TOTAL);
        return -EINVAL;
    }
    pool->block_len = total;
    return 0;
}

/* Locks `len` bytes at `addr` in RAM, or explains why the kernel refused: the
 * usual cause is RLIMIT_MEMLOCK, which the message names with its value so
 * that the administrator knows what to raise. */
static int lock_memory(void *addr, size_t len, int *errno_out, GError **error)
{
    struct rlimit limit;
    char *limit_text;
    int err;

    /* The sanitizers replace mlock() with a no-op that always succeeds, which
     * would hide exactly the refusal this function exists to report; asking the
     * kernel directly keeps sanitizer builds honest. */
    if (syscall(SYS_mlock, addr, len) == 0)
        return 0;
    err = errno;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0)
        limit_text = g_strdup("unknown");
    else if (limit.rlim_cur == RLIM_INFINITY)
        limit_text = g_strdup("unlimited");
    else
        limit_text = g_strdup_printf("%llu bytes", (unsigned long long)limit.rlim_cur);
    set_error(err, errno_out, error,
              "cannot lock %zu bytes of buffer memory in RAM: %s (RLIMIT_MEMLOCK soft "
              "limit is %s; raise it, e.g. with ulimit -l or LimitMEMLOCK=, or use "
              "normal memory)",
              len, g_strerror(err), limit_text);
    g_free(limit_text);
    return -err;
}

/* Allocates `len` zeroed bytes aligned to BUF_ALIGN.  Locked memory gets its
 * own mapping: mlock() works on whole pages and does not nest, so locked
 * memory must never share a page with memory that is unlocked independently. */
static void *alloc_memory(CrtMemory memory, size_t len, int *errno_out, GError **error)
{
    void *mem;
    int err;

    if (memory == CRT_MEMORY_LOCKED) {
        mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            err = errno;
            set_error(err, errno_out, error, "cannot map %zu bytes of buffer memory: %s",
                      len, g_strerror(err));
            return NULL;
        }
        if (lock_memory(mem, len, errno_out, error) < 0) {
            munmap(mem, len);
            return NULL;
        }
        return mem;
    }
    err = posix_memalign(&mem, BUF_ALIGN, len);
    if (err != 0) {
        set_error(err, errno_out, error, "cannot allocate %zu bytes of buffer memory: %s",
                  len, g_strerror(err));
        return NULL;
    }
    /* Zeroing touches every page now rather than on the first I/O, and keeps
     * the contents of a fresh buffer defined. */
    memset(mem, 0, len);
    return mem;
}

static void free_memory(CrtMemory memory, void *mem, size_t len)
{
    if (memory == CRT_MEMORY_LOCKED)
        munmap(mem, len); /* also unlocks */
    else
        free(mem);
}

/* Writes the header of the slot starting at `slot` and returns it. */
static BufHeader *init_slot(CrtBufPool *pool, char *slot, gboolean extra)
{
    BufHeader *header = (BufHeader *)(slot + pool->context_stride);

    header->pool = pool;
    header->context = pool->stats.context_size > 0 ? slot : NULL;
    header->extra = extra;
    header->magic = BUF_MAGIC_FREE;
    header->free_next = NULL;
    header->extra_prev = NULL;
    header->extra_next = NULL;
    return header;
}

int crt_bufpool_check(guint count, size_t size, size_t context_size, gboolean lookaside,
                      GError **error)
{
    CrtBufPool probe = {.lookaside = lookaside};

    return layout_pool(&probe, count, size, context_size, NULL, error);
}

CrtBufPool *crt_bufpool_new(guint count, size_t size, size_t context_size,
                            gboolean lookaside, CrtMemory memory, int *errno_out,
                            GError **error)
{
    CrtBufPool *pool;
    long page_size = sysconf(_SC_PAGESIZE);

    g_return_val_if_fail(memory == CRT_MEMORY_NORMAL || memory == CRT_MEMORY_LOCKED,
                         NULL);
    g_return_val_if_fail(error == NULL || *error == NULL, NULL);

    pool = g_new0(CrtBufPool, 1);
    pool->memory = memory;
    pool->lookaside = lookaside;
    pool->stats.count = count;
    pool->stats.size = size;
    pool->stats.context_size = context_size;
    if (layout_pool(pool, count, size, context_size, errno_out, error) < 0) {
        g_free(pool);
        return NULL;
    }
    pool->extra_len = pool->footprint;
    if (memory == CRT_MEMORY_LOCKED && page_size > 0)
        pool->extra_len = round_up(pool->footprint, (size_t)page_size);

    if (count > 0) {
        pool->block = alloc_memory(memory, pool->block_len, errno_out, error);
        if (pool->block == NULL) {
            g_free(pool);
            return NULL;
        }
    }
    /* Push in reverse so that the first get returns the first slot; nothing
     * depends on it, but it keeps a fresh pool's behaviour easy to follow. */
    for (guint i = count; i > 0; i--) {
        BufHeader *header = init_slot(
            pool, (char *)pool->block + (size_t)(i - 1) * pool->footprint, FALSE);
        header->free_next = pool->free_list;
        pool->free_list = header;
    }
    pool->stats.free = count;
    g_mutex_init(&pool->lock);
    return pool;
}

void crt_bufpool_free(CrtBufPool *pool)
{
    BufHeader *header;
    BufHeader *next;

    if (pool == NULL)
        return;
    /* Extras still handed out are released here too: the caller may not use
     * them any more, and nobody else knows where they are. */
    for (header = pool->extras; header != NULL; header = next) {
        next = header->extra_next;
        free_memory(pool->memory, (char *)header - pool->context_stride, pool->extra_len);
    }
    if (pool->block != NULL)
        free_memory(pool->memory, pool->block, pool->block_len);
    g_mutex_clear(&pool->lock);
    g_free(pool);
}

/* Marks a buffer handed out and counts it; called with pool->lock held. */
static void *hand_out_unlocked(CrtBufPool *pool, BufHeader *header)
{
    header->magic = BUF_MAGIC_HANDED_OUT;
    pool->stats.gets++;
    pool->stats.in_use++;
    if (pool->stats.in_use > pool->stats.peak_in_use)
        pool->stats.peak_in_use = pool->stats.in_use;
    return data_of(header);
}

/* Allocates a look-aside buffer.  Called without the lock so that other
 * threads keep getting and putting while the allocation (and, for locked
 * memory, the mmap and mlock) runs. */
static BufHeader *alloc_extra(CrtBufPool *pool)
{
    void *slot;

    /* A failure is reported to the caller as a NULL buffer, which it must
     * handle anyway; the words would have nowhere to go. */
    slot = alloc_memory(pool->memory, pool->extra_len, NULL, NULL);
    if (slot == NULL)
        return NULL;
    return init_slot(pool, slot, TRUE);
}

void *crt_bufpool_get(CrtBufPool *pool)
{
    BufHeader *header;
    void *data;

    g_return_val_if_fail(pool != NULL, NULL);

    g_mutex_lock(&pool->lock);
    header = pool->free_list;
    if (header != NULL) {
        pool->free_list = header->free_next;
        header->free_next = NULL;
        pool->stats.free--;
        data = hand_out_unlocked(pool, header);
        g_mutex_unlock(&pool->lock);
        return data;
    }
    /* Look-aside grows on demand, but not without bound: a consumer that
     * keeps every buffer must meet an empty pool some time. */
    if (!pool->lookaside || pool->stats.count + pool->stats.extra >=
                                CRT_BUFPOOL_LOOKASIDE_LIMIT(pool->stats.count)) {
        pool->stats.empty_gets++;
        g_mutex_unlock(&pool->lock);
        return NULL;
    }
    g_mutex_unlock(&pool->lock);

    header = alloc_extra(pool);

    g_mutex_lock(&pool->lock);
    if (header == NULL) {
        pool->stats.empty_gets++;
        g_mutex_unlock(&pool->lock);
        return NULL;
    }
    header->extra_next = pool->extras;
    if (pool->extras != NULL)
        pool->extras->extra_prev = header;
    pool->extras = header;
    pool->stats.extra++;
    pool->stats.extra_allocs++;
    data = hand_out_unlocked(pool, header);
    g_mutex_unlock(&pool->lock);
    return data;
}

/* Takes an extra buffer off the live list; called with pool->lock held. */
static void unlink_extra_unlocked(CrtBufPool *pool, BufHeader *header)
{
    if (header->extra_prev != NULL)
        header->extra_prev->extra_next = header->extra_next;
    else
        pool->extras = header->extra_next;
    if (header->extra_next != NULL)
        header->extra_next->extra_prev = header->extra_prev;
    pool->stats.extra--;
}

void crt_bufpool_put(CrtBufPool *pool, void *buffer)
{
    BufHeader *header;

    g_return_if_fail(pool != NULL);
    g_return_if_fail(buffer != NULL);
    header = header_of(buffer);
    /* The pool pointer is read-only, so it can be checked before locking. */
    g_return_if_fail(header->pool == pool);

    g_mutex_lock(&pool->lock);
    if (header->magic != BUF_MAGIC_HANDED_OUT) {
        g_mutex_unlock(&pool->lock);
        g_return_if_fail_warning(G_LOG_DOMAIN, G_STRFUNC,
                                 "buffer is handed out (not put twice)");
        return;
    }
    header->magic = BUF_MAGIC_FREE;
    pool->stats.puts++;
    pool->stats.in_use--;
    if (header->extra) {
        unlink_extra_unlocked(pool, header);
        g_mutex_unlock(&pool->lock);
        free_memory(pool->memory, (char *)header - pool->context_stride, pool->extra_len);
        return;
    }
    header->free_next = pool->free_list;
    pool->free_list = header;
    pool->stats.free++;
    g_mutex_unlock(&pool->lock);
}

CrtBufPool *crt_bufpool_of(void *buffer)
{
    g_return_val_if_fail(buffer != NULL, NULL);
    return header_of(buffer)->pool;
}

void *crt_bufpool_context(void *buffer)
{
    g_return_val_if_fail(buffer != NULL, NULL);
    return header_of(buffer)->context;
}

size_t crt_bufpool_buffer_size(CrtBufPool *pool)
{
    g_return_val_if_fail(pool != NULL, 0);
    return pool->stats.size; /* read-only after creation */
}

guint crt_bufpool_free_count(CrtBufPool *pool)
{
    guint n;

    g_return_val_if_fail(pool != NULL, 0);
    g_mutex_lock(&pool->lock);
    n = pool->stats.free;
    g_mutex_unlock(&pool->lock);
    return n;
}

void crt_bufpool_get_stats(CrtBufPool *pool, CrtBufPoolStats *stats)
{
    g_return_if_fail(pool != NULL);
    g_return_if_fail(stats != NULL);
    g_mutex_lock(&pool->lock);
    *stats = pool->stats;
    g_mutex_unlock(&pool->lock);
}

int crt_memory_from_string(const char *s, CrtMemory *out)
{
    g_return_val_if_fail(out != NULL, -EINVAL);
    if (s == NULL)
        return -EINVAL;
    if (strcmp(s, "normal") == 0)
        *out = CRT_MEMORY_NORMAL;
    else if (strcmp(s, "locked") == 0)
        *out = CRT_MEMORY_LOCKED;
    else
        return -EINVAL;
    return 0;
}

const char *crt_memory_to_string(CrtMemory memory)
{
    switch (memory) {
    case CRT_MEMORY_NORMAL:
        return "normal";
    case CRT_MEMORY_LOCKED:
        return "locked";
    }
    return "unknown";
}
