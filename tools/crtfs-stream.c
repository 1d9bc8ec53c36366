/* crtfs-stream: stream from a target through the engine and print what
 * arrives.  The README's first command runs it until the filesystem exists;
 * it is also the smallest example of the engine's API. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <crtfs/crtfs.h>

typedef struct {
    guint64 limit; /* buffers to print, 0 = until the stream ends */
    guint64 received;
    gboolean verbose; /* a header line per buffer */
    GMutex lock;
    GCond cond;
    gboolean finished;
    int status;
} Stream;

static CrtDisposition on_output(CrtEngine *e, const CrtOutput *out, gpointer data)
{
    Stream *st = data;
    gboolean done;

    if (out->status == -ECANCELED)
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    if (st->verbose)
        printf("# seq %" G_GUINT64_FORMAT " status %d length %zu\n", out->seq,
               out->status, out->length);
    if (out->length)
        fwrite(out->buffer, 1, out->length, stdout);
    fflush(stdout);
    g_mutex_lock(&st->lock);
    st->received++;
    done = out->status != 0 || (st->limit && st->received >= st->limit);
    if (done && !st->finished) {
        st->finished = TRUE;
        st->status = out->status == -ENODATA ? 0 : out->status;
        g_cond_signal(&st->cond);
    }
    g_mutex_unlock(&st->lock);
    return done ? CRT_DISPOSITION_ENGINE_STOP : CRT_DISPOSITION_ENGINE_CONTINUE;
}

int main(int argc, char **argv)
{
    gint64 count = 20;
    gint requests = 4, size = 4096;
    gboolean verbose = FALSE;
    GOptionEntry entries[] = {
        {"count", 'n', 0, G_OPTION_ARG_INT64, &count, "buffers to print (0: all)", "N"},
        {"requests", 'r', 0, G_OPTION_ARG_INT, &requests, "requests in flight", "N"},
        {"size", 's', 0, G_OPTION_ARG_INT, &size, "output buffer size", "BYTES"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "a header line per buffer",
         NULL},
        {NULL}};
    GOptionContext *octx = g_option_context_new("[TARGET-SPEC]");
    GError *error = NULL;
    Stream st = {0};
    CrtEngineConfig cfg;
    CrtEngine *engine = NULL;
    CrtTarget *target = NULL;
    const char *spec;

    g_option_context_set_summary(octx,
                                 "Stream a target through the crtfs engine to stdout.\n"
                                 "The default target is `sim:records rate=10`.");
    g_option_context_add_main_entries(octx, entries, NULL);
    if (!g_option_context_parse(octx, &argc, &argv, &error)) {
        fprintf(stderr, "crtfs-stream: %s\n", error->message);
        return 2;
    }
    g_option_context_free(octx);
    spec = argc > 1 ? argv[1] : "sim:records rate=10";
    st.limit = count > 0 ? (guint64)count : 0;
    st.verbose = verbose;
    g_mutex_init(&st.lock);
    g_cond_init(&st.cond);

    crt_engine_config_init(&cfg);
    cfg.request_count = (guint)MAX(requests, 1);
    cfg.out_count = cfg.request_count * 2;
    cfg.out_size = (size_t)MAX(size, 1);
    cfg.buffer_output = on_output;
    cfg.user_data = &st;
    cfg.mode = CRT_MODE_AUTOMATIC;
    if (crt_engine_new(&cfg, &engine, &error) < 0 ||
        crt_target_open_spec(spec, NULL, &target, &error) < 0 ||
        crt_engine_io_target_set(engine, target) < 0) {
        fprintf(stderr, "crtfs-stream: %s\n", error ? error->message : "cannot start");
        if (engine)
            crt_engine_free(engine);
        return 1;
    }
    g_mutex_lock(&st.lock);
    while (!st.finished)
        g_cond_wait(&st.cond, &st.lock);
    g_mutex_unlock(&st.lock);
    crt_engine_free(engine);
    if (st.status < 0)
        fprintf(stderr, "crtfs-stream: %s: %s\n", spec, g_strerror(-st.status));
    return st.status < 0 ? 1 : 0;
}
