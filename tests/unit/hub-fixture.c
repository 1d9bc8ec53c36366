/* crtfs tests - the hub fixture the hub test programs share (hub-fixture.h). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "hub-fixture.h"

/* ---- the hub fed by a real engine ----------------------------------------- */

static CrtDisposition on_output(CrtEngine *engine, const CrtOutput *out, gpointer data)
{
    Fix *f = data;
    CrtOutput *copy;

    if (!f->capture)
        return crt_hub_push(f->hub, engine, out);
    if (out->status == -ECANCELED)
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    copy = g_new(CrtOutput, 1);
    *copy = *out;
    g_mutex_lock(&f->lock);
    g_queue_push_tail(&f->captured, copy);
    g_mutex_unlock(&f->lock);
    return out->buffer ? CRT_DISPOSITION_CLIENT_CONTINUE
                       : CRT_DISPOSITION_ENGINE_CONTINUE;
}

static void on_notify(CrtHub *hub, gpointer data)
{
    tu_counter_bump(&((Fix *)data)->notified);
}

static int on_input(CrtEngine *engine, void *buf, size_t *size, void *ctx, gpointer data)
{
    Fix *f = data;

    if (!crt_hub_input_gate(f->hub))
        return -EAGAIN;
    *size = MIN(*size, 8);
    memset(buf, 'w', *size);
    return 0;
}

static void on_room(CrtHub *hub, gpointer data)
{
    crt_engine_input_ready(((Fix *)data)->engine);
}

/* A private loop, a hub and an engine with the simulator set as its target;
 * nothing streams until fix_start(). */
void fix_open(Fix *f, const FixOpts *o)
{
    CrtEngineConfig ec;

    memset(f, 0, sizeof *f);
    g_mutex_init(&f->lock);
    tu_counter_init(&f->notified);
    g_queue_init(&f->captured);
    f->capture = o->capture;
    f->loop = crt_loop_new();
    f->no_buffers = o->no_buffers || o->write_stream;
    f->hub = crt_hub_new(on_notify, f);
    crt_hub_set_policy(f->hub, o->overflow,
                       o->bufferless_cap ? o->bufferless_cap : CRT_HUB_MAX_BUFFERLESS);
    crt_hub_set_room_notify(f->hub, on_room, f);
    crt_engine_config_init(&ec);
    ec.request_count = o->requests ? o->requests : 4;
    ec.out_count = o->out_count ? o->out_count : 8;
    ec.out_size = f->no_buffers ? 0 : o->out_size ? o->out_size : ENTRY_SIZE;
    if (o->write_stream) {
        ec.type = CRT_REQUEST_WRITE;
        ec.in_count = 8;
        ec.in_size = 8;
        ec.buffer_input = on_input;
    }
    ec.out_context_size = crt_hub_context_size();
    ec.buffer_output = on_output;
    ec.user_data = f;
    ec.loop = f->loop;
    f->engine = tu_engine_new(&ec, o->spec ? o->spec : "sim:counter");
}

/* Start streaming as the channel does: the hub first, then the engine. */
void fix_start(Fix *f)
{
    crt_hub_begin_stream(f->hub);
    g_assert_cmpint(crt_engine_start(f->engine), ==, 0);
}

CrtEngineStats engine_stats(Fix *f)
{
    CrtEngineStats st;

    crt_engine_get_stats(f->engine, &st);
    return st;
}

CrtHubStats hub_stats(Fix *f)
{
    CrtHubStats st;

    crt_hub_get_stats(f->hub, &st);
    return st;
}

void assert_pool_full(Fix *f)
{
    CrtEngineStats st = engine_stats(f);

    if (f->no_buffers)
        return;
    g_assert_cmpuint(st.out_pool_size, >, 0);
    g_assert_cmpuint(st.out_pool_free, ==, st.out_pool_size);
}

/* Stop the stream, give back what capture mode still holds, free the hub
 * (its kept entries go back to the engine) and check that every buffer is
 * home before the engine goes.  Readers must be freed already. */
void fix_close(Fix *f)
{
    CrtOutput *out;

    crt_engine_stop_and_wait(f->engine);
    while ((out = g_queue_pop_head(&f->captured))) {
        if (out->buffer)
            crt_engine_buffer_put(f->engine, out->buffer);
        g_free(out);
    }
    crt_hub_free(f->hub);
    assert_pool_full(f);
    crt_engine_free(f->engine);
    crt_loop_unref(f->loop);
    tu_counter_clear(&f->notified);
    g_mutex_clear(&f->lock);
}

/* The stream stands still: a request waits for a buffer and no completion
 * arrives for 100 ms. */
void assert_paused(Fix *f)
{
    guint64 completed;

    TU_WAIT_FOR(engine_stats(f).slots_waiting > 0);
    completed = engine_stats(f).completed;
    g_usleep(100 * 1000);
    g_assert_cmpuint(engine_stats(f).completed, ==, completed);
    g_assert_cmpuint(engine_stats(f).slots_waiting, >, 0);
    g_assert_cmpuint(engine_stats(f).out_pool_free, ==, 0);
}

/* ---- what readers see ------------------------------------------------------ */

void records_init(Records *p)
{
    p->pending = g_byte_array_new();
    p->recs = g_array_new(FALSE, TRUE, sizeof(Rec));
    p->error = NULL;
}

void records_clear(Records *p)
{
    g_byte_array_unref(p->pending);
    g_array_unref(p->recs);
    g_free(p->error);
}

const Rec *rec_at(const Records *p, guint i)
{
    return &g_array_index(p->recs, Rec, i);
}

guint64 records_last_seq(const Records *p)
{
    return p->recs->len ? rec_at(p, p->recs->len - 1)->seq : 0;
}

static gboolean parse_uint(const char *s, guint64 *out)
{
    return g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, out, NULL);
}

/* `SEQ SECONDS.NANOSECONDS STATUS LENGTH`, nothing more. */
/* A STATUS word: ok, an errno name, a line event ("line:cts=1",
 * "line:framing+3") or a replay marker ("replay:from=5", "live:from=9"). */
static gboolean status_word_ok(const char *s)
{
    if (strcmp(s, "ok") == 0)
        return TRUE;
    if (s[0] == 'E' && s[1]) {
        for (const char *c = s; *c; c++) {
            if (!g_ascii_isalnum(*c))
                return FALSE;
        }
        return TRUE;
    }
    return g_regex_match_simple(
        "^line:(cts|dsr|dcd|ri)=[01]$|^line:(break|framing|parity|"
        "overrun)\\+[1-9][0-9]*$|^(replay|live):from=[0-9]+$",
        s, 0, 0);
}

static gboolean parse_header(const char *line, Rec *rec)
{
    char **w = g_strsplit(line, " ", -1);
    char **t = NULL;
    guint64 v[4];
    gboolean ok = g_strv_length(w) == 4;

    if (ok) {
        t = g_strsplit(w[1], ".", -1);
        ok = g_strv_length(t) == 2 && strlen(t[1]) == 9 && parse_uint(w[0], &v[0]) &&
             parse_uint(t[0], &v[1]) && parse_uint(t[1], &v[2]) &&
             parse_uint(w[3], &v[3]) && strlen(w[2]) < sizeof rec->status &&
             status_word_ok(w[2]);
    }
    if (ok) {
        rec->seq = v[0];
        rec->sec = (gint64)v[1];
        rec->nsec = (gint64)v[2];
        strcpy(rec->status, w[2]);
        rec->length = (size_t)v[3];
    }
    g_strfreev(t);
    g_strfreev(w);
    return ok;
}

guint64 counter_at(const guint8 *p)
{
    guint64 le;

    memcpy(&le, p, sizeof le);
    return GUINT64_FROM_LE(le);
}

static void records_fail(Records *p, const char *what, const guint8 *at, size_t n)
{
    if (!p->error)
        p->error = g_strdup_printf("%s after record %u: \"%.*s\"", what, p->recs->len,
                                   (int)MIN(n, 80), (const char *)at);
}

/* Parse every complete record in `pending`; TRUE if one was. */
static gboolean records_take_one(Records *p)
{
    const guint8 *nl = memchr(p->pending->data, '\n', p->pending->len);
    size_t hlen;
    char *line;
    Rec rec = {0};
    gboolean ok;

    if (!nl) {
        if (p->pending->len > 120)
            records_fail(p, "header line too long", p->pending->data, p->pending->len);
        return FALSE;
    }
    hlen = (size_t)(nl - p->pending->data);
    line = g_strndup((const char *)p->pending->data, hlen);
    ok = parse_header(line, &rec);
    g_free(line);
    if (!ok) {
        records_fail(p, "malformed header", p->pending->data, hlen);
        return FALSE;
    }
    if (p->pending->len < hlen + 1 + rec.length)
        return FALSE;
    if (rec.length >= 8) {
        const guint8 *payload = nl + 1;

        rec.first = counter_at(payload);
        rec.last = counter_at(payload + rec.length - 8);
        if (rec.length % 8 != 0 || rec.last - rec.first != rec.length / 8 - 1)
            records_fail(p, "payload is not a run of counters", p->pending->data, hlen);
    }
    g_array_append_val(p->recs, rec);
    g_byte_array_remove_range(p->pending, 0, (guint)(hlen + 1 + rec.length));
    return TRUE;
}

/* Returns how many records the chunk completed. */
guint records_feed(Records *p, const char *buf, size_t n)
{
    guint done = 0;

    g_byte_array_append(p->pending, (const guint8 *)buf, (guint)n);
    while (!p->error && p->pending->len > 0 && records_take_one(p))
        done++;
    return done;
}

/* Everything parsed so far is whole records, their sequence numbers run
 * from `first_seq` without a gap, the successful ones carry ENTRY_SIZE
 * bytes whose counters continue from record to record, and the timestamps
 * are the realtime clock.  NULL, or what is wrong (newly allocated). */
char *records_verify(const Records *p, guint64 first_seq)
{
    guint64 next_counter = 0;
    gint64 now = (gint64)time(NULL);

    if (p->error)
        return g_strdup(p->error);
    if (p->pending->len)
        return g_strdup_printf("%u bytes of a partial record", p->pending->len);
    for (guint i = 0; i < p->recs->len; i++) {
        const Rec *r = rec_at(p, i);

        if (r->seq != first_seq + i)
            return g_strdup_printf("record %u has seq %" G_GUINT64_FORMAT
                                   ", expected %" G_GUINT64_FORMAT,
                                   i, r->seq, first_seq + i);
        if (r->sec < now - 3600 || r->sec > now + 3600 || r->nsec >= 1000000000)
            return g_strdup_printf("seq %" G_GUINT64_FORMAT " has time %" G_GINT64_FORMAT
                                   ".%09" G_GINT64_FORMAT,
                                   r->seq, r->sec, r->nsec);
        if (strcmp(r->status, "ok") != 0)
            continue;
        if (r->length != ENTRY_SIZE)
            return g_strdup_printf("seq %" G_GUINT64_FORMAT " has length %zu", r->seq,
                                   r->length);
        if (next_counter && r->first != next_counter)
            return g_strdup_printf("seq %" G_GUINT64_FORMAT
                                   " starts at counter %" G_GUINT64_FORMAT
                                   ", expected %" G_GUINT64_FORMAT,
                                   r->seq, r->first, next_counter);
        next_counter = r->last + 1;
    }
    return NULL;
}

void counters_feed(Counters *c, const char *buf, size_t n)
{
    if (c->next == 0)
        c->next = 1;
    for (size_t i = 0; i < n && !c->error; i++) {
        c->part[c->part_len++] = (guint8)buf[i];
        if (c->part_len < 8)
            continue;
        if (counter_at(c->part) != c->next)
            c->error = g_strdup_printf("counter %" G_GUINT64_FORMAT
                                       " where %" G_GUINT64_FORMAT " was due",
                                       counter_at(c->part), c->next);
        c->next++;
        c->part_len = 0;
    }
}

/* Read with the hub's readiness as the only clue: retry on -EAGAIN after
 * a notify (or 10 ms), up to `timeout_ms`.  -ETIMEDOUT when nothing came. */
gssize read_wait(Fix *f, CrtHubReader *r, char *buf, size_t size, CrtFraming framing,
                 guint timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        guint seen = tu_counter_get(&f->notified);
        gssize n = crt_hub_read(r, buf, size, framing);

        if (n != -EAGAIN)
            return n;
        if (g_get_monotonic_time() > deadline)
            return -ETIMEDOUT;
        tu_counter_wait(&f->notified, seen, 10);
    }
}

/* Read `records` until the record with seq `want` arrived; NULL or what
 * went wrong (newly allocated).  Any thread. */
char *read_records_until(Fix *f, CrtHubReader *r, Records *p, guint64 want,
                         CrtFraming framing)
{
    char *buf = g_malloc(READ_SIZE);
    char *problem = NULL;

    while (!problem && !p->error && records_last_seq(p) < want) {
        gssize n = read_wait(f, r, buf, READ_SIZE, framing, TU_EVENTUALLY_MS);

        if (n > 0)
            records_feed(p, buf, (size_t)n);
        else
            problem = g_strdup_printf("read returned %s after seq %" G_GUINT64_FORMAT,
                                      n == 0 ? "end of file" : g_strerror((int)-n),
                                      records_last_seq(p));
    }
    g_free(buf);
    return problem;
}

/* Read everything there is now (the stream must be stopped); returns what
 * the last read returned: -EAGAIN, or 0 for end of file. */
gssize drain_records(CrtHubReader *r, Records *p)
{
    char *buf = g_malloc(READ_SIZE);
    gssize n;

    while ((n = crt_hub_read(r, buf, READ_SIZE, CRT_FRAMING_STREAM)) > 0)
        records_feed(p, buf, (size_t)n);
    g_free(buf);
    return n;
}
