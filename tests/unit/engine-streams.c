/* crtfs tests - checked engine streams and completions that the engine and
 * target-kind test programs share (engine-streams.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "engine-streams.h"

/* ---- a checked `sim:counter` read stream ---------------------------------- */

static void stream_init(Stream *s, CrtLoop *loop, CrtCompletion completion,
                        size_t out_size)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->completion = completion;
    s->out_size = out_size;
    s->next_counter = 1;
}

/* Default callbacks run on the loop thread, passive ones never do. */
void check_callback_thread(CrtLoop *loop, CrtCompletion completion)
{
    if (completion == CRT_COMPLETION_DEFAULT)
        CHECKF(crt_loop_is_current(loop),
               "a default-level callback ran off the loop thread");
    else
        CHECKF(!crt_loop_is_current(loop), "a passive callback ran on the loop thread");
}

/* One completion of a `sim:counter` read stream: seq grows by one per
 * callback, and the payload counters continue from buffer to buffer with
 * no gap and no repeat (the simulator only counts reads it served). */
void stream_check(Stream *s, const CrtOutput *o)
{
    check_callback_thread(s->loop, s->completion);
    CHECKF(o->seq == s->last_seq + 1,
           "seq %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, o->seq, s->last_seq);
    s->last_seq = o->seq;
    if (o->status == 0) {
        const guint8 *p = o->buffer;

        CHECKF(o->length == s->out_size, "length %zu, expected %zu", o->length,
               s->out_size);
        CHECK(p != NULL);
        for (size_t i = 0; p && i + sizeof(guint64) <= o->length; i += sizeof(guint64)) {
            guint64 v;

            memcpy(&v, p + i, sizeof v);
            v = GUINT64_FROM_LE(v);
            CHECKF(v == s->next_counter,
                   "counter %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT
                   " (seq %" G_GUINT64_FORMAT ")",
                   v, s->next_counter, o->seq);
            s->next_counter = v + 1;
        }
        g_atomic_int_inc(&s->ok);
    } else if (o->status == -ECANCELED) {
        CHECKF(g_atomic_int_get(&s->stopping),
               "-ECANCELED while nobody stopped (seq %" G_GUINT64_FORMAT ")", o->seq);
        g_atomic_int_inc(&s->cancelled);
    } else {
        CHECKF(FALSE, "unexpected status %d (seq %" G_GUINT64_FORMAT ")", o->status,
               o->seq);
        g_atomic_int_inc(&s->failed);
    }
    g_atomic_int_inc(&s->callbacks);
}

static CrtDisposition stream_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Stream *s = user_data;

    stream_check(s, o);
    if (o->status == 0 && s->stop_at && g_atomic_int_get(&s->ok) == s->stop_at)
        return CRT_DISPOSITION_ENGINE_STOP;
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

void counter_config(CrtEngineConfig *cfg, CrtLoop *loop, Stream *s, guint requests,
                    guint out_count, size_t out_size, CrtCompletion completion)
{
    crt_engine_config_init(cfg);
    cfg->loop = loop;
    cfg->type = CRT_REQUEST_READ;
    cfg->request_count = requests;
    cfg->out_count = out_count;
    cfg->out_size = out_size;
    cfg->completion = completion;
    cfg->buffer_output = stream_output;
    cfg->user_data = s;
    stream_init(s, loop, completion, out_size);
}

/* The engine's counters agree with what the callbacks saw. */
void assert_stats_match(CrtEngine *e, Stream *s)
{
    CrtEngineStats st;

    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.completed, ==, (guint64)s->ok);
    g_assert_cmpuint(st.cancelled, ==, (guint64)s->cancelled);
    g_assert_cmpuint(st.failed, ==, (guint64)s->failed);
    g_assert_cmpuint(st.completed + st.cancelled + st.failed, ==, (guint64)s->callbacks);
    g_assert_cmpuint(st.last_seq, ==, s->last_seq);
}

/* ---- single requests: a recording completion ---------------------------- */

void send_record_init(SendRecord *r, CrtLoop *loop)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
}

void record_send(CrtEngine *e, gpointer request_context, const void *in,
                 size_t in_written, void *out, size_t out_read, int status)
{
    SendRecord *r = request_context;

    CHECKF(g_atomic_int_get(&r->calls) == 0, "a second completion, status %d", status);
    r->on_loop = crt_loop_is_current(r->loop);
    r->status = status;
    r->in_written = in_written;
    r->out_read = out_read;
    r->in = in;
    r->out = out;
    g_atomic_int_inc(&r->calls);
}

/* Ask the simulator to sleep `ms`; the response gets the echo. */
int send_sleep(CrtEngine *e, guint32 *ms_and_response, guint timeout_ms,
               CrtCompletion completion, SendRecord *r, CrtRequestId *id)
{
    return crt_engine_send_ex(e, ms_and_response, sizeof *ms_and_response,
                              ms_and_response, sizeof *ms_and_response, CRT_REQUEST_IOCTL,
                              CRT_SIM_IOCTL_SLEEP, timeout_ms, completion, record_send, r,
                              id);
}

/* ---- a stream that keeps what a real target sends ------------------------- */

static CrtDisposition collect_output(CrtEngine *e, const CrtOutput *o, gpointer user_data)
{
    Collector *c = user_data;
    guint8 *p = o->buffer;

    CHECKF(crt_loop_is_current(c->loop), "default-level callback off the loop thread");
    CHECKF(o->seq == c->last_seq + 1,
           "seq %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT, o->seq, c->last_seq);
    c->last_seq = o->seq;
    if (c->markers && o->status != 0 && o->status != -ECANCELED) {
        CHECKF(o->length == 0, "a marker with %zu bytes", o->length);
        g_mutex_lock(&c->lock);
        g_string_append_printf(c->marks, "%s%s", c->marks->len ? " " : "",
                               strerrorname_np(-o->status));
        g_mutex_unlock(&c->lock);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    if (o->status == 0) {
        CHECKF(!g_atomic_int_get(&c->ended), "data after the end of the stream");
        CHECK(o->length > 0);
        if (c->expect_zero) {
            for (size_t i = 0; i < o->length; i++)
                CHECKF(p[i] == 0, "byte %zu from /dev/zero is 0x%02x", i, p[i]);
            memset(p, 0xAA, o->length);
        } else {
            g_mutex_lock(&c->lock);
            g_byte_array_append(c->data, p, (guint)o->length);
            g_mutex_unlock(&c->lock);
        }
        g_atomic_int_inc(&c->ok);
    } else if (o->status == -ENODATA) {
        CHECKF(!g_atomic_int_get(&c->ended), "a second end of stream");
        g_atomic_int_set(&c->ended, 1);
    } else if (o->status == -ECANCELED) {
        CHECKF(g_atomic_int_get(&c->stopping) || g_atomic_int_get(&c->ended),
               "-ECANCELED while streaming");
    } else {
        CHECKF(FALSE, "status %d (%s)", o->status, g_strerror(-o->status));
        g_atomic_int_inc(&c->errors);
    }
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

CrtEngine *collector_start(Collector *c, CrtLoop *loop, const char *spec, size_t out_size,
                           gboolean expect_zero)
{
    CrtEngineConfig cfg;
    CrtEngine *e;

    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->expect_zero = expect_zero;
    g_mutex_init(&c->lock);
    c->data = g_byte_array_new();
    c->marks = g_string_new(NULL);
    c->markers = strstr(spec, " wait") != NULL;
    crt_engine_config_init(&cfg);
    cfg.loop = loop;
    cfg.type = CRT_REQUEST_READ;
    cfg.request_count = 4;
    cfg.out_count = 8;
    cfg.out_size = out_size;
    cfg.buffer_output = collect_output;
    cfg.user_data = c;
    e = tu_engine_new(&cfg, spec);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    return e;
}

void collector_finish(CrtEngine *e, Collector *c)
{
    g_atomic_int_set(&c->stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);
    g_byte_array_unref(c->data);
    g_string_free(c->marks, TRUE);
    g_mutex_clear(&c->lock);
}

typedef struct {
    Collector *c;
    const char *want;
} CollectorMarks;

static gboolean collector_marks_are(gpointer data)
{
    CollectorMarks *m = data;
    gboolean same;

    g_mutex_lock(&m->c->lock);
    same = strcmp(m->c->marks->str, m->want) == 0;
    g_mutex_unlock(&m->c->lock);
    return same;
}

void collector_expect_marks(Collector *c, const char *want)
{
    CollectorMarks m = {c, want};

    tu_wait_until(collector_marks_are, &m, TU_EVENTUALLY_MS);
    g_mutex_lock(&c->lock);
    g_assert_cmpstr(c->marks->str, ==, want);
    g_mutex_unlock(&c->lock);
}

gboolean collector_has(gpointer data)
{
    CollectorHas *w = data;
    gsize n;

    g_mutex_lock(&w->c->lock);
    n = w->c->data->len;
    g_mutex_unlock(&w->c->lock);
    return n >= w->len;
}

/* Wait for `len` bytes, then check they are exactly `expected` (and that no
 * more arrive). */
void collector_expect(Collector *c, const guint8 *expected, gsize len)
{
    CollectorHas w = {c, len};

    if (!tu_wait_until(collector_has, &w, TU_EVENTUALLY_MS)) {
        g_mutex_lock(&c->lock);
        g_test_message("collected %u of %" G_GSIZE_FORMAT " bytes", c->data->len, len);
        g_mutex_unlock(&c->lock);
    }
    g_usleep(20 * 1000);
    g_mutex_lock(&c->lock);
    g_assert_cmpmem(c->data->data, c->data->len, expected, len);
    g_mutex_unlock(&c->lock);
}

/* Bytes whose value depends on their position, so a lost, repeated or
 * reordered chunk shows. */
guint8 *pattern_new(gsize len, guint seed)
{
    guint8 *p = g_malloc(len);

    for (gsize i = 0; i < len; i++)
        p[i] = (guint8)((i * 131u + (i >> 8) + seed) & 0xff);
    return p;
}

void write_all(int fd, const guint8 *p, gsize len)
{
    while (len > 0) {
        gsize chunk = (gsize)g_random_int_range(1, 3000);
        ssize_t n = write(fd, p, MIN(len, chunk));

        if (n < 0 && errno == EINTR)
            continue;
        g_assert_cmpint(n, >, 0);
        p += n;
        len -= (gsize)n;
    }
}

gpointer fifo_writer(gpointer p)
{
    FifoWriter *w = p;
    int fd = open(w->path, O_WRONLY | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    write_all(fd, w->data, w->len);
    close(fd);
    return NULL;
}
