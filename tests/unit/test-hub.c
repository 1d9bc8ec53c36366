/* crtfs tests - the broadcast hub behind `data` and `records`: every reader
 * gets every entry in order, entries wait for the first reader, the two
 * overflow policies, record and stream framing, end of stream and close,
 * error completions, readiness, and buffers going back to their engine.
 *
 * The hub is fed by a real engine streaming from the simulator's counter
 * generator (`sim:counter`): each 64-byte buffer holds eight little-endian
 * uint64 counters continuing 1, 2, 3 ... across buffers, so both the
 * sequence numbers in `records` and the bytes in `data` show any gap.
 *
 * Each case runs in a child process with a time limit, so a stream that
 * hangs or an assertion that fails costs that case alone.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <crtfs/crtfs.h>

#include "hub.h"
#include "testutil.h"

/* Bytes per output buffer: eight counters. */
#define ENTRY_SIZE 64
/* A case that runs longer than this has hung. */
#define CASE_TIMEOUT_S 120
#define READ_SIZE 65536

/* ---- the hub fed by a real engine ----------------------------------------- */

typedef struct {
    const char *spec; /* default sim:counter */
    guint requests;   /* default 4 */
    guint out_count;  /* default 8 */
    size_t out_size;  /* default ENTRY_SIZE */
    CrtOverflow overflow;
    /* out_size 0: every completion comes without a buffer. */
    gboolean no_buffers;
    /* A write stream (out_size 0) whose input callback asks
     * crt_hub_input_gate, as the channel's does; bufferless_cap as given. */
    gboolean write_stream;
    guint bufferless_cap;
    /* Keep completions in `captured` instead of pushing them, so a test
     * can push them itself one at a time. */
    gboolean capture;
} FixOpts;

typedef struct {
    CrtLoop *loop;
    CrtHub *hub;
    CrtEngine *engine;
    gboolean capture;
    gboolean no_buffers;
    GMutex lock;        /* guards the fields below */
    TuCounter notified; /* calls of the hub's notify callback */
    GQueue captured;    /* CrtOutput copies, capture mode */
} Fix;

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
static void fix_open(Fix *f, const FixOpts *o)
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
static void fix_start(Fix *f)
{
    crt_hub_begin_stream(f->hub);
    g_assert_cmpint(crt_engine_start(f->engine), ==, 0);
}

static CrtEngineStats engine_stats(Fix *f)
{
    CrtEngineStats st;

    crt_engine_get_stats(f->engine, &st);
    return st;
}

static CrtHubStats hub_stats(Fix *f)
{
    CrtHubStats st;

    crt_hub_get_stats(f->hub, &st);
    return st;
}

static void assert_pool_full(Fix *f)
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
static void fix_close(Fix *f)
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
static void assert_paused(Fix *f)
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

/* One record of `records`: the parsed header and a summary of the payload. */
typedef struct {
    guint64 seq;
    gint64 sec, nsec;
    char status[32];
    size_t length;
    guint64 first, last; /* first and last counter in the payload, if any */
} Rec;

/* Parses a `records` byte stream as it arrives, in any chunks.  Never
 * asserts (it runs on reader threads): the first malformation goes to
 * `error`. */
typedef struct {
    GByteArray *pending; /* bytes not parsed yet */
    GArray *recs;        /* Rec */
    char *error;
} Records;

static void records_init(Records *p)
{
    p->pending = g_byte_array_new();
    p->recs = g_array_new(FALSE, TRUE, sizeof(Rec));
    p->error = NULL;
}

static void records_clear(Records *p)
{
    g_byte_array_unref(p->pending);
    g_array_unref(p->recs);
    g_free(p->error);
}

static const Rec *rec_at(const Records *p, guint i)
{
    return &g_array_index(p->recs, Rec, i);
}

static guint64 records_last_seq(const Records *p)
{
    return p->recs->len ? rec_at(p, p->recs->len - 1)->seq : 0;
}

static gboolean parse_uint(const char *s, guint64 *out)
{
    return g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, out, NULL);
}

/* `SEQ SECONDS.NANOSECONDS STATUS LENGTH`, nothing more. */
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
             (strcmp(w[2], "ok") == 0 || (w[2][0] == 'E' && strlen(w[2]) > 1));
        for (const char *c = w[2]; ok && *c; c++)
            ok = g_ascii_isalnum(*c);
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

static guint64 counter_at(const guint8 *p)
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
static guint records_feed(Records *p, const char *buf, size_t n)
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
static char *records_verify(const Records *p, guint64 first_seq)
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

#define ASSERT_RECORDS(p, first_seq)                                                     \
    do {                                                                                 \
        char *records_problem_ = records_verify((p), (first_seq));                       \
        g_assert_cmpstr(records_problem_, ==, NULL);                                     \
    } while (0)

/* Checks a `data` byte stream of counters 1, 2, 3 ... in any chunks. */
typedef struct {
    guint8 part[8];
    size_t part_len;
    guint64 next;
    char *error;
} Counters;

static void counters_feed(Counters *c, const char *buf, size_t n)
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
static gssize read_wait(Fix *f, CrtHubReader *r, char *buf, size_t size,
                        CrtFraming framing, guint timeout_ms)
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
static char *read_records_until(Fix *f, CrtHubReader *r, Records *p, guint64 want,
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

#define READ_RECORDS_UNTIL(f, r, p, want, framing)                                       \
    do {                                                                                 \
        char *read_problem_ = read_records_until((f), (r), (p), (want), (framing));      \
        g_assert_cmpstr(read_problem_, ==, NULL);                                        \
    } while (0)

/* Read everything there is now (the stream must be stopped); returns what
 * the last read returned: -EAGAIN, or 0 for end of file. */
static gssize drain_records(CrtHubReader *r, Records *p)
{
    char *buf = g_malloc(READ_SIZE);
    gssize n;

    while ((n = crt_hub_read(r, buf, READ_SIZE, CRT_FRAMING_STREAM)) > 0)
        records_feed(p, buf, (size_t)n);
    g_free(buf);
    return n;
}

/* ---- one and many readers -------------------------------------------------- */

/* One reader of `records` in record framing gets every entry, one per read,
 * in order, with a well-formed header. */
static void test_one_reader_records(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    char *buf = g_malloc(READ_SIZE);

    fix_open(&f, &(FixOpts){0});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    while (records_last_seq(&p) < 3000 && !p.error) {
        gssize n = read_wait(&f, r, buf, READ_SIZE, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, >, ENTRY_SIZE);
        /* One read, one whole record. */
        g_assert_cmpuint(records_feed(&p, buf, (size_t)n), ==, 1);
        g_assert_cmpuint(p.pending->len, ==, 0);
    }
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(rec_at(&p, 0)->first, ==, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    assert_pool_full(&f);
    g_assert_cmpuint(hub_stats(&f).readers, ==, 0);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    records_clear(&p);
    g_free(buf);
    fix_close(&f);
}

/* One reader of `data` in stream framing gets the counters without a gap
 * and without a header. */
static void test_one_reader_data(void)
{
    Fix f;
    Counters c = {0};
    CrtHubReader *r;
    char *buf = g_malloc(1000); /* not a multiple of 8 on purpose */

    fix_open(&f, &(FixOpts){0});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    while (c.next < 20000 && !c.error) {
        gssize n = read_wait(&f, r, buf, 1000, CRT_FRAMING_STREAM, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, >, 0);
        counters_feed(&c, buf, (size_t)n);
    }
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).delivered, >=, 20000 / 8 - 1);
    crt_hub_reader_free(r);
    g_free(buf);
    fix_close(&f);
}

typedef struct {
    Fix *f;
    CrtHubReader *reader;
    guint64 want;
    Records recs;
    char *problem;
    GThread *thread;
} ReaderJob;

static gpointer reader_job_run(gpointer data)
{
    ReaderJob *j = data;

    j->problem =
        read_records_until(j->f, j->reader, &j->recs, j->want, CRT_FRAMING_STREAM);
    return NULL;
}

/* `n` readers open before the stream starts, each on its own thread; every
 * one gets the complete stream. */
static void run_readers(guint n, guint64 want)
{
    Fix f;
    ReaderJob *jobs = g_new0(ReaderJob, n);

    fix_open(&f, &(FixOpts){0});
    for (guint i = 0; i < n; i++) {
        jobs[i].f = &f;
        jobs[i].want = want;
        jobs[i].reader = crt_hub_reader_new(f.hub, TRUE);
        records_init(&jobs[i].recs);
    }
    g_assert_cmpuint(hub_stats(&f).readers, ==, n);
    fix_start(&f);
    for (guint i = 0; i < n; i++)
        jobs[i].thread = g_thread_new("reader", reader_job_run, &jobs[i]);
    for (guint i = 0; i < n; i++) {
        g_thread_join(jobs[i].thread);
        g_test_message("reader %u: %u records", i, jobs[i].recs.recs->len);
        g_assert_cmpstr(jobs[i].problem, ==, NULL);
        ASSERT_RECORDS(&jobs[i].recs, 1);
        g_assert_cmpuint(records_last_seq(&jobs[i].recs), >=, want);
    }
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    for (guint i = 0; i < n; i++) {
        crt_hub_reader_free(jobs[i].reader);
        records_clear(&jobs[i].recs);
    }
    assert_pool_full(&f);
    g_free(jobs);
    fix_close(&f);
}

static void test_two_readers(void)
{
    run_readers(2, 3000);
}

static void test_ten_readers(void)
{
    run_readers(10, 1000);
}

/* A reader that opens while another reads starts with the next entry and
 * then misses nothing. */
static void test_late_reader(void)
{
    Fix f;
    Records early;
    CrtHubReader *r1;
    ReaderJob late = {0};
    guint64 first;

    fix_open(&f, &(FixOpts){0});
    records_init(&early);
    records_init(&late.recs);
    r1 = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r1, &early, 100, CRT_FRAMING_STREAM);
    /* From now on both set the pace (block): the late one reads on a
     * thread. */
    late.f = &f;
    late.reader = crt_hub_reader_new(f.hub, TRUE);
    late.want = 1000;
    late.thread = g_thread_new("late", reader_job_run, &late);
    READ_RECORDS_UNTIL(&f, r1, &early, 1000, CRT_FRAMING_STREAM);
    g_thread_join(late.thread);
    g_assert_cmpstr(late.problem, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r1, &early);
    drain_records(late.reader, &late.recs);
    ASSERT_RECORDS(&early, 1);
    g_assert_cmpuint(late.recs.recs->len, >, 0);
    first = rec_at(&late.recs, 0)->seq;
    g_assert_cmpuint(first, >, 100);
    ASSERT_RECORDS(&late.recs, first);
    /* Both end at the newest entry. */
    g_assert_cmpuint(records_last_seq(&late.recs), ==, records_last_seq(&early));
    g_assert_cmpuint(records_last_seq(&early), ==, hub_stats(&f).last_seq);
    crt_hub_reader_free(r1);
    crt_hub_reader_free(late.reader);
    records_clear(&early);
    records_clear(&late.recs);
    fix_close(&f);
}

/* Entries completed while nobody reads are kept, up to the output pool (the
 * stream then pauses), and the next reader to open gets them all, first to
 * last, then the stream goes on. */
static void test_kept_without_reader(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpuint(engine_stats(&f).completed, ==, 8);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 8);
    g_assert_cmpuint(hub_stats(&f).readers, ==, 0);
    r = crt_hub_reader_new(f.hub, TRUE);
    READ_RECORDS_UNTIL(&f, r, &p, 500, CRT_FRAMING_RECORD);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(rec_at(&p, 0)->first, ==, 1);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* What a finished stream left behind is read to the end, then end of file;
 * with nothing left, a reader of a stopped stream waits for the next one. */
static void test_kept_after_end(void)
{
    Fix f;
    Records p;
    CrtHubReader *r, *empty;
    char buf[64];

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    r = crt_hub_reader_new(f.hub, TRUE);
    g_assert_cmpint(drain_records(r, &p), ==, 0);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(p.recs->len, ==, 8);
    /* End of file stays until the next stream. */
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    crt_hub_reader_free(r);
    empty = crt_hub_reader_new(f.hub, TRUE);
    g_assert_false(crt_hub_readable(empty));
    g_assert_cmpint(crt_hub_read(empty, buf, sizeof buf, CRT_FRAMING_RECORD), ==,
                    -EAGAIN);
    crt_hub_reader_free(empty);
    records_clear(&p);
    fix_close(&f);
}

/* ---- overflow -------------------------------------------------------------- */

/* `block`: a reader that does not read pauses the stream once the pool is
 * out; reading resumes it and nothing is lost. */
static void test_overflow_block(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 completed;

    fix_open(&f, &(FixOpts){.out_count = 8, .overflow = CRT_OVERFLOW_BLOCK});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    assert_paused(&f);
    completed = engine_stats(&f).completed;
    g_assert_cmpuint(completed, ==, 8);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 8);
    READ_RECORDS_UNTIL(&f, r, &p, 2000, CRT_FRAMING_STREAM);
    g_assert_cmpuint(engine_stats(&f).completed, >=, 2000);
    /* Stop reading again: it pauses again. */
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(records_last_seq(&p), ==, hub_stats(&f).last_seq);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    g_assert_cmpuint(crt_hub_reader_drops(r), ==, 0);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* `block`: the stream paused for the reader, then stopped; the reader
 * catches up while it is stopped (the buffers go home with no request at
 * the target), and the next start streams again. */
static void test_overflow_block_stop_read_start(void)
{
    Fix f;
    Records p, p2;
    CrtHubReader *r;
    guint64 second;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    records_init(&p2);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpint(drain_records(r, &p), ==, -EAGAIN);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpuint(records_last_seq(&p), ==, 8);
    assert_pool_full(&f);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p2, 108, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p2);
    second = rec_at(&p2, 0)->seq;
    /* The hub numbers entries: the stop's cancelled requests leave no gap. */
    g_assert_cmpuint(second, ==, records_last_seq(&p) + 1);
    ASSERT_RECORDS(&p2, second);
    g_assert_cmpuint(rec_at(&p2, 0)->first, ==, 8 * 8 + 1);
    crt_hub_reader_free(r);
    records_clear(&p);
    records_clear(&p2);
    fix_close(&f);
}

/* `block` with two readers: the slowest one sets the pace, and closing it
 * lets the other go on. */
static void test_overflow_block_slowest(void)
{
    Fix f;
    Records fast;
    CrtHubReader *rf, *rs;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&fast);
    rf = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, rf, &fast, 8, CRT_FRAMING_STREAM);
    assert_paused(&f);
    /* The fast reader has all there is; the slow one holds the pool. */
    g_assert_cmpint(crt_hub_read(rf, (char[64]){0}, 64, CRT_FRAMING_STREAM), ==, -EAGAIN);
    g_assert_cmpuint(engine_stats(&f).completed, ==, 8);
    crt_hub_reader_free(rs);
    READ_RECORDS_UNTIL(&f, rf, &fast, 1000, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(rf, &fast);
    ASSERT_RECORDS(&fast, 1);
    crt_hub_reader_free(rf);
    records_clear(&fast);
    fix_close(&f);
}

/* Sequence numbers missing from a reader's records, up to the newest. */
static guint64 records_missing(const Records *p, guint64 newest)
{
    return newest - p->recs->len;
}

/* Strictly increasing sequence numbers, whatever the gaps. */
static void assert_increasing(const Records *p)
{
    g_assert_cmpstr(p->error, ==, NULL);
    g_assert_cmpuint(p->pending->len, ==, 0);
    for (guint i = 1; i < p->recs->len; i++)
        g_assert_cmpuint(rec_at(p, i)->seq, >, rec_at(p, i - 1)->seq);
}

/* `drop-oldest`: a stalled reader and an active one.  The active reader
 * loses nothing; the stalled one skips its oldest entries, and each skip is
 * counted and shows as a gap in its records.  The stream never pauses. */
static void test_overflow_drop_oldest(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    guint64 newest;

    /* Rate-limited, so the active reader keeps up on a slow machine: it
     * would have to fall 32 entries (64 ms) behind to lose one. */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=500",
                            .out_count = 32,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, ra, &active, 300, CRT_FRAMING_STREAM);
    g_assert_cmpuint(engine_stats(&f).slots_waiting, ==, 0);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    newest = hub_stats(&f).last_seq;

    ASSERT_RECORDS(&active, 1);
    g_assert_cmpuint(records_last_seq(&active), ==, newest);
    g_assert_cmpuint(crt_hub_reader_drops(ra), ==, 0);

    assert_increasing(&stalled);
    g_assert_cmpuint(stalled.recs->len, >, 0);
    g_assert_cmpuint(stalled.recs->len, <=, 32);
    g_assert_cmpuint(records_last_seq(&stalled), ==, newest);
    g_assert_cmpuint(rec_at(&stalled, 0)->seq, >, 1);
    g_assert_cmpuint(crt_hub_reader_drops(rs), >, 0);
    g_assert_cmpuint(crt_hub_reader_drops(rs), ==, records_missing(&stalled, newest));
    g_assert_cmpuint(hub_stats(&f).dropped, ==, crt_hub_reader_drops(rs));

    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* `drop-oldest` with nobody reading: the oldest kept entries go (counted
 * in the hub's stats, no reader's), the stream goes on, and the next reader
 * gets the newest ones. */
static void test_overflow_drop_oldest_kept(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 newest, first;

    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=1000",
                            .out_count = 16,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&p);
    fix_start(&f);
    TU_WAIT_FOR(engine_stats(&f).completed >= 100);
    g_assert_cmpuint(engine_stats(&f).slots_waiting, ==, 0);
    g_assert_cmpuint(hub_stats(&f).dropped, >, 0);
    g_assert_cmpuint(hub_stats(&f).queued, <=, 16);
    r = crt_hub_reader_new(f.hub, TRUE);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    newest = hub_stats(&f).last_seq;
    g_assert_cmpuint(p.recs->len, >, 0);
    first = rec_at(&p, 0)->seq;
    g_assert_cmpuint(first, >, 1);
    g_assert_cmpuint(records_last_seq(&p), ==, newest);
    assert_increasing(&p);
    /* Dropped while kept, or from under the reader before the stop. */
    g_assert_cmpuint(hub_stats(&f).dropped, ==, records_missing(&p, newest));
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* `drop-oldest` when a failed completion (which carries no buffer) is the
 * stalled reader's oldest entry: the policy must still make room, so the
 * active reader goes on getting entries. */
static void test_overflow_drop_oldest_error_entry(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    char *problem;

    /* 64 buffers at 1000/s: the active reader keeps up even under a
     * sanitizer on a loaded machine. */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=1000 fail=2 errno=EPROTO",
                            .out_count = 64,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    problem = read_records_until(&f, ra, &active, 200, CRT_FRAMING_STREAM);
    if (problem)
        g_test_message(
            "engine: completed %" G_GUINT64_FORMAT " failed %" G_GUINT64_FORMAT
            " slots_waiting %u out_pool_free %u; hub: queued %" G_GUINT64_FORMAT
            " dropped %" G_GUINT64_FORMAT,
            engine_stats(&f).completed, engine_stats(&f).failed,
            engine_stats(&f).slots_waiting, engine_stats(&f).out_pool_free,
            hub_stats(&f).queued, hub_stats(&f).dropped);
    g_assert_cmpstr(problem, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    ASSERT_RECORDS(&active, 1);
    assert_increasing(&stalled);
    g_assert_cmpuint(crt_hub_reader_drops(rs), ==,
                     records_missing(&stalled, hub_stats(&f).last_seq));
    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* `drop-oldest` when the stalled reader stopped in the middle of an entry:
 * what it reads stays well-formed `records` (a header, then exactly LENGTH
 * bytes), whatever it skips. */
static void test_overflow_drop_oldest_partial_read(void)
{
    Fix f;
    Records active, stalled;
    CrtHubReader *ra, *rs;
    char head[10];

    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=1000",
                            .out_count = 16,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    records_init(&active);
    records_init(&stalled);
    ra = crt_hub_reader_new(f.hub, TRUE);
    rs = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    /* The stalled reader takes the first 10 bytes of the first header. */
    g_assert_cmpint(
        read_wait(&f, rs, head, sizeof head, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS), ==,
        sizeof head);
    records_feed(&stalled, head, sizeof head);
    READ_RECORDS_UNTIL(&f, ra, &active, 200, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(ra, &active);
    drain_records(rs, &stalled);
    ASSERT_RECORDS(&active, 1);
    g_test_message("stalled reader: drops %" G_GUINT64_FORMAT, crt_hub_reader_drops(rs));
    g_assert_cmpuint(crt_hub_reader_drops(rs), >, 0);
    assert_increasing(&stalled);
    g_assert_cmpuint(rec_at(&stalled, 0)->seq, ==, 1);
    crt_hub_reader_free(ra);
    crt_hub_reader_free(rs);
    records_clear(&active);
    records_clear(&stalled);
    fix_close(&f);
}

/* ---- framing --------------------------------------------------------------- */

/* Open a reader, start, and wait until the pool is all in the hub. */
static CrtHubReader *paused_stream(Fix *f, gboolean records)
{
    CrtHubReader *r;

    fix_open(f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f->hub, records);
    fix_start(f);
    assert_paused(f);
    return r;
}

/* `record`: one read returns at most one buffer; the rest of a partly read
 * buffer comes next, on its own. */
static void test_framing_record(void)
{
    Fix f;
    Counters c = {0};
    CrtHubReader *r = paused_stream(&f, FALSE);
    char buf[1000];

    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, ENTRY_SIZE);
    counters_feed(&c, buf, ENTRY_SIZE);
    g_assert_cmpint(crt_hub_read(r, buf, 10, CRT_FRAMING_RECORD), ==, 10);
    counters_feed(&c, buf, 10);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==,
                    ENTRY_SIZE - 10);
    counters_feed(&c, buf, ENTRY_SIZE - 10);
    for (int i = 0; i < 20; i++) {
        gssize n =
            read_wait(&f, r, buf, sizeof buf, CRT_FRAMING_RECORD, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, ==, ENTRY_SIZE);
        counters_feed(&c, buf, (size_t)n);
    }
    g_assert_cmpstr(c.error, ==, NULL);
    g_assert_cmpuint(c.next, ==, 22 * 8 + 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* `stream`: a read packs as many whole or partial buffers as fit. */
static void test_framing_stream(void)
{
    Fix f;
    Counters c = {0};
    CrtHubReader *r = paused_stream(&f, FALSE);
    char buf[4096];
    gssize n;

    /* Half of one buffer, then the rest of it with two more and a half. */
    g_assert_cmpint(crt_hub_read(r, buf, 32, CRT_FRAMING_STREAM), ==, 32);
    counters_feed(&c, buf, 32);
    g_assert_cmpint(crt_hub_read(r, buf, 32 + 2 * ENTRY_SIZE + 32, CRT_FRAMING_STREAM),
                    ==, 32 + 2 * ENTRY_SIZE + 32);
    counters_feed(&c, buf, 32 + 2 * ENTRY_SIZE + 32);
    /* At least the four and a half buffers still queued. */
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM);
    g_assert_cmpint(n, >=, 4 * ENTRY_SIZE + 32);
    counters_feed(&c, buf, (size_t)n);
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* `records` in both framings: a header before each buffer; `record` framing
 * returns one header and its buffer (a partly read header goes on next),
 * `stream` framing packs whole records. */
static void test_framing_records(void)
{
    Fix f;
    Records p;
    CrtHubReader *r = paused_stream(&f, TRUE);
    char buf[4096];
    gssize n;

    records_init(&p);
    g_assert_cmpint(crt_hub_read(r, buf, 5, CRT_FRAMING_RECORD), ==, 5);
    g_assert_cmpuint(records_feed(&p, buf, 5), ==, 0);
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD);
    g_assert_cmpuint(records_feed(&p, buf, (size_t)n), ==, 1);
    g_assert_cmpuint(p.pending->len, ==, 0);
    n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_STREAM);
    g_assert_cmpuint(records_feed(&p, buf, (size_t)n), >=, 7);
    g_assert_cmpuint(p.pending->len, ==, 0);
    ASSERT_RECORDS(&p, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* ---- reading at an offset: continuing and replaying ----------------------- */

/* Concatenate what crt_hub_read_at described. */
static GByteArray *iov_bytes(const struct iovec *iov, int n)
{
    GByteArray *b = g_byte_array_new();

    for (int i = 0; i < n; i++)
        g_byte_array_append(b, iov[i].iov_base, (guint)iov[i].iov_len);
    return b;
}

/* crt_hub_read_at at `off`, its bytes in a new array (NULL when it
 * returned no bytes; *ret its return value), then crt_hub_read_done as the
 * filesystem calls it once the reply has left. */
static GByteArray *read_at(CrtHubReader *r, guint64 off, size_t size, CrtFraming framing,
                           gssize *ret)
{
    struct iovec iov[CRT_HUB_MAX_IOV];
    GByteArray *bytes;
    int niov;

    *ret = crt_hub_read_at(r, off, size, framing, iov, &niov);
    if (*ret <= 0)
        return NULL;
    g_assert_cmpint(niov, >, 0);
    g_assert_cmpint(niov, <=, CRT_HUB_MAX_IOV);
    bytes = iov_bytes(iov, niov);
    crt_hub_read_done(r);
    return bytes;
}

static guint64 window_end(CrtHubReader *r)
{
    guint64 start, end;

    crt_hub_reader_window(r, CRT_FRAMING_STREAM, &start, &end);
    return end;
}

/* A read at the position describes exactly what crt_hub_read copies for
 * another reader, headers included, and moves the position by its bytes. */
static void test_read_at_continues(void)
{
    Fix f;
    CrtHubReader *a, *b;
    char buf[4096];
    gssize n, m;
    GByteArray *seen;

    fix_open(&f, &(FixOpts){.out_count = 8});
    a = crt_hub_reader_new(f.hub, TRUE);
    b = crt_hub_reader_new(f.hub, TRUE);
    g_assert_null(read_at(a, 0, sizeof buf, CRT_FRAMING_RECORD, &n));
    g_assert_cmpint(n, ==, -EAGAIN);
    fix_start(&f);
    assert_paused(&f);
    for (int round = 0; round < 3; round++) {
        CrtFraming framing = round == 1 ? CRT_FRAMING_STREAM : CRT_FRAMING_RECORD;
        size_t size = round == 2 ? 10 : sizeof buf;
        guint64 pos = window_end(a);

        TU_WAIT_FOR(crt_hub_readable(a) && crt_hub_readable(b));
        seen = read_at(a, pos, size, framing, &n);
        m = crt_hub_read(b, buf, size, framing);
        g_assert_cmpint(n, >, 0);
        g_assert_cmpint(n, ==, m);
        g_assert_cmpmem(seen->data, seen->len, buf, (size_t)m);
        g_assert_cmpuint(window_end(a), ==, pos + (guint64)n);
        g_byte_array_unref(seen);
    }
    crt_hub_reader_free(a);
    crt_hub_reader_free(b);
    fix_close(&f);
}

/* Small buffers: a stream-framing read packs them, copied into the
 * reader's window (at most two pieces); every counter arrives once. */
static void test_read_at_packs_small(void)
{
    Fix f;
    CrtHubReader *r;
    struct iovec iov[CRT_HUB_MAX_IOV];
    Counters c = {0};
    int niov;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    n = crt_hub_read_at(r, 0, 4096, CRT_FRAMING_STREAM, iov, &niov);
    g_assert_cmpint(n, ==, 8 * ENTRY_SIZE);
    g_assert_cmpint(niov, <=, 2);
    for (int i = 0; i < niov; i++)
        counters_feed(&c, iov[i].iov_base, iov[i].iov_len);
    /* The buffers went back at once: the pool refills. */
    TU_WAIT_FOR(hub_stats(&f).queued == 8);
    n = crt_hub_read_at(r, (guint64)n, 100, CRT_FRAMING_STREAM, iov, &niov);
    g_assert_cmpint(n, ==, 100);
    for (int i = 0; i < niov; i++)
        counters_feed(&c, iov[i].iov_base, iov[i].iov_len);
    g_assert_cmpstr(c.error, ==, NULL);
    g_assert_cmpuint(c.next, ==, 8 * 8 + 100 / 8 + 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* After copied reads a seek back replays the bytes from the reader's
 * window without moving it; offsets outside the window are -ESPIPE, and
 * nothing is lost or repeated afterwards. */
static void test_replay_window(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *all = g_byte_array_new(), *got;
    Counters c = {0};
    guint64 pos = 0;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    /* More than the window, in reads of up to 4 KiB. */
    while (pos < 2 * CRT_HUB_WINDOW) {
        TU_WAIT_FOR(crt_hub_readable(r));
        got = read_at(r, pos, 4096, CRT_FRAMING_STREAM, &n);
        g_assert_nonnull(got);
        g_byte_array_append(all, got->data, got->len);
        g_byte_array_unref(got);
        pos += (guint64)n;
    }
    g_assert_cmpuint(window_end(r), ==, pos);
    /* The last read's bytes, part of them, and the whole window. */
    got = read_at(r, pos - 100, 4096, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, 100);
    g_assert_cmpmem(got->data, got->len, all->data + pos - 100, 100);
    g_byte_array_unref(got);
    got = read_at(r, pos - CRT_HUB_WINDOW, 1000, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, 1000);
    g_assert_cmpmem(got->data, got->len, all->data + pos - CRT_HUB_WINDOW, 1000);
    g_byte_array_unref(got);
    g_assert_cmpuint(window_end(r), ==, pos);
    /* Before the window, and after the position. */
    g_assert_null(read_at(r, pos - CRT_HUB_WINDOW - 1, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    g_assert_null(read_at(r, 0, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    g_assert_null(read_at(r, pos + 1, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    /* The stream goes on right after the position. */
    TU_WAIT_FOR(crt_hub_readable(r));
    got = read_at(r, pos, 4096, CRT_FRAMING_STREAM, &n);
    g_assert_nonnull(got);
    g_byte_array_append(all, got->data, got->len);
    g_byte_array_unref(got);
    counters_feed(&c, (const char *)all->data, all->len);
    g_assert_cmpstr(c.error, ==, NULL);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    g_byte_array_unref(all);
    fix_close(&f);
}

/* Record framing replays only within the entry the last read came from (a
 * read never spans two records); stream framing the whole window. */
static void test_replay_record_framing(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *got;
    gssize n;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    got = read_at(r, 0, 3 * ENTRY_SIZE, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, 3 * ENTRY_SIZE);
    g_byte_array_unref(got);
    got = read_at(r, 3 * ENTRY_SIZE - 10, 4096, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, 10);
    g_byte_array_unref(got);
    got = read_at(r, 2 * ENTRY_SIZE, 4096, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE);
    g_byte_array_unref(got);
    g_assert_null(read_at(r, 2 * ENTRY_SIZE - 1, 4096, CRT_FRAMING_RECORD, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    got = read_at(r, 2 * ENTRY_SIZE - 1, 4096, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE + 1);
    g_byte_array_unref(got);
    /* Half an entry in record framing: the window is that half. */
    got = read_at(r, 3 * ENTRY_SIZE, ENTRY_SIZE / 2, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE / 2);
    g_byte_array_unref(got);
    got = read_at(r, 3 * ENTRY_SIZE, 4096, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, ENTRY_SIZE / 2);
    g_byte_array_unref(got);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* Large buffers go out zero-copy and the window keeps them (the engine gets
 * them back at the next read at the position); a replay hands out the same
 * bytes, in `records` with the same header line. */
static void replay_zero_copy(gboolean records)
{
    const size_t big = 32 * 1024;
    Fix f;
    CrtHubReader *r, *twin;
    GByteArray *first, *again;
    char *copy = g_malloc(4 * big);
    guint64 completed;
    gssize n, m;

    fix_open(&f, &(FixOpts){.out_count = 4, .requests = 2, .out_size = big});
    r = crt_hub_reader_new(f.hub, records);
    twin = crt_hub_reader_new(f.hub, records);
    fix_start(&f);
    assert_paused(&f);
    /* Two of the four buffers (one for `records`, a read of which holds one
     * entry and its header line). */
    first = read_at(r, 0, 2 * big, CRT_FRAMING_STREAM, &n);
    g_assert_cmpint(n, >=, (gssize)big);
    m = crt_hub_read(twin, copy, (size_t)n, CRT_FRAMING_STREAM);
    g_assert_cmpint(m, ==, n);
    g_assert_cmpmem(first->data, first->len, copy, (size_t)m);
    /* The twin let go; the window still holds what it read, so the engine
     * gets no buffer back. */
    assert_paused(&f);
    again = read_at(r, (guint64)n - 1000, 4096, CRT_FRAMING_STREAM, &m);
    g_assert_cmpint(m, ==, 1000);
    g_assert_cmpmem(again->data, again->len, first->data + n - 1000, 1000);
    g_byte_array_unref(again);
    again = read_at(r, 0, 2 * big, CRT_FRAMING_STREAM, &m);
    g_assert_cmpint(m, ==, n);
    g_assert_cmpmem(again->data, again->len, first->data, first->len);
    g_byte_array_unref(again);
    /* The next read at the position lets the window's buffers go. */
    completed = engine_stats(&f).completed;
    again = read_at(r, (guint64)n, 10, CRT_FRAMING_STREAM, &m);
    g_assert_cmpint(m, ==, 10);
    g_byte_array_unref(again);
    g_assert_cmpint(crt_hub_read(twin, copy, 10, CRT_FRAMING_STREAM), ==, 10);
    TU_WAIT_FOR(engine_stats(&f).completed > completed);
    g_assert_null(read_at(r, 0, 10, CRT_FRAMING_STREAM, &m));
    g_assert_cmpint(m, ==, -ESPIPE);
    g_byte_array_unref(first);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    crt_hub_reader_free(twin);
    g_free(copy);
    fix_close(&f);
}

static void test_replay_zero_copy_data(void)
{
    replay_zero_copy(FALSE);
}

static void test_replay_zero_copy_records(void)
{
    replay_zero_copy(TRUE);
}

/* An end of file empties the window: a seek back over it is -ESPIPE; the
 * end of file stays until the next stream. */
static void test_replay_end_of_file(void)
{
    Fix f;
    CrtHubReader *r;
    GByteArray *got;
    gssize n;
    guint64 pos = 0;

    fix_open(&f, &(FixOpts){.out_count = 8});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    while ((got = read_at(r, pos, 4096, CRT_FRAMING_STREAM, &n))) {
        pos += (guint64)n;
        g_byte_array_unref(got);
    }
    g_assert_cmpint(n, ==, 0);
    g_assert_cmpuint(pos, ==, 8 * ENTRY_SIZE);
    g_assert_null(read_at(r, pos - 1, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, -ESPIPE);
    g_assert_null(read_at(r, pos, 10, CRT_FRAMING_STREAM, &n));
    g_assert_cmpint(n, ==, 0);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* drop-oldest with a window that keeps an entry: the kept entry is not
 * dropped (the replay still works), the reader's drops are counted as the
 * hub counts them, and what it reads next continues in order. */
static void test_replay_drop_oldest(void)
{
    const size_t big = 32 * 1024;
    Fix f;
    CrtHubReader *r;
    GByteArray *first, *again;
    gssize n, m;

    fix_open(&f, &(FixOpts){.out_count = 4,
                            .requests = 1,
                            .out_size = big,
                            .overflow = CRT_OVERFLOW_DROP_OLDEST});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    TU_WAIT_FOR(crt_hub_readable(r));
    first = read_at(r, 0, big, CRT_FRAMING_RECORD, &n);
    g_assert_cmpint(n, ==, (gssize)big);
    TU_WAIT_FOR(hub_stats(&f).dropped >= 10);
    again = read_at(r, 0, big, CRT_FRAMING_RECORD, &m);
    g_assert_cmpint(m, ==, n);
    g_assert_cmpmem(again->data, again->len, first->data, first->len);
    g_byte_array_unref(again);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(crt_hub_reader_drops(r), ==, hub_stats(&f).dropped);
    again = read_at(r, (guint64)n, big, CRT_FRAMING_RECORD, &m);
    g_assert_cmpint(m, ==, (gssize)big);
    g_assert_cmpuint(counter_at(again->data), >, counter_at(first->data + big - 8) + 1);
    g_byte_array_unref(again);
    g_byte_array_unref(first);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* ---- end of stream, close, errors ----------------------------------------- */

/* crt_hub_end_stream: a reader that has read everything gets end of file
 * once, then -EAGAIN again; one with entries left gets them first; a new
 * stream brings data again. */
/* A reader that has not read all of a stream when the next one starts gets
 * its end of file where the first ended, before the second's entries (found
 * by bench/soak: stop-wait and start in quick succession). */
static void test_end_of_stream_before_next(void)
{
    Fix f;
    Records p, q;
    CrtHubReader *r;
    guint64 last_first;
    gssize n;

    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=2000", .out_count = 64});
    records_init(&p);
    records_init(&q);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).queued >= 10); /* r reads nothing yet */
    crt_engine_stop_and_wait(f.engine);
    crt_hub_end_stream(f.hub);
    last_first = hub_stats(&f).last_seq;
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).last_seq >= last_first + 10);
    /* Now r reads: the first stream, end of file, then the second. */
    n = drain_records(r, &p);
    g_assert_cmpint(n, ==, 0);
    g_assert_cmpuint(records_last_seq(&p), ==, last_first);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpint(drain_records(r, &q), ==, -EAGAIN);
    g_assert_cmpuint(q.recs->len, >, 0);
    g_assert_cmpuint(rec_at(&q, 0)->seq, ==, last_first + 1);
    crt_hub_reader_free(r);
    records_clear(&p);
    records_clear(&q);
    fix_close(&f);
}

static void test_end_of_stream(void)
{
    Fix f;
    Records p, p2, q;
    CrtHubReader *r, *slow, *later;
    char buf[256];
    guint64 last, second;

    /* Slow enough that the stop never finds the pool exhausted (see
     * /hub/overflow/block-stop-read-start for that case). */
    fix_open(&f, &(FixOpts){.spec = "sim:counter rate=2000", .out_count = 64});
    records_init(&p);
    records_init(&p2);
    records_init(&q);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p, 50, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpint(drain_records(r, &p), ==, -EAGAIN);
    slow = crt_hub_reader_new(f.hub, TRUE); /* opens after the last entry */
    crt_hub_end_stream(f.hub);
    g_assert_true(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    /* End of file stays, as on a pipe, until the next stream begins. */
    g_assert_true(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(slow, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(slow, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    /* A reader opened after the stream ended waits for the next one. */
    later = crt_hub_reader_new(f.hub, TRUE);
    g_assert_false(crt_hub_readable(later));
    g_assert_cmpint(crt_hub_read(later, buf, sizeof buf, CRT_FRAMING_RECORD), ==,
                    -EAGAIN);
    crt_hub_reader_free(later);

    /* A second stream: its entries come, numbered on (the requests the stop
     * cancelled took numbers too), the counters without a gap. */
    ASSERT_RECORDS(&p, 1);
    last = records_last_seq(&p);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p2, last + 50, CRT_FRAMING_STREAM);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p2);
    g_assert_cmpuint(p2.recs->len, >, 0);
    second = rec_at(&p2, 0)->seq;
    g_assert_cmpuint(second, >, last);
    ASSERT_RECORDS(&p2, second);
    g_assert_cmpuint(rec_at(&p2, 0)->first, ==, rec_at(&p, p.recs->len - 1)->last + 1);
    /* `slow` has not read the second stream: data first, then end of file. */
    crt_hub_end_stream(f.hub);
    g_assert_cmpint(drain_records(slow, &q), ==, 0);
    ASSERT_RECORDS(&q, second);
    g_assert_cmpuint(records_last_seq(&q), ==, records_last_seq(&p2));
    g_assert_cmpint(crt_hub_read(slow, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    /* A new stream begins (before its engine runs): the readers wait for
     * its data. */
    crt_hub_begin_stream(f.hub);
    g_assert_false(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, -EAGAIN);
    crt_hub_end_stream(f.hub);
    crt_hub_reader_free(r);
    crt_hub_reader_free(slow);
    records_clear(&p);
    records_clear(&p2);
    records_clear(&q);
    fix_close(&f);
}

/* crt_hub_close: every read ends, for good, after what is queued; later
 * completions are not entries (the stream runs on, reaching nobody). */
static void test_close(void)
{
    Fix f;
    Records p;
    CrtHubReader *r, *idle;
    char buf[256];
    guint64 last_seq, completed;

    fix_open(&f, &(FixOpts){.out_count = 8});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    idle = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    /* `idle` holds every entry: the stream pauses after the pool's worth. */
    READ_RECORDS_UNTIL(&f, r, &p, 8, CRT_FRAMING_STREAM);
    assert_paused(&f);
    crt_hub_close(f.hub);
    g_assert_cmpint(drain_records(r, &p), ==, 0);
    ASSERT_RECORDS(&p, 1);
    for (int i = 0; i < 3; i++) {
        g_assert_true(crt_hub_readable(r));
        g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    }
    /* The idle reader gets its queued data first, then end of file. */
    g_assert_true(crt_hub_readable(idle));
    g_assert_cmpint(crt_hub_read(idle, buf, sizeof buf, CRT_FRAMING_STREAM), >, 0);
    while (crt_hub_read(idle, buf, sizeof buf, CRT_FRAMING_STREAM) > 0)
        ;
    g_assert_cmpint(crt_hub_read(idle, buf, sizeof buf, CRT_FRAMING_STREAM), ==, 0);
    g_assert_true(crt_hub_readable(idle));

    /* The buffers are home, the stream resumes and reaches nobody. */
    last_seq = hub_stats(&f).last_seq;
    completed = engine_stats(&f).completed;
    TU_WAIT_FOR(engine_stats(&f).completed >= completed + 100);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).last_seq, ==, last_seq);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, 0);
    assert_pool_full(&f);
    crt_hub_reader_free(r);
    crt_hub_reader_free(idle);
    records_clear(&p);
    fix_close(&f);
}

/* An error completion is an entry: `records` shows it with the errno's
 * name and length 0, `data` skips it and the bytes run on. */
static void test_error_completions(void)
{
    Fix f;
    Records p;
    Counters c = {0};
    CrtHubReader *rr, *rd;
    char buf[4096];
    guint errors = 0;

    fix_open(&f, &(FixOpts){.spec = "sim:counter fail=3 errno=EPROTO", .out_count = 64});
    records_init(&p);
    rr = crt_hub_reader_new(f.hub, TRUE);
    rd = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    /* Each reader holds the other back by at most the pool (block). */
    READ_RECORDS_UNTIL(&f, rr, &p, 50, CRT_FRAMING_RECORD);
    while (c.next < 45 * 8) {
        gssize n =
            read_wait(&f, rd, buf, sizeof buf, CRT_FRAMING_STREAM, TU_EVENTUALLY_MS);

        g_assert_cmpint(n, >, 0);
        counters_feed(&c, buf, (size_t)n);
    }
    g_assert_cmpstr(c.error, ==, NULL);
    READ_RECORDS_UNTIL(&f, rr, &p, 100, CRT_FRAMING_RECORD);
    ASSERT_RECORDS(&p, 1);
    for (guint i = 0; i < p.recs->len; i++) {
        const Rec *rec = rec_at(&p, i);

        if (strcmp(rec->status, "ok") != 0) {
            g_assert_cmpstr(rec->status, ==, "EPROTO");
            g_assert_cmpuint(rec->length, ==, 0);
            errors++;
        }
    }
    g_assert_cmpuint(errors, ==, 1);
    g_assert_cmpuint(engine_stats(&f).failed, ==, 1);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(rr);
    crt_hub_reader_free(rd);
    records_clear(&p);
    fix_close(&f);
}

/* Completions without a buffer (out_size 0) are entries the hub allocates
 * and frees itself: a reader may free one the moment the push lets go of
 * the lock, and the push must not look at it after that. */
static void test_bufferless_entries(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    fix_open(&f, &(FixOpts){.no_buffers = TRUE, .requests = 1});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p, 200000, CRT_FRAMING_RECORD);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    g_assert_cmpstr(p.error, ==, NULL);
    /* Bufferless completions never pause the stream; a reader more than
     * 4096 behind loses the oldest, counted as drops, so the sequence may
     * have gaps only when drops were counted. */
    for (guint i = 0; i < p.recs->len; i++) {
        if (i > 0)
            g_assert_cmpuint(rec_at(&p, i)->seq, >, rec_at(&p, i - 1)->seq);
        if (crt_hub_reader_drops(r) == 0)
            g_assert_cmpuint(rec_at(&p, i)->seq, ==, i + 1);
        g_assert_cmpstr(rec_at(&p, i)->status, ==, "ok");
        g_assert_cmpuint(rec_at(&p, i)->length, ==, 0);
    }
    g_assert_cmpuint(p.recs->len + crt_hub_reader_drops(r), ==,
                     rec_at(&p, p.recs->len - 1)->seq);
    crt_hub_reader_free(r);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    records_clear(&p);
    fix_close(&f);
}

/* Entries without a buffer kept for a future reader stay bounded, as the
 * output pool bounds the others, instead of growing with every completion
 * (a write stream, or out_size 0, with nobody reading). */
static void test_bufferless_kept_bounded(void)
{
    Fix f;

    fix_open(&f, &(FixOpts){.no_buffers = TRUE, .requests = 1});
    fix_start(&f);
    TU_WAIT_FOR(engine_stats(&f).completed >= 1000);
    g_usleep(300 * 1000);
    g_test_message("completed %" G_GUINT64_FORMAT ", kept %" G_GUINT64_FORMAT,
                   engine_stats(&f).completed, hub_stats(&f).queued);
    g_assert_cmpuint(hub_stats(&f).queued, <=, 65536);
    fix_close(&f);
}

/* Under `block`, a write stream (bufferless completions) waits for its
 * slowest reader as a read stream does: a reader that reads slowly loses
 * nothing, and the hub never holds much more than the cap. */
static void test_bufferless_block_paces(void)
{
    const guint cap = 16, requests = 4;
    Fix f;
    Records p;
    CrtHubReader *r;
    guint64 most_queued = 0;

    fix_open(&f, &(FixOpts){.write_stream = TRUE,
                            .requests = requests,
                            .bufferless_cap = cap,
                            .spec = "sim:zero"});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    /* Slow: one record at a time with pauses, while the target could
     * complete millions a second. */
    gint64 deadline = g_get_monotonic_time() + TU_EVENTUALLY_MS * 1000;

    while (p.recs->len < 300 && g_get_monotonic_time() < deadline) {
        char buf[256];
        gssize n = crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD);

        most_queued = MAX(most_queued, hub_stats(&f).queued);
        if (n > 0)
            records_feed(&p, buf, (size_t)n);
        g_usleep(n > 0 && p.recs->len % 50 == 0 ? 20000 : 200);
    }
    g_assert_cmpuint(p.recs->len, >=, 300);
    crt_engine_stop_and_wait(f.engine);
    drain_records(r, &p);
    g_assert_cmpstr(p.error, ==, NULL);
    g_test_message("records %u, most queued %" G_GUINT64_FORMAT, p.recs->len,
                   most_queued);
    g_assert_cmpuint(crt_hub_reader_drops(r), ==, 0);
    g_assert_cmpuint(hub_stats(&f).dropped, ==, 0);
    for (guint i = 0; i < p.recs->len; i++)
        g_assert_cmpuint(rec_at(&p, i)->seq, ==, i + 1);
    g_assert_cmpuint(most_queued, <=, cap + requests);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* With nobody reading, a write stream under `block` does not pause (nobody
 * would ever let it go on): the newest `cap` completions are kept for the
 * next reader, the older ones are counted as drops. */
static void test_bufferless_no_reader_flows(void)
{
    const guint cap = 16;
    Fix f;

    fix_open(&f,
             &(FixOpts){.write_stream = TRUE, .bufferless_cap = cap, .spec = "sim:zero"});
    fix_start(&f);
    TU_WAIT_FOR(engine_stats(&f).completed >= 1000);
    g_assert_cmpuint(hub_stats(&f).queued, <=, cap);
    g_assert_cmpuint(hub_stats(&f).dropped, >=, 1000 - cap);
    fix_close(&f);
}

/* A reader that goes away lets a paused write stream go on. */
static void test_bufferless_reader_leaves(void)
{
    const guint cap = 8;
    Fix f;
    CrtHubReader *r;
    guint64 before;

    fix_open(&f,
             &(FixOpts){.write_stream = TRUE, .bufferless_cap = cap, .spec = "sim:zero"});
    r = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    TU_WAIT_FOR(hub_stats(&f).queued >= cap);
    g_usleep(100 * 1000);
    before = engine_stats(&f).completed;
    g_usleep(100 * 1000);
    g_assert_cmpuint(engine_stats(&f).completed, ==, before); /* paused */
    crt_hub_reader_free(r);
    TU_WAIT_FOR(engine_stats(&f).completed >= before + 1000);
    fix_close(&f);
}

/* The end of a stream the target reported (sim limit: -ENODATA) is an entry
 * too, named in `records`. */
static void test_error_end_of_data(void)
{
    Fix f;
    Records p;
    CrtHubReader *r;

    fix_open(&f, &(FixOpts){.spec = "sim:counter limit=20", .requests = 1});
    records_init(&p);
    r = crt_hub_reader_new(f.hub, TRUE);
    fix_start(&f);
    READ_RECORDS_UNTIL(&f, r, &p, 21, CRT_FRAMING_STREAM);
    ASSERT_RECORDS(&p, 1);
    g_assert_cmpstr(rec_at(&p, 20)->status, ==, "ENODATA");
    g_assert_cmpuint(rec_at(&p, 20)->length, ==, 0);
    crt_engine_stop_and_wait(f.engine);
    crt_hub_reader_free(r);
    records_clear(&p);
    fix_close(&f);
}

/* ---- readiness, notify, buffers -------------------------------------------- */

static CrtOutput *take_captured(Fix *f, gboolean with_buffer)
{
    CrtOutput *found = NULL;

    g_mutex_lock(&f->lock);
    for (GList *l = f->captured.head; l && !found; l = l->next) {
        CrtOutput *o = l->data;

        if ((o->buffer != NULL) == with_buffer) {
            found = o;
            g_queue_delete_link(&f->captured, l);
        }
    }
    g_mutex_unlock(&f->lock);
    g_assert_nonnull(found);
    return found;
}

static guint captured_count(Fix *f)
{
    guint n;

    g_mutex_lock(&f->lock);
    n = f->captured.length;
    g_mutex_unlock(&f->lock);
    return n;
}

static void push_captured(Fix *f, CrtOutput *out)
{
    CrtDisposition d = crt_hub_push(f->hub, f->engine, out);

    g_assert_cmpint(d, ==,
                    out->buffer ? CRT_DISPOSITION_CLIENT_CONTINUE
                                : CRT_DISPOSITION_ENGINE_CONTINUE);
    g_free(out);
}

/* ASSERT_READY's `result` for "some bytes". */
#define SOME_BYTES 1

#define ASSERT_READY(r, ready, result)                                                   \
    do {                                                                                 \
        char ready_buf_[256];                                                            \
        g_assert_cmpint(crt_hub_readable(r), ==, (ready));                               \
        if ((result) == SOME_BYTES)                                                      \
            g_assert_cmpint(                                                             \
                crt_hub_read((r), ready_buf_, sizeof ready_buf_, CRT_FRAMING_RECORD), >, \
                0);                                                                      \
        else                                                                             \
            g_assert_cmpint(                                                             \
                crt_hub_read((r), ready_buf_, sizeof ready_buf_, CRT_FRAMING_RECORD),    \
                ==, (result));                                                           \
    } while (0)

/* crt_hub_readable says TRUE exactly when crt_hub_read would not answer
 * -EAGAIN, in every state; the notify callback fires for each change.  The
 * entries are pushed by hand, from a capturing engine. */
static void test_readable(void)
{
    Fix f;
    CrtHubReader *rd, *rr;
    CrtOutput *ok1, *ok2, *err;
    guint seen;

    fix_open(&f, &(FixOpts){.spec = "sim:counter fail=1 errno=EPROTO",
                            .requests = 1,
                            .out_count = 4,
                            .capture = TRUE});
    fix_start(&f);
    TU_WAIT_FOR(captured_count(&f) == 5);
    crt_engine_stop_and_wait(f.engine);
    err = take_captured(&f, FALSE);
    ok1 = take_captured(&f, TRUE);
    ok2 = take_captured(&f, TRUE);
    g_assert_cmpint(err->status, ==, -EPROTO);

    rd = crt_hub_reader_new(f.hub, FALSE);
    rr = crt_hub_reader_new(f.hub, TRUE);
    ASSERT_READY(rd, FALSE, -EAGAIN);
    ASSERT_READY(rr, FALSE, -EAGAIN);

    /* An error entry: records show it, data has nothing to read. */
    seen = tu_counter_get(&f.notified);
    push_captured(&f, err);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, FALSE, -EAGAIN);
    ASSERT_READY(rr, TRUE, SOME_BYTES);
    ASSERT_READY(rr, FALSE, -EAGAIN);

    seen = tu_counter_get(&f.notified);
    push_captured(&f, ok1);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, TRUE, SOME_BYTES);
    ASSERT_READY(rd, FALSE, -EAGAIN);
    ASSERT_READY(rr, TRUE, SOME_BYTES);
    ASSERT_READY(rr, FALSE, -EAGAIN);

    seen = tu_counter_get(&f.notified);
    crt_hub_end_stream(f.hub);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, TRUE, 0);
    ASSERT_READY(rd, TRUE, 0); /* until the next stream */
    ASSERT_READY(rr, TRUE, 0);
    ASSERT_READY(rr, TRUE, 0);

    push_captured(&f, ok2);
    ASSERT_READY(rd, TRUE, SOME_BYTES);
    ASSERT_READY(rd, FALSE, -EAGAIN);

    seen = tu_counter_get(&f.notified);
    crt_hub_close(f.hub);
    g_assert_cmpuint(tu_counter_get(&f.notified), >, seen);
    ASSERT_READY(rd, TRUE, 0);
    ASSERT_READY(rd, TRUE, 0);
    /* rr still has ok2 to read, then end of file for good. */
    ASSERT_READY(rr, TRUE, SOME_BYTES);
    ASSERT_READY(rr, TRUE, 0);
    ASSERT_READY(rr, TRUE, 0);
    crt_hub_reader_free(rd);
    crt_hub_reader_free(rr);
    fix_close(&f);
}

/* Buffers go home when the last reader that needs them closes, whether it
 * read nothing, part of an entry or everything; kept entries go home when
 * the hub is freed. */
static void test_buffers_return(void)
{
    Fix f;
    CrtHubReader *none, *part, *all;
    char buf[4096];

    fix_open(&f, &(FixOpts){.out_count = 8});
    none = crt_hub_reader_new(f.hub, FALSE);
    part = crt_hub_reader_new(f.hub, TRUE);
    all = crt_hub_reader_new(f.hub, FALSE);
    fix_start(&f);
    assert_paused(&f);
    g_assert_cmpint(crt_hub_read(part, buf, 7, CRT_FRAMING_RECORD), ==, 7);
    g_assert_cmpint(crt_hub_read(all, buf, sizeof buf, CRT_FRAMING_STREAM), ==,
                    8 * ENTRY_SIZE);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(engine_stats(&f).out_pool_free, ==, 0);
    crt_hub_reader_free(none);
    g_assert_cmpuint(engine_stats(&f).out_pool_free, ==, 0);
    crt_hub_reader_free(part);
    assert_pool_full(&f);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    crt_hub_reader_free(all);
    g_assert_cmpuint(hub_stats(&f).readers, ==, 0);
    fix_close(&f);
}

/* Entries nobody read are kept until the hub goes, then go home. */
static void test_buffers_return_kept(void)
{
    Fix f;

    fix_open(&f, &(FixOpts){.out_count = 8});
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 8);
    g_assert_cmpuint(engine_stats(&f).out_pool_free, ==, 0);
    fix_close(&f); /* frees the hub, then checks the pool */
}

/* crt_hub_release_engine: the entries of an engine about to be freed go
 * back to it, also from under a reader, which then has nothing to read. */
static void test_release_engine(void)
{
    Fix f;
    CrtHubReader *r;
    char buf[256];

    fix_open(&f, &(FixOpts){.out_count = 8});
    fix_start(&f);
    assert_paused(&f);
    crt_engine_stop_and_wait(f.engine);
    r = crt_hub_reader_new(f.hub, TRUE);
    g_assert_cmpint(crt_hub_read(r, buf, 9, CRT_FRAMING_RECORD), ==, 9);
    crt_hub_release_engine(f.hub, f.engine);
    assert_pool_full(&f);
    g_assert_cmpuint(hub_stats(&f).queued, ==, 0);
    g_assert_false(crt_hub_readable(r));
    g_assert_cmpint(crt_hub_read(r, buf, sizeof buf, CRT_FRAMING_RECORD), ==, -EAGAIN);
    crt_hub_reader_free(r);
    fix_close(&f);
}

/* ---- main ------------------------------------------------------------------ */

static const TuCase cases[] = {
    {"/hub/one-reader/records", test_one_reader_records},
    {"/hub/one-reader/data", test_one_reader_data},
    {"/hub/readers/two", test_two_readers},
    {"/hub/readers/ten", test_ten_readers},
    {"/hub/readers/late", test_late_reader},
    {"/hub/kept-without-reader", test_kept_without_reader},
    {"/hub/kept-after-end", test_kept_after_end},
    {"/hub/overflow/block", test_overflow_block},
    {"/hub/overflow/block-slowest", test_overflow_block_slowest},
    {"/hub/overflow/block-stop-read-start", test_overflow_block_stop_read_start},
    {"/hub/overflow/drop-oldest", test_overflow_drop_oldest},
    {"/hub/overflow/drop-oldest-kept", test_overflow_drop_oldest_kept},
    {"/hub/overflow/drop-oldest-error-entry", test_overflow_drop_oldest_error_entry},
    {"/hub/overflow/drop-oldest-partial-read", test_overflow_drop_oldest_partial_read},
    {"/hub/framing/record", test_framing_record},
    {"/hub/framing/stream", test_framing_stream},
    {"/hub/framing/records", test_framing_records},
    {"/hub/read-at/continues", test_read_at_continues},
    {"/hub/read-at/packs-small", test_read_at_packs_small},
    {"/hub/replay/window", test_replay_window},
    {"/hub/replay/record-framing", test_replay_record_framing},
    {"/hub/replay/zero-copy/data", test_replay_zero_copy_data},
    {"/hub/replay/zero-copy/records", test_replay_zero_copy_records},
    {"/hub/replay/end-of-file", test_replay_end_of_file},
    {"/hub/replay/drop-oldest", test_replay_drop_oldest},
    {"/hub/end-of-stream", test_end_of_stream},
    {"/hub/close", test_close},
    {"/hub/errors/completion", test_error_completions},
    {"/hub/errors/end-of-data", test_error_end_of_data},
    {"/hub/end-of-stream/before-the-next", test_end_of_stream_before_next},
    {"/hub/errors/bufferless-entries", test_bufferless_entries},
    {"/hub/errors/bufferless-kept-bounded", test_bufferless_kept_bounded},
    {"/hub/overflow/bufferless-block-paces", test_bufferless_block_paces},
    {"/hub/overflow/bufferless-no-reader-flows", test_bufferless_no_reader_flows},
    {"/hub/overflow/bufferless-reader-leaves", test_bufferless_reader_leaves},
    {"/hub/readable", test_readable},
    {"/hub/buffers-return/readers", test_buffers_return},
    {"/hub/buffers-return/kept", test_buffers_return_kept},
    {"/hub/release-engine", test_release_engine},
};

int main(int argc, char **argv)
{
    return tu_run_isolated(&argc, &argv, cases, G_N_ELEMENTS(cases), CASE_TIMEOUT_S);
}
