/* crtfs bench/fs-engine: the "engine direct" baseline of bench/fs.
 *
 *     fs-engine [-s OUT_SIZE] [-c OUT_COUNT] [-r REQUESTS] [-t SECONDS]
 *               [-b BYTES] [-w WARMUP] TARGET-SPEC
 *
 * Streams TARGET-SPEC through the engine with the pool and request count a
 * crtfs target directory would use (the daemon's defaults: 4 read requests,
 * 16 output buffers) and a default-completion output callback that only
 * counts: bytes, buffers, and the first byte of each buffer into a sink (the
 * same minimal touch as bench/engine).  After WARMUP seconds it measures one
 * window that ends after SECONDS or once BYTES more bytes arrived, whichever
 * comes first, and prints one line:
 *
 *     bytes=N buffers=N seconds=S
 *
 * Why not `crtfs-stream > /dev/null`: it writes and flushes every buffer to
 * stdout (one write(2) per buffer, which at 64-byte buffers costs more than
 * the engine does) and runs a fixed count of buffers, so its time would
 * include process start-up and the pool's first fill.  This measures the
 * engine and the source alone, which is what the crtfs figures are set
 * against.
 *
 * Exit status: 0, 1 when the target or the engine fails, 2 for bad options.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <crtfs/crtfs.h>

typedef struct {
    atomic_uint_fast64_t bytes;
    atomic_uint_fast64_t buffers;
    atomic_uint_fast64_t stop_at; /* wake the main thread at this many bytes */
    atomic_int error;             /* first failure status, 0 if none */
    unsigned sink;
    GMutex lock;
    GCond cond;
    gboolean reached;
} Counter;

static volatile unsigned sink_out;

static CrtDisposition on_output(CrtEngine *e, const CrtOutput *out, gpointer data)
{
    Counter *c = data;
    int none = 0;

    if (out->status == 0) {
        guint64 b;

        if (out->length)
            c->sink += ((const unsigned char *)out->buffer)[0];
        b = atomic_fetch_add_explicit(&c->bytes, out->length, memory_order_relaxed) +
            out->length;
        atomic_fetch_add_explicit(&c->buffers, 1, memory_order_relaxed);
        if (b >= atomic_load_explicit(&c->stop_at, memory_order_relaxed)) {
            atomic_store_explicit(&c->stop_at, G_MAXUINT64, memory_order_relaxed);
            g_mutex_lock(&c->lock);
            c->reached = TRUE;
            g_cond_signal(&c->cond);
            g_mutex_unlock(&c->lock);
        }
    } else if (out->status != -ECANCELED) {
        atomic_compare_exchange_strong(&c->error, &none, out->status);
        g_mutex_lock(&c->lock);
        c->reached = TRUE;
        g_cond_signal(&c->cond);
        g_mutex_unlock(&c->lock);
        return CRT_DISPOSITION_ENGINE_STOP;
    }
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

int main(int argc, char **argv)
{
    gint64 size = 4096, count = 16, requests = 4, max_bytes = 0;
    double seconds = 2.0, warmup = 0.1;
    GOptionEntry entries[] = {
        {"size", 's', 0, G_OPTION_ARG_INT64, &size, "output buffer size (default 4096)",
         "BYTES"},
        {"count", 'c', 0, G_OPTION_ARG_INT64, &count, "output buffers (default 16)", "N"},
        {"requests", 'r', 0, G_OPTION_ARG_INT64, &requests,
         "requests in flight (default 4)", "N"},
        {"seconds", 't', 0, G_OPTION_ARG_DOUBLE, &seconds, "longest window (default 2)",
         "S"},
        {"bytes", 'b', 0, G_OPTION_ARG_INT64, &max_bytes,
         "end the window after this many bytes (default 0: no limit)", "N"},
        {"warmup", 'w', 0, G_OPTION_ARG_DOUBLE, &warmup,
         "before the window (default 0.1)", "S"},
        {NULL}};
    GOptionContext *octx = g_option_context_new("TARGET-SPEC");
    GError *error = NULL;
    Counter c = {0};
    CrtEngineConfig cfg;
    CrtEngine *engine = NULL;
    CrtTarget *target = NULL;
    guint64 b0, n0, b1, n1;
    gint64 t0, t1, deadline;
    int r;

    g_option_context_set_summary(octx, "Count what a target streams through the crtfs "
                                       "engine (bench/fs's engine baseline).");
    g_option_context_add_main_entries(octx, entries, NULL);
    if (!g_option_context_parse(octx, &argc, &argv, &error) || argc != 2) {
        fprintf(stderr, "fs-engine: %s\n",
                error ? error->message : "one TARGET-SPEC needed");
        return 2;
    }
    g_option_context_free(octx);
    if (size < 1 || count < 1 || requests < 1 || seconds <= 0 || warmup < 0 ||
        max_bytes < 0) {
        fprintf(stderr, "fs-engine: sizes, counts and times must be positive\n");
        return 2;
    }
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    atomic_store(&c.stop_at, G_MAXUINT64);

    crt_engine_config_init(&cfg);
    cfg.type = CRT_REQUEST_READ;
    cfg.request_count = (guint)requests;
    cfg.out_count = (guint)count;
    cfg.out_size = (size_t)size;
    cfg.buffer_output = on_output;
    cfg.user_data = &c;
    cfg.mode = CRT_MODE_MANUAL;
    cfg.completion = CRT_COMPLETION_DEFAULT;
    if (crt_target_open_spec(argv[1], NULL, &target, &error) < 0) {
        fprintf(stderr, "fs-engine: %s\n", error->message);
        return 1;
    }
    if (crt_engine_new(&cfg, &engine, &error) < 0) {
        fprintf(stderr, "fs-engine: %s\n", error->message);
        crt_target_unref(target);
        return 1;
    }
    r = crt_engine_io_target_set(engine, target);
    if (r == 0)
        r = crt_engine_start(engine);
    if (r < 0) {
        fprintf(stderr, "fs-engine: cannot start: %s\n", g_strerror(-r));
        crt_engine_free(engine);
        return 1;
    }

    g_usleep((gulong)(warmup * G_USEC_PER_SEC));
    t0 = g_get_monotonic_time();
    b0 = atomic_load(&c.bytes);
    n0 = atomic_load(&c.buffers);
    if (max_bytes > 0)
        atomic_store(&c.stop_at, b0 + (guint64)max_bytes);
    deadline = t0 + (gint64)(seconds * G_USEC_PER_SEC);
    g_mutex_lock(&c.lock);
    while (!c.reached && g_cond_wait_until(&c.cond, &c.lock, deadline))
        ;
    g_mutex_unlock(&c.lock);
    t1 = g_get_monotonic_time();
    b1 = atomic_load(&c.bytes);
    n1 = atomic_load(&c.buffers);

    crt_engine_stop_and_wait(engine);
    crt_engine_free(engine);
    sink_out = c.sink;
    r = atomic_load(&c.error);
    if (r < 0 && r != -ENODATA) {
        fprintf(stderr, "fs-engine: %s: %s\n", argv[1], g_strerror(-r));
        return 1;
    }
    if (n1 == n0) {
        fprintf(stderr, "fs-engine: %s: nothing arrived\n", argv[1]);
        return 1;
    }
    printf("bytes=%" G_GUINT64_FORMAT " buffers=%" G_GUINT64_FORMAT " seconds=%.6f\n",
           b1 - b0, n1 - n0, (double)(t1 - t0) / G_USEC_PER_SEC);
    return 0;
}
