/* crtfs-cat: the engine as a library, from outside the crtfs tree.
 *
 *     crtfs-cat TARGET-SPEC [COUNT]
 *
 * Opens a target (`sim:records`, `/dev/ttyUSB0 baud=9600 raw`,
 * `unix:/run/app.sock` ...), keeps four read requests in flight and writes
 * the first COUNT buffers (default 10) to standard output.
 *
 * Build against the installed library:
 *     cc -o crtfs-cat crtfs-cat.c $(pkg-config --cflags --libs crtfs)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <crtfs/crtfs.h>

typedef struct {
    guint64 want, got;
    GMutex lock;
    GCond cond;
    gboolean done;
} Cat;

/* Runs on the engine's I/O thread (completion=default), once per completed
 * streaming request, in order.  The buffer is the engine's: it returns to
 * the pool when this returns ENGINE_CONTINUE or ENGINE_STOP. */
static CrtDisposition on_output(CrtEngine *engine, const CrtOutput *out, gpointer data)
{
    Cat *cat = data;
    gboolean done;

    if (out->status == -ECANCELED)
        return CRT_DISPOSITION_ENGINE_CONTINUE; /* stopping: nothing came */
    g_mutex_lock(&cat->lock);
    /* Requests already at the target when we asked to stop still complete:
     * COUNT buffers are written, no more. */
    if (!cat->done) {
        fwrite(out->buffer, 1, out->length, stdout);
        cat->done = out->status != 0 || ++cat->got >= cat->want;
        if (cat->done)
            g_cond_signal(&cat->cond);
    }
    done = cat->done;
    g_mutex_unlock(&cat->lock);
    return done ? CRT_DISPOSITION_ENGINE_STOP : CRT_DISPOSITION_ENGINE_CONTINUE;
}

int main(int argc, char **argv)
{
    Cat cat = {.want = argc > 2 ? strtoull(argv[2], NULL, 10) : 10};
    CrtEngineConfig cfg;
    CrtEngine *engine = NULL;
    CrtTarget *target = NULL;
    GError *error = NULL;

    if (argc < 2) {
        fprintf(stderr, "usage: %s TARGET-SPEC [COUNT]\n", argv[0]);
        return 2;
    }
    g_mutex_init(&cat.lock);
    g_cond_init(&cat.cond);
    crt_engine_config_init(&cfg);
    cfg.request_count = 4;
    cfg.out_count = 8;
    cfg.out_size = 4096;
    cfg.buffer_output = on_output;
    cfg.user_data = &cat;
    cfg.mode = CRT_MODE_AUTOMATIC; /* setting the target starts streaming */
    if (crt_engine_new(&cfg, &engine, &error) < 0 ||
        crt_target_open_spec(argv[1], NULL, &target, &error) < 0 ||
        crt_engine_io_target_set(engine, target) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], error ? error->message : "cannot stream");
        if (engine)
            crt_engine_free(engine);
        return 1;
    }
    /* The engine owns the target now (crt_engine_io_target_set). */
    g_mutex_lock(&cat.lock);
    while (!cat.done)
        g_cond_wait(&cat.cond, &cat.lock);
    g_mutex_unlock(&cat.lock);
    crt_engine_free(engine); /* stops, waits for every request, closes */
    return 0;
}
