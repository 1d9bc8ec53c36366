/* crtfs - a hub's history, and the replays that read it.
 *
 * The history keeps copies of the newest entries of a target's stream
 * (`history` and `history_bytes`, target-config.h), whether or not anyone
 * read them, so that a reader that opens late (`data@5`, `records@30s`,
 * `data@all`) starts back in the stream, like conserver's replay.  It holds
 * copies, never the engine's buffers, so it neither pauses the stream nor
 * starves the pool: the overflow policies act on the live entries alone.
 * The entries in it are numbered without gaps (every entry the hub numbers
 * is recorded, oldest first); beyond a limit the oldest go.
 *
 * A replay cursor walks the history from one number up to (not including)
 * the first entry its reader gets live, so the two never overlap and leave
 * no gap; `records` readers get a marker entry before the replay and one
 * after it.  An entry the history lets go before the cursor reaches it is
 * lost to that reader (counted as a drop); the one the cursor is handing
 * out stays until it is done.
 *
 * No locking here: the hub calls every function under its lock.
 */
#ifndef CRTFS_HUB_HISTORY_H
#define CRTFS_HUB_HISTORY_H

#include <glib.h>

#include "target-config.h"

/* What a reader's file name asks for after the `@` (crt_replay_parse). */
typedef enum {
    CRT_REPLAY_NONE = 0, /* no suffix: live only */
    CRT_REPLAY_LAST,     /* `@N`: from N entries back from the newest */
    CRT_REPLAY_AGE,      /* `@DURATION`: the entries younger than that */
    CRT_REPLAY_ALL,      /* `@all`: everything held */
} CrtReplayMode;

typedef struct {
    CrtReplayMode mode;
    guint64 last;   /* CRT_REPLAY_LAST */
    guint64 age_ms; /* CRT_REPLAY_AGE */
} CrtReplaySpec;

/* The largest N of `@N`. */
#define CRT_REPLAY_MAX_LAST 1000000000u

/* Parse a suffix ("5", "30s", "all"): 0 or -EINVAL with `error` in words. */
int crt_replay_parse(const char *suffix, CrtReplaySpec *out, GError **error);

/* One kept entry (or a replay marker), shared by the history and a cursor
 * handing it out. */
typedef struct {
    guint refs;
    guint64 seq; /* 0 for a marker */
    gint64 time_ns;
    gint64 mono_ns; /* CLOCK_MONOTONIC when the hub took it (records.jsonl) */
    int status;
    char *event; /* owned: a line event's or a marker's STATUS word, or NULL */
    size_t length;
    char data[]; /* `length` bytes */
} CrtHistItem;

typedef struct CrtHistory CrtHistory;

CrtHistory *crt_history_new(void);
void crt_history_free(CrtHistory *h);

/* New limits (the oldest go at once if they no longer fit), at
 * CLOCK_REALTIME `now_ns`.  Off (crt_history_limits_on) empties it. */
void crt_history_set_limits(CrtHistory *h, const CrtHistoryLimits *limits, gint64 now_ns);
gboolean crt_history_on(const CrtHistory *h);

/* Keep a copy of entry `seq` (`data` of `length` bytes; `event` copied).
 * An entry larger than history_bytes empties the history: what is held
 * stays without gaps. */
void crt_history_record(CrtHistory *h, guint64 seq, gint64 time_ns, gint64 mono_ns,
                        int status, const char *event, const void *data, size_t length);
/* Under a duration limit, let go of the entries older than it. */
void crt_history_expire(CrtHistory *h, gint64 now_ns);

guint crt_history_count(const CrtHistory *h);
size_t crt_history_bytes(const CrtHistory *h);
/* The oldest entry's number, 0 when empty. */
guint64 crt_history_oldest(const CrtHistory *h);
/* The number of the oldest entry at least as young as `since_ns`, 0 when
 * none. */
guint64 crt_history_first_since(const CrtHistory *h, gint64 since_ns);

/* A replay of entries [from, end) of the history; `markers` adds the
 * records markers ("replay:from=FROM" before, "live:from=END" after),
 * stamped `now_ns`. */
typedef struct {
    guint64 next;                /* the next entry to hand out */
    guint64 end;                 /* the first one the reader gets live */
    CrtHistItem *before, *after; /* the markers still due, or NULL */
    CrtHistItem *item;           /* being handed out, referenced */
    size_t offset;               /* bytes of it handed out, header included */
} CrtReplayCursor;

CrtReplayCursor *crt_replay_cursor_new(guint64 from, guint64 end, gboolean markers,
                                       gint64 now_ns);
void crt_replay_cursor_free(CrtReplayCursor *c);
/* The entry to hand out now, NULL once the replay is over.  Adds to *lost
 * the entries the history let go before the cursor reached them. */
CrtHistItem *crt_replay_cursor_current(CrtReplayCursor *c, CrtHistory *h, guint64 *lost);
/* The current entry was handed out whole: on to the next. */
void crt_replay_cursor_next(CrtReplayCursor *c);

#endif
