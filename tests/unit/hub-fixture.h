/* crtfs tests - the hub fed by a real engine, and what its readers see:
 * shared by the hub test programs (test-hub*.c).
 *
 * The hub is fed by a real engine streaming from the simulator's counter
 * generator (`sim:counter`): each 64-byte buffer holds eight little-endian
 * uint64 counters continuing 1, 2, 3 ... across buffers, so both the
 * sequence numbers in `records` and the bytes in `data` show any gap.
 */
#ifndef CRTFS_HUB_FIXTURE_H
#define CRTFS_HUB_FIXTURE_H

#include <crtfs/crtfs.h>

#include "hub.h"
#include "testutil.h"

G_BEGIN_DECLS

/* Bytes per output buffer: eight counters. */
#define ENTRY_SIZE 64
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

/* A private loop, a hub and an engine with the simulator set as its target;
 * nothing streams until fix_start(). */
void fix_open(Fix *f, const FixOpts *o);
/* Start streaming as the channel does: the hub first, then the engine. */
void fix_start(Fix *f);
/* Snapshots of the engine's and the hub's counters. */
CrtEngineStats engine_stats(Fix *f);
CrtHubStats hub_stats(Fix *f);
/* Every output buffer is back in the engine's pool (none to check without
 * buffers). */
void assert_pool_full(Fix *f);
/* Stop the stream, give back what capture mode still holds, free the hub
 * (its kept entries go back to the engine) and check that every buffer is
 * home before the engine goes.  Readers must be freed already. */
void fix_close(Fix *f);
/* The stream stands still: a request waits for a buffer and no completion
 * arrives for 100 ms. */
void assert_paused(Fix *f);

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

/* An empty parser; records_clear frees what it holds. */
void records_init(Records *p);
void records_clear(Records *p);
const Rec *rec_at(const Records *p, guint i);
/* The seq of the last whole record, 0 before the first. */
guint64 records_last_seq(const Records *p);
/* The little-endian counter at `p`. */
guint64 counter_at(const guint8 *p);
/* Returns how many records the chunk completed. */
guint records_feed(Records *p, const char *buf, size_t n);
/* Everything parsed so far is whole records, their sequence numbers run
 * from `first_seq` without a gap, the successful ones carry ENTRY_SIZE
 * bytes whose counters continue from record to record, and the timestamps
 * are the realtime clock.  NULL, or what is wrong (newly allocated). */
char *records_verify(const Records *p, guint64 first_seq);

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

/* Check the next chunk; the first counter out of line goes to c->error. */
void counters_feed(Counters *c, const char *buf, size_t n);
/* Read with the hub's readiness as the only clue: retry on -EAGAIN after
 * a notify (or 10 ms), up to `timeout_ms`.  -ETIMEDOUT when nothing came. */
gssize read_wait(Fix *f, CrtHubReader *r, char *buf, size_t size, CrtFraming framing,
                 guint timeout_ms);
/* Read `records` until the record with seq `want` arrived; NULL or what
 * went wrong (newly allocated).  Any thread. */
char *read_records_until(Fix *f, CrtHubReader *r, Records *p, guint64 want,
                         CrtFraming framing);

#define READ_RECORDS_UNTIL(f, r, p, want, framing)                                       \
    do {                                                                                 \
        char *read_problem_ = read_records_until((f), (r), (p), (want), (framing));      \
        g_assert_cmpstr(read_problem_, ==, NULL);                                        \
    } while (0)

/* Read everything there is now (the stream must be stopped); returns what
 * the last read returned: -EAGAIN, or 0 for end of file. */
gssize drain_records(CrtHubReader *r, Records *p);

G_END_DECLS

#endif
