#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include <crtfs/bufpool.h>

/* How long each stress thread runs, and the operations it makes however slow
 * the machine is (under valgrind, say).  Nothing is asserted about time. */
#define STRESS_USEC G_USEC_PER_SEC
#define STRESS_MIN_OPS 2000

static CrtBufPool *new_pool(guint count, size_t size, size_t context_size,
                            gboolean lookaside, CrtMemory memory)
{
    GError *error = NULL;
    int err = 0;
    CrtBufPool *pool;

    pool = crt_bufpool_new(count, size, context_size, lookaside, memory, &err, &error);
    g_assert_no_error(error);
    g_assert_cmpint(err, ==, 0);
    g_assert_nonnull(pool);
    return pool;
}

/* Creating the pool must fail with EINVAL and a message naming `value`. */
static void assert_invalid(guint count, size_t size, size_t context_size,
                           gboolean lookaside, const char *value)
{
    GError *error = NULL;
    int err = 0;

    g_assert_null(crt_bufpool_new(count, size, context_size, lookaside, CRT_MEMORY_NORMAL,
                                  &err, &error));
    g_assert_cmpint(err, ==, EINVAL);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    if (strstr(error->message, value) == NULL)
        g_error("message \"%s\" does not name %s", error->message, value);
    g_clear_error(&error);

    /* Neither out-parameter is required. */
    g_assert_null(crt_bufpool_new(count, size, context_size, lookaside, CRT_MEMORY_NORMAL,
                                  NULL, NULL));
}

static void test_memory_strings(void)
{
    CrtMemory memory = CRT_MEMORY_LOCKED;

    g_assert_cmpint(crt_memory_from_string("normal", &memory), ==, 0);
    g_assert_cmpint(memory, ==, CRT_MEMORY_NORMAL);
    g_assert_cmpint(crt_memory_from_string("locked", &memory), ==, 0);
    g_assert_cmpint(memory, ==, CRT_MEMORY_LOCKED);
    g_assert_cmpint(crt_memory_from_string("pinned", &memory), ==, -EINVAL);
    g_assert_cmpint(crt_memory_from_string("", &memory), ==, -EINVAL);
    g_assert_cmpint(crt_memory_from_string(NULL, &memory), ==, -EINVAL);
    g_assert_cmpint(memory, ==, CRT_MEMORY_LOCKED);
    g_assert_cmpstr(crt_memory_to_string(CRT_MEMORY_NORMAL), ==, "normal");
    g_assert_cmpstr(crt_memory_to_string(CRT_MEMORY_LOCKED), ==, "locked");
}

static void test_get_until_empty(void)
{
    CrtBufPool *pool = new_pool(4, 100, 0, FALSE, CRT_MEMORY_NORMAL);
    CrtBufPoolStats stats;
    void *held[4];

    g_assert_cmpuint(crt_bufpool_free_count(pool), ==, 4);
    g_assert_cmpuint(crt_bufpool_buffer_size(pool), ==, 100);
    for (guint i = 0; i < 4; i++) {
        held[i] = crt_bufpool_get(pool);
        g_assert_nonnull(held[i]);
        g_assert_true(crt_bufpool_of(held[i]) == pool);
        g_assert_null(crt_bufpool_context(held[i]));
        for (guint j = 0; j < i; j++)
            g_assert_true(held[i] != held[j]);
        memset(held[i], 0x5a, 100);
    }
    g_assert_null(crt_bufpool_get(pool));
    g_assert_null(crt_bufpool_get(pool));

    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.count, ==, 4);
    g_assert_cmpuint(stats.free, ==, 0);
    g_assert_cmpuint(stats.in_use, ==, 4);
    g_assert_cmpuint(stats.peak_in_use, ==, 4);
    g_assert_cmpuint(stats.extra, ==, 0);
    g_assert_cmpuint(stats.gets, ==, 4);
    g_assert_cmpuint(stats.puts, ==, 0);
    g_assert_cmpuint(stats.empty_gets, ==, 2);
    g_assert_cmpuint(stats.extra_allocs, ==, 0);
    g_assert_cmpuint(stats.size, ==, 100);
    g_assert_cmpuint(stats.context_size, ==, 0);

    crt_bufpool_put(pool, held[2]);
    g_assert_cmpuint(crt_bufpool_free_count(pool), ==, 1);
    g_assert_true(crt_bufpool_get(pool) == held[2]);
    for (guint i = 0; i < 4; i++)
        crt_bufpool_put(pool, held[i]);

    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.free, ==, 4);
    g_assert_cmpuint(stats.in_use, ==, 0);
    g_assert_cmpuint(stats.peak_in_use, ==, 4);
    g_assert_cmpuint(stats.gets, ==, 5);
    g_assert_cmpuint(stats.puts, ==, 5);
    g_assert_cmpuint(stats.empty_gets, ==, 2);
    crt_bufpool_free(pool);
}

static void test_contents_kept(void)
{
    CrtBufPool *pool = new_pool(1, 64, 16, FALSE, CRT_MEMORY_NORMAL);
    guchar *data = crt_bufpool_get(pool);
    guchar *context = crt_bufpool_context(data);

    memset(data, 0xa5, 64);
    memset(context, 0x3c, 16);
    crt_bufpool_put(pool, data);
    g_assert_true(crt_bufpool_get(pool) == data);
    g_assert_true(crt_bufpool_context(data) == context);
    for (guint i = 0; i < 64; i++)
        g_assert_cmpuint(data[i], ==, 0xa5);
    for (guint i = 0; i < 16; i++)
        g_assert_cmpuint(context[i], ==, 0x3c);
    crt_bufpool_put(pool, data);
    crt_bufpool_free(pool);
}

/* Fills every data and context area completely with its own pattern, then
 * checks that none overwrote another: the areas are distinct and disjoint. */
static void test_context(void)
{
    enum { COUNT = 8, SIZE = 33, CONTEXT = 24 };
    CrtBufPool *pool = new_pool(COUNT, SIZE, CONTEXT, FALSE, CRT_MEMORY_NORMAL);
    guchar *data[COUNT];
    guchar *context[COUNT];

    for (guint i = 0; i < COUNT; i++) {
        data[i] = crt_bufpool_get(pool);
        g_assert_nonnull(data[i]);
        context[i] = crt_bufpool_context(data[i]);
        g_assert_nonnull(context[i]);
        g_assert_true(crt_bufpool_of(data[i]) == pool);
        for (guint j = 0; j < i; j++)
            g_assert_true(context[i] != context[j]);
        memset(data[i], (int)(2 * i), SIZE);
        memset(context[i], (int)(2 * i + 1), CONTEXT);
    }
    for (guint i = 0; i < COUNT; i++) {
        for (guint k = 0; k < SIZE; k++)
            g_assert_cmpuint(data[i][k], ==, 2 * i);
        for (guint k = 0; k < CONTEXT; k++)
            g_assert_cmpuint(context[i][k], ==, 2 * i + 1);
        /* The context belongs to the buffer, not to the caller's memory. */
        g_assert_true(crt_bufpool_context(data[i]) == context[i]);
        crt_bufpool_put(pool, data[i]);
    }
    crt_bufpool_free(pool);
}

static void test_alignment(void)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4095, 4096, 65537};

    for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
        for (guint c = 0; c < G_N_ELEMENTS(sizes); c++) {
            CrtBufPool *pool = new_pool(3, sizes[s], sizes[c], TRUE, CRT_MEMORY_NORMAL);
            void *held[5];

            /* Two of the five are look-aside extras with their own memory. */
            for (guint i = 0; i < 5; i++) {
                held[i] = crt_bufpool_get(pool);
                g_assert_nonnull(held[i]);
                g_assert_cmpuint((uintptr_t)held[i] % 16, ==, 0);
                if (sizes[c] > 0)
                    g_assert_cmpuint((uintptr_t)crt_bufpool_context(held[i]) % 16, ==, 0);
                else
                    g_assert_null(crt_bufpool_context(held[i]));
            }
            for (guint i = 0; i < 5; i++)
                crt_bufpool_put(pool, held[i]);
            crt_bufpool_free(pool);
        }
    }
}

static void test_size_zero(void)
{
    CrtBufPool *pool = new_pool(3, 0, 0, FALSE, CRT_MEMORY_NORMAL);
    void *held[3];

    g_assert_cmpuint(crt_bufpool_buffer_size(pool), ==, 0);
    for (guint i = 0; i < 3; i++) {
        held[i] = crt_bufpool_get(pool);
        g_assert_nonnull(held[i]);
        g_assert_null(crt_bufpool_context(held[i]));
        g_assert_true(crt_bufpool_of(held[i]) == pool);
        for (guint j = 0; j < i; j++)
            g_assert_true(held[i] != held[j]);
    }
    g_assert_null(crt_bufpool_get(pool));
    for (guint i = 0; i < 3; i++)
        crt_bufpool_put(pool, held[i]);
    g_assert_cmpuint(crt_bufpool_free_count(pool), ==, 3);
    crt_bufpool_free(pool);

    /* With a context, a zero-size buffer is a handle to its context. */
    pool = new_pool(2, 0, 8, FALSE, CRT_MEMORY_NORMAL);
    held[0] = crt_bufpool_get(pool);
    held[1] = crt_bufpool_get(pool);
    g_assert_true(crt_bufpool_context(held[0]) != crt_bufpool_context(held[1]));
    memset(crt_bufpool_context(held[0]), 1, 8);
    memset(crt_bufpool_context(held[1]), 2, 8);
    crt_bufpool_put(pool, held[0]);
    crt_bufpool_put(pool, held[1]);
    crt_bufpool_free(pool);
}

static void test_lookaside(void)
{
    enum { COUNT = 2, HELD = 10 };
    CrtBufPool *pool = new_pool(COUNT, 128, 16, TRUE, CRT_MEMORY_NORMAL);
    CrtBufPoolStats stats;
    void *held[HELD];

    for (guint i = 0; i < HELD; i++) {
        held[i] = crt_bufpool_get(pool);
        g_assert_nonnull(held[i]);
        g_assert_true(crt_bufpool_of(held[i]) == pool);
        memset(held[i], (int)i, 128);
        memset(crt_bufpool_context(held[i]), (int)i, 16);
    }
    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.free, ==, 0);
    g_assert_cmpuint(stats.in_use, ==, HELD);
    g_assert_cmpuint(stats.peak_in_use, ==, HELD);
    g_assert_cmpuint(stats.extra, ==, HELD - COUNT);
    g_assert_cmpuint(stats.extra_allocs, ==, HELD - COUNT);
    g_assert_cmpuint(stats.empty_gets, ==, 0);

    /* Extras go away as they come back; the pool shrinks back to `count`. */
    for (guint i = 0; i < HELD; i++)
        crt_bufpool_put(pool, held[i]);
    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.free, ==, COUNT);
    g_assert_cmpuint(stats.in_use, ==, 0);
    g_assert_cmpuint(stats.extra, ==, 0);
    g_assert_cmpuint(stats.extra_allocs, ==, HELD - COUNT);
    g_assert_cmpuint(stats.gets, ==, HELD);
    g_assert_cmpuint(stats.puts, ==, HELD);

    /* The preallocated buffers are used before any new extra. */
    for (guint i = 0; i < 3; i++)
        held[i] = crt_bufpool_get(pool);
    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.extra, ==, 1);
    g_assert_cmpuint(stats.extra_allocs, ==, HELD - COUNT + 1);
    for (guint i = 0; i < 3; i++)
        crt_bufpool_put(pool, held[i]);
    g_assert_cmpuint(crt_bufpool_free_count(pool), ==, COUNT);
    crt_bufpool_free(pool);
}

static void test_lookaside_count_zero(void)
{
    CrtBufPool *pool = new_pool(0, 32, 0, TRUE, CRT_MEMORY_NORMAL);
    CrtBufPoolStats stats;
    void *a = crt_bufpool_get(pool);
    void *b = crt_bufpool_get(pool);

    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_true(a != b);
    crt_bufpool_put(pool, a);
    crt_bufpool_put(pool, b);
    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.free, ==, 0);
    g_assert_cmpuint(stats.extra, ==, 0);
    g_assert_cmpuint(stats.extra_allocs, ==, 2);
    crt_bufpool_free(pool);
}

/* Freeing a pool with buffers still out releases them as well; the sanitizer
 * or valgrind run reports a leak otherwise. */
static void test_free_with_buffers_out(void)
{
    CrtBufPool *pool = new_pool(1, 256, 8, TRUE, CRT_MEMORY_NORMAL);

    for (guint i = 0; i < 4; i++)
        g_assert_nonnull(crt_bufpool_get(pool));
    crt_bufpool_free(pool);

    pool = new_pool(1, 256, 8, TRUE, CRT_MEMORY_LOCKED);
    for (guint i = 0; i < 4; i++)
        g_assert_nonnull(crt_bufpool_get(pool));
    crt_bufpool_free(pool);
}

static void test_double_put(void)
{
    CrtBufPool *pool = new_pool(2, 16, 0, TRUE, CRT_MEMORY_NORMAL);
    CrtBufPoolStats stats;
    void *buffer = crt_bufpool_get(pool);

    crt_bufpool_put(pool, buffer);
    g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*put twice*");
    crt_bufpool_put(pool, buffer);
    g_test_assert_expected_messages();

    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.puts, ==, 1);
    g_assert_cmpuint(stats.free, ==, 2);
    g_assert_cmpuint(stats.in_use, ==, 0);
    crt_bufpool_free(pool);
}

static void test_put_other_pool(void)
{
    CrtBufPool *a = new_pool(1, 16, 0, FALSE, CRT_MEMORY_NORMAL);
    CrtBufPool *b = new_pool(1, 16, 0, FALSE, CRT_MEMORY_NORMAL);
    void *buffer = crt_bufpool_get(a);

    g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*pool*");
    crt_bufpool_put(b, buffer);
    g_test_assert_expected_messages();
    g_assert_cmpuint(crt_bufpool_free_count(b), ==, 1);
    g_assert_cmpuint(crt_bufpool_free_count(a), ==, 0);
    crt_bufpool_put(a, buffer);
    crt_bufpool_free(a);
    crt_bufpool_free(b);
}

static void test_invalid(void)
{
    char *size_max = g_strdup_printf("%zu", SIZE_MAX);

    assert_invalid(0, 16, 0, FALSE, "count 0");
    assert_invalid(4, CRT_BUFPOOL_MAX_SIZE + 1, 0, FALSE, "1073741825");
    assert_invalid(4, 16, CRT_BUFPOOL_MAX_SIZE + 1, FALSE, "1073741825");
    assert_invalid(4, SIZE_MAX, 0, TRUE, size_max);
    assert_invalid(1, 16, SIZE_MAX, TRUE, size_max);
    assert_invalid(CRT_BUFPOOL_MAX_COUNT + 1, 16, 0, TRUE, "65537");
    assert_invalid(G_MAXUINT, 16, 0, TRUE, "4294967295");
    /* Each value is within its own limit, but the total is not. */
    assert_invalid(CRT_BUFPOOL_MAX_COUNT, CRT_BUFPOOL_MAX_SIZE, 0, FALSE, "65536");
    assert_invalid(8, CRT_BUFPOOL_MAX_SIZE, CRT_BUFPOOL_MAX_SIZE, TRUE, "1073741824");
    g_free(size_max);
}

static void test_locked(void)
{
    CrtBufPool *pool = new_pool(16, 4096, 32, TRUE, CRT_MEMORY_LOCKED);
    CrtBufPoolStats stats;
    void *held[20];

    for (guint i = 0; i < 20; i++) {
        held[i] = crt_bufpool_get(pool);
        g_assert_nonnull(held[i]);
        g_assert_true(crt_bufpool_of(held[i]) == pool);
        memset(held[i], (int)i, 4096);
        memset(crt_bufpool_context(held[i]), (int)i, 32);
    }
    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.extra, ==, 4);
    for (guint i = 0; i < 20; i++)
        crt_bufpool_put(pool, held[i]);
    crt_bufpool_get_stats(pool, &stats);
    g_assert_cmpuint(stats.free, ==, 16);
    g_assert_cmpuint(stats.extra, ==, 0);
    crt_bufpool_free(pool);
}

/* Drops the right to lock memory: an RLIMIT_MEMLOCK of 0, and, for root,
 * becoming nobody, since root's CAP_IPC_LOCK ignores the limit. */
static void drop_memlock(void)
{
    struct rlimit zero = {0, 0};

    g_assert_cmpint(setrlimit(RLIMIT_MEMLOCK, &zero), ==, 0);
    if (geteuid() == 0) {
        g_assert_cmpint(setgid(65534), ==, 0);
        g_assert_cmpint(setuid(65534), ==, 0);
    }
}

/* Runs in a child process, which gives up its right to lock memory for good. */
static void locked_refused_child(void)
{
    GError *error = NULL;
    CrtBufPool *pool;
    int err = 0;

    drop_memlock();

    pool = crt_bufpool_new(64, 16384, 0, FALSE, CRT_MEMORY_LOCKED, &err, &error);
    g_assert_null(pool);
    g_assert_true(err == EPERM || err == ENOMEM || err == EAGAIN);
    g_assert_nonnull(error);
    g_assert_true(error->domain == G_IO_ERROR);
    g_assert_cmpint(error->code, ==, g_io_error_from_errno(err));
    g_test_message("refused as expected: %s", error->message);
    g_assert_nonnull(strstr(error->message, "RLIMIT_MEMLOCK"));
    g_assert_nonnull(strstr(error->message, "0 bytes"));
    g_assert_nonnull(strstr(error->message, "1052672")); /* 64 * (16384 + 64) */
    g_clear_error(&error);

    /* A look-aside pool with nothing preallocated is created, but cannot grow. */
    pool = new_pool(0, 16384, 0, TRUE, CRT_MEMORY_LOCKED);
    g_assert_null(crt_bufpool_get(pool));
    crt_bufpool_free(pool);

    /* Normal memory does not care. */
    pool = new_pool(64, 16384, 0, FALSE, CRT_MEMORY_NORMAL);
    crt_bufpool_free(pool);
}

/* A plain fork rather than g_test_trap_subprocess(): the latter leaves a GLib
 * worker thread behind that valgrind reports as a possible leak. */
static void test_locked_refused(void)
{
    int status;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        locked_refused_child();
        fflush(stdout);
        _exit(0);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        g_error("child failed: wait status 0x%x", (unsigned)status);
}

/* Stress: threads take and return buffers at random.  While a thread holds a
 * buffer it fills the data with random bytes and records their checksum and
 * itself as the owner in the context; before putting it back it checks both.
 * A buffer handed to two threads at once, or overwritten while held, breaks
 * one of the checks. */

typedef struct {
    guint64 checksum;
    guint32 owner; /* 0 while the buffer is in the pool */
    guint32 length;
} StressContext;

typedef struct {
    CrtBufPool *pool;
    guint id;
    guint max_held;
    guint initial; /* buffers to try to take before the random phase */
    gint *ready;   /* threads done with the initial gets */
    guint nthreads;
    guint32 seed;
    guint64 ops; /* result, read after the join */
} StressThread;

static guint64 checksum(const guchar *data, size_t len)
{
    guint64 h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    return h;
}

static void stress_take(StressThread *t, GRand *rand, void **held, guint *nheld)
{
    size_t size = crt_bufpool_buffer_size(t->pool);
    guchar *data = crt_bufpool_get(t->pool);
    StressContext *context;

    if (data == NULL)
        return;
    g_assert_true(crt_bufpool_of(data) == t->pool);
    context = crt_bufpool_context(data);
    g_assert_cmpuint(context->owner, ==, 0);
    context->owner = t->id;
    context->length = g_rand_int_range(rand, 0, (gint32)size + 1);
    for (guint32 i = 0; i < context->length; i++)
        data[i] = (guchar)g_rand_int(rand);
    context->checksum = checksum(data, context->length);
    held[(*nheld)++] = data;
}

static void stress_give_back(StressThread *t, GRand *rand, void **held, guint *nheld)
{
    guint i = g_rand_int_range(rand, 0, (gint32)*nheld);
    guchar *data = held[i];
    StressContext *context = crt_bufpool_context(data);

    g_assert_cmpuint(context->owner, ==, t->id);
    g_assert_cmpuint(context->checksum, ==, checksum(data, context->length));
    context->owner = 0;
    held[i] = held[--*nheld];
    crt_bufpool_put(t->pool, data);
}

static gpointer stress_thread(gpointer data)
{
    StressThread *t = data;
    GRand *rand = g_rand_new_with_seed(t->seed);
    void **held = g_new0(void *, t->max_held);
    guint nheld = 0;
    gint64 deadline;

    /* All threads make their initial gets before any put, so that they
     * overrun the pool together: a fixed pool runs empty, a look-aside pool
     * grows, whatever the scheduling. */
    for (guint i = 0; i < t->initial; i++)
        stress_take(t, rand, held, &nheld);
    g_atomic_int_inc(t->ready);
    while ((guint)g_atomic_int_get(t->ready) < t->nthreads)
        g_thread_yield();

    deadline = g_get_monotonic_time() + STRESS_USEC;
    while (t->ops < STRESS_MIN_OPS || g_get_monotonic_time() < deadline) {
        gboolean take = nheld == 0 || (nheld < t->max_held && g_rand_boolean(rand));

        if (take)
            stress_take(t, rand, held, &nheld);
        else
            stress_give_back(t, rand, held, &nheld);
        t->ops++;
    }
    while (nheld > 0)
        stress_give_back(t, rand, held, &nheld);
    g_free(held);
    g_rand_free(rand);
    return NULL;
}

static void run_stress(guint count, gboolean lookaside, guint max_held, guint initial)
{
    enum { NTHREADS = 2 };
    CrtBufPool *pool =
        new_pool(count, 512, sizeof(StressContext), lookaside, CRT_MEMORY_NORMAL);
    StressThread threads[NTHREADS];
    GThread *handles[NTHREADS];
    CrtBufPoolStats stats;
    gint ready = 0;

    for (guint i = 0; i < NTHREADS; i++) {
        threads[i] = (StressThread){
            .pool = pool,
            .id = i + 1,
            .max_held = max_held,
            .initial = initial,
            .ready = &ready,
            .nthreads = NTHREADS,
            .seed = g_test_rand_int(),
        };
        handles[i] = g_thread_new("stress", stress_thread, &threads[i]);
    }
    for (guint i = 0; i < NTHREADS; i++) {
        g_thread_join(handles[i]);
        g_assert_cmpuint(threads[i].ops, >=, STRESS_MIN_OPS);
    }

    crt_bufpool_get_stats(pool, &stats);
    g_test_message("gets %" G_GUINT64_FORMAT " empty %" G_GUINT64_FORMAT
                   " extra allocs %" G_GUINT64_FORMAT " peak %u",
                   stats.gets, stats.empty_gets, stats.extra_allocs, stats.peak_in_use);
    g_assert_cmpuint(stats.free, ==, count);
    g_assert_cmpuint(stats.in_use, ==, 0);
    g_assert_cmpuint(stats.extra, ==, 0);
    g_assert_cmpuint(stats.gets, ==, stats.puts);
    g_assert_cmpuint(stats.peak_in_use, <=, NTHREADS * max_held);
    if (lookaside) {
        g_assert_cmpuint(stats.empty_gets, ==, 0);
        g_assert_cmpuint(stats.extra_allocs, >=, NTHREADS * initial - count);
        g_assert_cmpuint(stats.peak_in_use, >=, NTHREADS * initial);
    } else {
        g_assert_cmpuint(stats.empty_gets, >=, NTHREADS * initial - count);
        g_assert_cmpuint(stats.extra_allocs, ==, 0);
        g_assert_cmpuint(stats.peak_in_use, ==, count);
    }

    /* Every buffer is back, unowned, and can be taken once more. */
    for (guint i = 0; i < count; i++) {
        void *buffer = crt_bufpool_get(pool);
        StressContext *context = crt_bufpool_context(buffer);

        g_assert_cmpuint(context->owner, ==, 0);
        context->owner = 99;
    }
    g_assert_cmpuint(crt_bufpool_free_count(pool), ==, 0);
    crt_bufpool_free(pool);
}

static void test_stress(void)
{
    run_stress(16, FALSE, 12, 12);
}

static void test_stress_lookaside(void)
{
    run_stress(4, TRUE, 16, 8);
}

/* Look-aside grows only so far: a consumer that keeps everything meets an
 * empty pool at CRT_BUFPOOL_LOOKASIDE_LIMIT buffers. */
static void test_lookaside_limit(void)
{
    CrtBufPool *pool = crt_bufpool_new(4, 16, 0, TRUE, CRT_MEMORY_NORMAL, NULL, NULL);
    guint limit = CRT_BUFPOOL_LOOKASIDE_LIMIT(4);
    void **held = g_new0(void *, limit + 1);
    CrtBufPoolStats st;
    guint n = 0;

    g_assert_cmpuint(limit, ==, 64);
    while (n <= limit && (held[n] = crt_bufpool_get(pool)))
        n++;
    g_assert_cmpuint(n, ==, limit);
    crt_bufpool_get_stats(pool, &st);
    g_assert_cmpuint(st.extra, ==, limit - 4);
    g_assert_cmpuint(st.empty_gets, ==, 1);
    while (n > 0)
        crt_bufpool_put(pool, held[--n]);
    crt_bufpool_get_stats(pool, &st);
    g_assert_cmpuint(st.extra, ==, 0);
    g_assert_cmpuint(st.free, ==, 4);
    g_free(held);
    crt_bufpool_free(pool);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/bufpool/memory-strings", test_memory_strings);
    g_test_add_func("/bufpool/get-until-empty", test_get_until_empty);
    g_test_add_func("/bufpool/contents-kept", test_contents_kept);
    g_test_add_func("/bufpool/context", test_context);
    g_test_add_func("/bufpool/alignment", test_alignment);
    g_test_add_func("/bufpool/size-zero", test_size_zero);
    g_test_add_func("/bufpool/lookaside-limit", test_lookaside_limit);
    g_test_add_func("/bufpool/lookaside", test_lookaside);
    g_test_add_func("/bufpool/lookaside-count-zero", test_lookaside_count_zero);
    g_test_add_func("/bufpool/free-with-buffers-out", test_free_with_buffers_out);
    g_test_add_func("/bufpool/double-put", test_double_put);
    g_test_add_func("/bufpool/put-other-pool", test_put_other_pool);
    g_test_add_func("/bufpool/invalid", test_invalid);
    g_test_add_func("/bufpool/locked", test_locked);
    g_test_add_func("/bufpool/locked-refused", test_locked_refused);
    g_test_add_func("/bufpool/stress", test_stress);
    g_test_add_func("/bufpool/stress-lookaside", test_stress_lookaside);

    return g_test_run();
}
