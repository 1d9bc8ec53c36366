/* crtfs tests - checked engine streams and completions that the engine and
 * target-kind test programs share.
 *
 * Their callbacks run on the loop thread or on pool workers and record
 * failures with CHECK() (testutil.h); the engine fixture's teardown asserts
 * that none were recorded.
 */
#ifndef CRTFS_ENGINE_STREAMS_H
#define CRTFS_ENGINE_STREAMS_H

#include <crtfs/crtfs.h>

#include "testutil.h"

G_BEGIN_DECLS

/* ---- a checked `sim:counter` read stream ---------------------------------- */

/* What a stream's callbacks saw.  The callbacks of one engine run one at a
 * time, so the plain fields need no lock; the test thread reads only the
 * atomic ones while the stream runs. */
typedef struct {
    CrtLoop *loop;
    CrtCompletion completion;
    size_t out_size;
    guint64 last_seq;
    guint64 next_counter; /* the counter the next buffer must start with */
    gint callbacks;       /* atomic */
    gint ok;              /* atomic: status 0 */
    gint cancelled;       /* atomic */
    gint failed;          /* atomic */
    gint stopping;        /* atomic: set by the test before it stops */
    gint stop_at;         /* return ENGINE_STOP for this ok count (0: never) */
} Stream;

/* Default callbacks run on the loop thread, passive ones never do. */
void check_callback_thread(CrtLoop *loop, CrtCompletion completion);
/* One completion of a `sim:counter` read stream: seq grows by one per
 * callback, and the payload counters continue from buffer to buffer with
 * no gap and no repeat (the simulator only counts reads it served). */
void stream_check(Stream *s, const CrtOutput *o);
/* A read stream on `loop` whose callback checks every buffer into `s`
 * (reset here) and stops the stream at s->stop_at. */
void counter_config(CrtEngineConfig *cfg, CrtLoop *loop, Stream *s, guint requests,
                    guint out_count, size_t out_size, CrtCompletion completion);
/* The engine's counters agree with what the callbacks saw. */
void assert_stats_match(CrtEngine *e, Stream *s);

/* ---- single requests: a recording completion ---------------------------- */

typedef struct {
    CrtLoop *loop;
    gint calls; /* atomic; the fields below are written before it */
    gint on_loop;
    int status;
    size_t in_written;
    size_t out_read;
    const void *in;
    void *out;
} SendRecord;

void send_record_init(SendRecord *r, CrtLoop *loop);
/* A CrtSendFunc recording into the SendRecord given as request context;
 * a second completion is a CHECK failure. */
void record_send(CrtEngine *e, gpointer request_context, const void *in,
                 size_t in_written, void *out, size_t out_read, int status);
/* Ask the simulator to sleep `ms`; the response gets the echo. */
int send_sleep(CrtEngine *e, guint32 *ms_and_response, guint timeout_ms,
               CrtCompletion completion, SendRecord *r, CrtRequestId *id);

/* ---- a stream that keeps what a real target sends ------------------------- */

/* A read stream that keeps what it reads. */
typedef struct {
    CrtLoop *loop;
    GMutex lock;
    GByteArray *data; /* lock */
    guint64 last_seq;
    gboolean expect_zero; /* check and scribble instead of keeping */
    gint ok;              /* atomic */
    gint ended;           /* atomic: -ENODATA seen */
    gint stopping;        /* atomic */
    gint errors;          /* atomic */
    /* A `wait` target: losses and returns are expected, noted here as
     * errno names (lock). */
    gboolean markers;
    GString *marks;
} Collector;

/* A started read stream of `spec` on `loop` into `c` (reset here); a spec
 * with " wait" records markers instead of failing on them. */
CrtEngine *collector_start(Collector *c, CrtLoop *loop, const char *spec, size_t out_size,
                           gboolean expect_zero);
/* Stop, check the engine is drained, free it and `c`'s contents. */
void collector_finish(CrtEngine *e, Collector *c);
/* Wait until the markers are `want` (space-separated errno names). */
void collector_expect_marks(Collector *c, const char *want);

typedef struct {
    Collector *c;
    gsize len;
} CollectorHas;

/* For tu_wait_until: TRUE once the collector holds `len` bytes. */
gboolean collector_has(gpointer data);
/* Wait for `len` bytes, then check they are exactly `expected` (and that no
 * more arrive). */
void collector_expect(Collector *c, const guint8 *expected, gsize len);

/* Bytes whose value depends on their position, so a lost, repeated or
 * reordered chunk shows (g_free). */
guint8 *pattern_new(gsize len, guint seed);
/* Write all of p in random chunks of up to 3000 bytes. */
void write_all(int fd, const guint8 *p, gsize len);

/* A thread that opens a FIFO for writing, writes `len` bytes and closes. */
/* (a) a FIFO with a writer that comes and goes. */
typedef struct {
    const char *path;
    const guint8 *data;
    gsize len;
} FifoWriter;

gpointer fifo_writer(gpointer p);

G_END_DECLS

#endif
