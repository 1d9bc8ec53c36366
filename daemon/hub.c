/* crtfs - the broadcast hub (see hub.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "hub-history.h"
#include "hub.h"
#include "jsonl.h"

/* One streamed buffer.  Lives in the output buffer's client context, or is
 * allocated for a completion that came without a buffer (errors). */
typedef struct Entry Entry;
struct Entry {
    Entry *next;
    CrtEngine *engine;
    void *buffer; /* NULL for a bufferless completion */
    size_t length;
    int status;
    guint64 seq;
    gint64 time_ns;
    gint64 mono_ns;     /* CLOCK_MONOTONIC when the hub took it (records.jsonl) */
    guint refs;         /* readers that still need it, +1 while unclaimed */
    guint retained;     /* readers that keep it, read, in their window */
    gboolean unclaimed; /* arrived with no reader: kept for the next one */
    /* The end of a stream, for readers that had not read all of it: they
     * get end of file here, not after entries of the next stream. */
    gboolean eos;
    guint64 eos_gen; /* the generation that ended */
    /* A line event (crt_hub_push_event): its STATUS word in `records`,
     * owned; bufferless entries only. */
    char *event;
    /* A small buffer copied at arrival (see CRT_HUB_COPY_MAX): the entry
     * and its bytes after it (`buffer` points there) live in `chunk`, the
     * engine's buffer went back at once. */
    gboolean copied;
    struct CopyChunk *chunk;
};

/* Where copied entries live: one after the other, as they arrive, in
 * chunks of CRT_HUB_COPY_CHUNK bytes (or the budget, when smaller).  A
 * chunk goes when the last of its entries does and it is not the one being
 * filled; the one being filled starts over once it is empty.  Entries go
 * in about the order they came, so a chunk costs one malloc and one free
 * for some hundred small entries, where one each cost more than the rest
 * of the entry's way (and were freed on another thread than they were
 * made).  The copy budget counts whole chunks: what the copies hold is
 * never more than it. */
typedef struct CopyChunk {
    guint live;  /* entries in it not yet freed */
    size_t used; /* bytes taken from its start */
    size_t size; /* bytes after the header */
} CopyChunk;

#define CRT_HUB_COPY_CHUNK (16 * 1024)

/* A `records` header line: "SEQ SEC.NSEC STATUS LENGTH\n". */
#define HEADER_MAX 96

struct CrtHubReader {
    CrtHub *hub;
    CrtHubReader *next_reader;
    Entry *at;     /* next entry to read, NULL when caught up */
    size_t offset; /* bytes of `at` already read (header included) */
    guint64 gen;   /* end-of-stream generation seen */
    /* The last read returned end of file: reads return it again until
     * streaming begins anew (as a pipe or a file would). */
    gboolean at_eof;
    CrtHubView view;
    guint64 drops;
    char header[HEADER_MAX]; /* records: the current entry's header line */
    GString *line;           /* jsonl: the current entry's line */
    size_t header_len;       /* of either; 0 until made */
    /* The reader's stream: `pos` bytes handed out since it opened (the
     * file offset its next read continues at), and where the entry that
     * holds the last of them began (record framing replays only that). */
    guint64 pos;
    guint64 last_start;
    /* The retained window, what a read at an earlier offset replays.  After
     * a copied read: the newest `ring_len` bytes handed out, kept in `ring`
     * (they were copied there to be handed out).  After a zero-copy read:
     * the entries from `keep` (at its byte `keep_offset`, stream offset
     * `keep_pos`) up to the position, still referenced.  `hold` is the
     * oldest entry the reader has passed and still holds (`retained`):
     * every one from it up to `at`.  Entries before `keep` are let go once
     * the reply has left (crt_hub_read_done), not before it: the reply
     * goes first. */
    char *ring;
    size_t ring_size, ring_head, ring_len;
    Entry *hold;
    Entry *keep;
    size_t keep_offset;
    guint64 keep_pos;
    char keep_header[HEADER_MAX]; /* records: a replayed entry's header line */
    /* Opened with a replay suffix: what of the history it reads before its
     * live entries (hub-history.h), NULL once that is over. */
    CrtReplayCursor *replay;
    GString *replay_line; /* jsonl: a replayed entry's line */
};

struct CrtHub {
    GMutex lock; /* guards everything below */
    Entry *head, *tail;
    CrtHubReader *readers;
    guint nreaders;
    guint64 gen;          /* bumped at each end of stream */
    gboolean streaming;   /* between crt_hub_begin_stream and the end */
    guint bufferless;     /* entries without a buffer, held now */
    guint bufferless_cap; /* crt_hub_set_policy */
    size_t copied_bytes;  /* held by copy chunks, at most copy_budget */
    size_t copy_budget;   /* crt_hub_set_copy; 0: no copies */
    CopyChunk *chunk;     /* the one new copies go into, or NULL */
    /* Lock-free, because the input callback can run under the hub lock (a
     * buffer put back re-arms a request at once): */
    gint input_full;  /* input_full_unlocked() as of the last unlock */
    gint input_held;  /* crt_hub_input_gate said no: call `room` */
    guint64 next_seq; /* the last entry's number */
    gboolean closed;
    CrtOverflow overflow;
    CrtKeep keep; /* resolved: never CRT_KEEP_AUTO */
    CrtHubStats stats;
    CrtHubNotify notify;
    gpointer notify_data;
    CrtHubNotify room;
    gpointer room_data;
    CrtHistory *history; /* copies of the newest entries, for replays */
};

size_t crt_hub_context_size(void)
{
    return sizeof(Entry);
}

CrtHub *crt_hub_new(CrtHubNotify notify, gpointer data)
{
    CrtHub *hub = g_new0(CrtHub, 1);

    g_mutex_init(&hub->lock);
    hub->notify = notify;
    hub->notify_data = data;
    hub->bufferless_cap = CRT_HUB_MAX_BUFFERLESS;
    hub->keep.mode = CRT_KEEP_ALL;
    hub->history = crt_history_new();
    return hub;
}

void crt_hub_set_room_notify(CrtHub *hub, CrtHubNotify room, gpointer data)
{
    hub->room = room;
    hub->room_data = data;
}

static void bufferless_free(Entry *e)
{
    g_free(e->event);
    g_free(e);
}

/* What a copied entry of `length` payload bytes takes of its chunk: itself
 * and its bytes, up to the next entry's alignment. */
static size_t copy_cost(size_t length)
{
    return (sizeof(Entry) + length + sizeof(gint64) - 1) & ~(sizeof(gint64) - 1);
}

static void chunk_free(CrtHub *hub, CopyChunk *k)
{
    hub->copied_bytes -= sizeof *k + k->size;
    g_free(k);
}

/* A copied entry goes: its chunk with it when it was the last there. */
static void copy_free(CrtHub *hub, Entry *e)
{
    CopyChunk *k = e->chunk;

    if (--k->live > 0)
        return;
    if (k == hub->chunk)
        k->used = 0;
    else
        chunk_free(hub, k);
}

static void entry_free(CrtHub *hub, Entry *e)
{
    if (e->copied) {
        copy_free(hub, e);
    } else if (e->buffer) {
        crt_engine_buffer_put(e->engine, e->buffer);
    } else {
        bufferless_free(e);
    }
}

/* Free entries from the head once nobody needs them.  Lock held. */
static void trim_unlocked(CrtHub *hub)
{
    while (hub->head && hub->head->refs == 0) {
        Entry *e = hub->head;

        hub->head = e->next;
        if (!hub->head)
            hub->tail = NULL;
        hub->stats.queued -= !e->eos;
        hub->bufferless -= e->buffer == NULL && !e->eos;
        entry_free(hub, e);
    }
}

static void notify(CrtHub *hub)
{
    if (hub->notify)
        hub->notify(hub, hub->notify_data);
}

/* Whether a producer of bufferless completions must wait: under `block`,
 * while readers hold `bufferless_cap` of them unread.  Lock held. */
static gboolean input_full_unlocked(CrtHub *hub)
{
    return hub->overflow == CRT_OVERFLOW_BLOCK && hub->nreaders > 0 &&
           hub->bufferless >= hub->bufferless_cap;
}

/* Publish whether producers must wait, unlock, and tell a producer that
 * crt_hub_input_gate turned away that it may go on.  The gate publishes
 * input_held before it looks at input_full again, and this publishes
 * input_full before it looks at input_held: one of the two sees the other. */
static void unlock_and_room(CrtHub *hub)
{
    gboolean full = input_full_unlocked(hub);

    /* Written only when it changes, asked before it is swapped: the two
     * share a cache line with the lock and stay put at a million unlocks
     * a second. */
    if (g_atomic_int_get(&hub->input_full) != full)
        g_atomic_int_set(&hub->input_full, full);
    g_mutex_unlock(&hub->lock);
    if (!full && g_atomic_int_get(&hub->input_held) &&
        g_atomic_int_compare_and_exchange(&hub->input_held, TRUE, FALSE) && hub->room)
        hub->room(hub, hub->room_data);
}

void crt_hub_free(CrtHub *hub)
{
    if (!hub)
        return;
    g_return_if_fail(hub->readers == NULL); /* not under the lock: it returns */
    g_mutex_lock(&hub->lock);
    for (Entry *e = hub->head; e; e = e->next)
        e->refs = 0;
    trim_unlocked(hub);
    g_mutex_unlock(&hub->lock);
    if (hub->chunk)
        chunk_free(hub, hub->chunk);
    crt_history_free(hub->history);
    g_mutex_clear(&hub->lock);
    g_free(hub);
}

void crt_hub_set_copy(CrtHub *hub, size_t budget)
{
    g_mutex_lock(&hub->lock);
    hub->copy_budget = budget; /* copies beyond a lowered one go as read */
    g_mutex_unlock(&hub->lock);
}

void crt_hub_set_policy(CrtHub *hub, CrtOverflow overflow, guint bufferless_cap)
{
    g_mutex_lock(&hub->lock);
    hub->overflow = overflow;
    hub->bufferless_cap = CLAMP(bufferless_cap, 1, CRT_HUB_MAX_BUFFERLESS);
    unlock_and_room(hub);
}

gboolean crt_hub_input_gate(CrtHub *hub)
{
    if (!g_atomic_int_get(&hub->input_full))
        return TRUE;
    g_atomic_int_set(&hub->input_held, TRUE);
    return !g_atomic_int_get(&hub->input_full);
}

/* The reader moves past `at`, which it releases, or holds while it holds
 * older ones (see `hold`). */
static void reader_advance_unlocked(CrtHubReader *r)
{
    Entry *e = r->at;

    r->at = e->next;
    r->offset = 0;
    r->header_len = 0;
    if (r->hold)
        e->retained++;
    else
        e->refs--;
}

/* Let go of the entries held from `hold` up to `until` (an entry from
 * `hold` on, or `at` for all of them).  Lock held. */
static void release_held_unlocked(CrtHubReader *r, Entry *until)
{
    for (Entry *e = r->hold; r->hold && e != until; e = e->next) {
        e->retained--;
        e->refs--;
    }
    r->hold = until == r->at ? NULL : until;
}

/* The window goes: every held entry with it.  Lock held. */
static void release_window_unlocked(CrtHubReader *r)
{
    release_held_unlocked(r, r->at);
    r->keep = NULL;
}

/* Whether a reader is positioned on an entry older than `e`. */
static gboolean reader_before(CrtHub *hub, CrtHubReader *r, Entry *e)
{
    for (Entry *x = hub->head; r->at && x && x != e; x = x->next) {
        if (x == r->at)
            return TRUE;
    }
    return FALSE;
}

/* An entry a reader is replying from right now, or is halfway through,
 * stays: a dropped entry is dropped whole. */
static gboolean pinned(CrtHub *hub, Entry *e)
{
    if (e->eos || e->retained > 0)
        return TRUE; /* never dropped; a window's entries go with it */
    for (CrtHubReader *r = hub->readers; r; r = r->next_reader) {
        if (r->at == e && r->offset > 0)
            return TRUE;
    }
    return FALSE;
}

/* Take `e` out for everyone who still holds it, counting a drop for each.
 * Lock held. */
static void drop_entry_unlocked(CrtHub *hub, Entry *prev, Entry *e)
{
    for (CrtHubReader *r = hub->readers; r; r = r->next_reader) {
        gboolean holds = r->at == e || reader_before(hub, r, e);

        if (r->at == e) {
            r->at = e->next;
            r->offset = 0;
            r->header_len = 0;
        }
        if (holds) {
            r->drops++;
            hub->stats.dropped++;
        }
    }
    if (e->unclaimed)
        hub->stats.dropped++;
    if (prev)
        prev->next = e->next;
    else
        hub->head = e->next;
    if (hub->tail == e)
        hub->tail = prev;
    hub->stats.queued--;
    hub->bufferless -= e->buffer == NULL;
    entry_free(hub, e);
}

/* Drop the oldest bufferless entry that nobody is halfway through. */
static void drop_bufferless_unlocked(CrtHub *hub)
{
    Entry *prev = NULL;

    for (Entry *e = hub->head; e; prev = e, e = e->next) {
        if (!e->buffer && !pinned(hub, e)) {
            drop_entry_unlocked(hub, prev, e);
            return;
        }
    }
}

/* drop-oldest: the pool is empty, so the oldest entry that nobody is
 * halfway through goes, for every reader that still holds it (the readers
 * that kept up hold nothing older and lose nothing).  Entries without a
 * buffer (error completions) go too, until a buffer is free.  Lock held. */
static void drop_oldest_unlocked(CrtHub *hub)
{
    Entry *prev = NULL, *e = hub->head;

    /* Never the newest: with every reader caught up, the pool is empty
     * because requests in flight hold the buffers, not because anyone fell
     * behind (requests > out_count). */
    while (e && e != hub->tail) {
        gboolean had_buffer;

        if (pinned(hub, e)) {
            prev = e;
            e = e->next;
            continue;
        }
        had_buffer = e->buffer != NULL && !e->copied; /* a pool buffer comes back */
        drop_entry_unlocked(hub, prev, e);
        if (had_buffer)
            return;
        e = prev ? prev->next : hub->head;
    }
}

/* Whether the unclaimed entry `e` may wait for the next reader, `kept_after`
 * newer entries being kept, at CLOCK_REALTIME `now_ns`. */
static gboolean keep_allows(const CrtKeep *k, const Entry *e, guint64 kept_after,
                            gint64 now_ns)
{
    switch (k->mode) {
    case CRT_KEEP_NONE:
        return FALSE;
    case CRT_KEEP_LAST:
        return kept_after < k->last;
    case CRT_KEEP_AGE:
        return now_ns - e->time_ns < (gint64)k->age_ms * 1000000;
    default:
        return TRUE;
    }
}

/* With nobody reading, let go of what the keep policy does not keep: the
 * oldest entries first, up to the first one it keeps (end-of-stream markers
 * stay).  Lock held. */
static void apply_keep_unlocked(CrtHub *hub, gint64 now_ns)
{
    guint64 kept = hub->stats.queued; /* with nobody reading, every entry is kept */

    if (hub->nreaders > 0 || hub->keep.mode == CRT_KEEP_ALL)
        return;
    for (Entry *prev = NULL, *e = hub->head; e;) {
        Entry *next = e->next;

        if (!e->eos) {
            kept--;
            /* Newer entries are younger and have fewer after them: the
             * first one kept ends the walk. */
            if (keep_allows(&hub->keep, e, kept, now_ns))
                return;
            e->unclaimed = FALSE; /* not a drop for a reader */
            hub->stats.discarded++;
            drop_entry_unlocked(hub, prev, e);
            e = next;
            continue;
        }
        prev = e;
        e = next;
    }
}

void crt_hub_set_keep(CrtHub *hub, const CrtKeep *keep)
{
    g_mutex_lock(&hub->lock);
    hub->keep = *keep;
    apply_keep_unlocked(hub, g_get_real_time() * 1000);
    unlock_and_room(hub);
}

/* Link `e` at the tail, for every reader: each holds a reference, and a
 * caught-up reader will read it next.  Returns whether a reader was caught
 * up (only such a reader can be waiting: one with entries unread finds `e`
 * when it reads on).  Lock held. */
static gboolean append_unlocked(CrtHub *hub, Entry *e)
{
    gboolean caught_up = FALSE;

    e->refs = hub->nreaders;
    for (CrtHubReader *r = hub->readers; r; r = r->next_reader) {
        if (!r->at) {
            r->at = e;
            caught_up = TRUE;
        }
    }
    if (hub->tail)
        hub->tail->next = e;
    else
        hub->head = e;
    hub->tail = e;
    return caught_up;
}

static Entry *entry_for(CrtEngine *engine, const CrtOutput *out)
{
    Entry *e = out->buffer ? out->context : g_new0(Entry, 1);

    memset(e, 0, sizeof *e);
    e->engine = engine;
    e->buffer = out->buffer;
    e->length = out->length;
    e->status = out->status;
    e->seq = out->seq;
    e->time_ns = out->time_ns;
    return e;
}

/* Under drop-oldest, make room for a chunk of `size` bytes: the oldest
 * copied entries that nobody is halfway through go, for every reader that
 * still holds them (counted), until a chunk has gone.  Lock held. */
static void drop_copies_unlocked(CrtHub *hub, size_t size)
{
    while (hub->copied_bytes + size > hub->copy_budget) {
        Entry *prev = NULL, *e = hub->head;

        while (e && (!e->copied || pinned(hub, e))) {
            prev = e;
            e = e->next;
        }
        if (!e)
            return;
        drop_entry_unlocked(hub, prev, e);
    }
}

/* Room for `cost` bytes of copies: in the chunk being filled, else in a
 * new one (the full one goes once its entries have); NULL when the chunks
 * hold the budget.  Lock held. */
static void *copy_room_unlocked(CrtHub *hub, size_t cost)
{
    CopyChunk *k = hub->chunk;
    size_t size = MIN((size_t)CRT_HUB_COPY_CHUNK, hub->copy_budget) - sizeof *k;
    void *p;

    if (!k || k->used + cost > k->size) {
        if (hub->copy_budget < sizeof *k || cost > size)
            return NULL;
        hub->chunk = NULL;
        if (k && k->live == 0)
            chunk_free(hub, k);
        if (hub->overflow == CRT_OVERFLOW_DROP_OLDEST)
            drop_copies_unlocked(hub, sizeof *k + size);
        if (hub->copied_bytes + sizeof *k + size > hub->copy_budget)
            return NULL;
        k = hub->chunk = g_malloc(sizeof *k + size);
        k->live = 0;
        k->used = 0;
        k->size = size;
        hub->copied_bytes += sizeof *k + size;
    }
    p = (char *)(k + 1) + k->used;
    k->used += cost;
    k->live++;
    return p;
}

/* A copy of the small buffer entry `e` that lets its buffer go back to the
 * engine at once, or NULL when the copies hold the budget (and
 * drop-oldest cannot make room): the entry then holds its buffer, and the
 * pool bounds the stream as for large buffers (`block` pauses it).  Lock
 * held. */
static Entry *copy_in_unlocked(CrtHub *hub, const Entry *e)
{
    Entry *c = copy_room_unlocked(hub, copy_cost(e->length));

    if (!c)
        return NULL;
    *c = *e;
    c->buffer = c + 1;
    memcpy(c->buffer, e->buffer, e->length);
    c->engine = NULL; /* nothing of the engine's: crt_hub_release_engine leaves it */
    c->copied = TRUE;
    c->chunk = hub->chunk;
    return c;
}

static gint64 mono_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Take `e` (of `engine`, NULL for an event) as the stream's next entry. */
static CrtDisposition push_entry(CrtHub *hub, CrtEngine *engine, Entry *e)
{
    gboolean has_buffer = e->buffer != NULL, unclaimed, copied = FALSE, wake;
    gint64 time_ns;
    CrtEngineStats st;

    g_mutex_lock(&hub->lock);
    if (hub->closed) {
        g_mutex_unlock(&hub->lock);
        if (!has_buffer)
            bufferless_free(e);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    /* The hub numbers its own entries: cancelled completions (which are
     * not entries) leave no gaps, and a rebuilt engine, which counts from 1
     * again, does not restart the stream's numbers.  A gap in `records` is
     * then always a drop. */
    e->seq = ++hub->next_seq;
    e->mono_ns = mono_now_ns(); /* under the lock: never decreasing along seq */
    crt_history_record(hub->history, e->seq, e->time_ns, e->mono_ns, e->status, e->event,
                       e->buffer, e->length);
    e->unclaimed = unclaimed = hub->nreaders == 0;
    time_ns = e->time_ns;
    if (unclaimed && hub->keep.mode == CRT_KEEP_NONE) {
        /* Nobody reads and nothing is kept: the buffer goes straight back
         * (the engine re-arms it), the device is drained. */
        hub->stats.discarded++;
        hub->stats.last_seq = e->seq;
        unlock_and_room(hub);
        if (!has_buffer)
            bufferless_free(e);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    if (has_buffer && e->length < CRT_HUB_COPY_MAX) {
        Entry *c = copy_in_unlocked(hub, e);

        if (c) {
            e = c;
            copied = TRUE;
        }
    }
    /* Readers that have entries unread need no wake-up per entry: a reader
     * waits (a parked read, a poll) only once it has read everything (its
     * last read returned -EAGAIN), and at 1,000,000 small entries a second
     * the wake-ups would cost more than the entries. */
    wake = append_unlocked(hub, e) || unclaimed;
    if (e->unclaimed)
        e->refs = 1;
    hub->stats.queued++;
    hub->stats.last_seq = e->seq;
    /* Beyond the cap, the oldest bufferless entries go (counted) when
     * nobody reads or under drop-oldest; under `block` with readers the
     * producer waits at crt_hub_input_gate instead, and only completions
     * nothing can hold back (errors of a read stream, line events) meet the
     * hard cap. */
    if (!has_buffer &&
        (++hub->bufferless > CRT_HUB_MAX_BUFFERLESS ||
         (hub->bufferless > hub->bufferless_cap &&
          (hub->nreaders == 0 || hub->overflow == CRT_OVERFLOW_DROP_OLDEST))))
        drop_bufferless_unlocked(hub);
    if (hub->overflow == CRT_OVERFLOW_DROP_OLDEST && has_buffer && !copied) {
        crt_engine_get_stats(engine, &st);
        if (st.out_pool_free == 0)
            drop_oldest_unlocked(hub);
    }
    /* `e` may be gone by now (a bufferless entry beyond the cap). */
    if (unclaimed)
        apply_keep_unlocked(hub, time_ns);
    unlock_and_room(hub);
    if (wake)
        notify(hub);
    /* The hub owns the buffer now (a reader may even have freed the entry
     * already); a bufferless entry is the hub's too. */
    return has_buffer && !copied ? CRT_DISPOSITION_CLIENT_CONTINUE
                                 : CRT_DISPOSITION_ENGINE_CONTINUE;
}

CrtDisposition crt_hub_push(CrtHub *hub, CrtEngine *engine, const CrtOutput *out)
{
    if (out->status == -ECANCELED)
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    return push_entry(hub, engine, entry_for(engine, out));
}

void crt_hub_push_event(CrtHub *hub, const char *word, gint64 time_ns)
{
    Entry *e = g_new0(Entry, 1);

    e->event = g_strdup(word);
    e->time_ns = time_ns;
    push_entry(hub, NULL, e);
}

void crt_hub_begin_stream(CrtHub *hub)
{
    g_mutex_lock(&hub->lock);
    hub->streaming = TRUE;
    g_mutex_unlock(&hub->lock);
}

void crt_hub_end_stream(CrtHub *hub)
{
    gboolean ended;

    g_mutex_lock(&hub->lock);
    ended = hub->streaming;
    hub->streaming = FALSE;
    hub->gen++;
    /* A marker where a stream ended, for every reader (a caught-up reader
     * meets it at once), unless nothing came since the last one. */
    if (ended && hub->nreaders > 0 && !(hub->tail && hub->tail->eos)) {
        Entry *e = g_new0(Entry, 1);

        e->eos = TRUE;
        e->eos_gen = hub->gen;
        append_unlocked(hub, e);
    }
    g_mutex_unlock(&hub->lock);
    notify(hub);
}

void crt_hub_close(CrtHub *hub)
{
    g_mutex_lock(&hub->lock);
    hub->closed = TRUE;
    hub->gen++;
    g_mutex_unlock(&hub->lock);
    notify(hub);
}

void crt_hub_limit_kept(CrtHub *hub, guint max)
{
    guint kept = 0;

    g_mutex_lock(&hub->lock);
    if (hub->nreaders == 0) {
        for (Entry *e = hub->head; e; e = e->next)
            kept += !e->eos;
        while (kept > max && hub->head) {
            kept -= !hub->head->eos;
            drop_entry_unlocked(hub, NULL, hub->head);
        }
    }
    unlock_and_room(hub);
}

void crt_hub_release_engine(CrtHub *hub, CrtEngine *engine)
{
    g_mutex_lock(&hub->lock);
    for (CrtHubReader *r = hub->readers; r; r = r->next_reader)
        release_window_unlocked(r);
    for (Entry *e = hub->head; e; e = e->next) {
        if (e->engine != engine)
            continue;
        for (CrtHubReader *r = hub->readers; r; r = r->next_reader) {
            if (r->at == e)
                reader_advance_unlocked(r);
        }
        if (e->unclaimed) {
            e->unclaimed = FALSE;
            e->refs--;
        }
    }
    trim_unlocked(hub);
    unlock_and_room(hub);
}

static void replay_begin_unlocked(CrtHubReader *r, const CrtReplaySpec *spec);

CrtHubReader *crt_hub_reader_new(CrtHub *hub, CrtHubView view)
{
    return crt_hub_reader_new_replay(hub, view, NULL);
}

CrtHubReader *crt_hub_reader_new_replay(CrtHub *hub, CrtHubView view,
                                        const CrtReplaySpec *replay)
{
    CrtHubReader *r = g_new0(CrtHubReader, 1);

    r->hub = hub;
    r->view = view;
    g_mutex_lock(&hub->lock);
    r->gen = hub->gen;
    apply_keep_unlocked(hub, g_get_real_time() * 1000); /* age: time went by */
    /* Entries only stay unclaimed while nobody reads, so then every kept
     * entry is unclaimed, and the first reader to open takes them over. */
    if (hub->nreaders == 0) {
        r->at = hub->head;
        for (Entry *e = hub->head; e; e = e->next)
            e->unclaimed = FALSE; /* its extra reference is this reader's */
        /* What a finished stream left behind ends with end of file; with
         * nothing kept, a reader of a stopped target waits for the next
         * stream. */
        if (r->at && !hub->streaming)
            r->gen = hub->gen - 1;
    }
    r->next_reader = hub->readers;
    hub->readers = r;
    hub->nreaders++;
    hub->stats.readers = hub->nreaders;
    hub->stats.readers_jsonl += view == CRT_HUB_VIEW_JSONL;
    if (replay && replay->mode != CRT_REPLAY_NONE)
        replay_begin_unlocked(r, replay);
    trim_unlocked(hub);
    unlock_and_room(hub);
    return r;
}

void crt_hub_reader_free(CrtHubReader *r)
{
    CrtHub *hub;
    CrtHubReader **link;

    if (!r)
        return;
    hub = r->hub;
    g_mutex_lock(&hub->lock);
    for (link = &hub->readers; *link != r; link = &(*link)->next_reader)
        ;
    *link = r->next_reader;
    hub->nreaders--;
    hub->stats.readers = hub->nreaders;
    hub->stats.readers_jsonl -= r->view == CRT_HUB_VIEW_JSONL;
    release_window_unlocked(r);
    while (r->at)
        reader_advance_unlocked(r);
    trim_unlocked(hub);
    unlock_and_room(hub);
    crt_replay_cursor_free(r->replay);
    if (r->replay_line)
        g_string_free(r->replay_line, TRUE);
    g_free(r->ring);
    if (r->line)
        g_string_free(r->line, TRUE);
    g_free(r);
}

static const char *status_name(int status)
{
    const char *name;

    if (status == 0)
        return "ok";
    name = strerrorname_np(-status);
    return name ? name : "EUNKNOWN";
}

/* What of the current entry the reader sees: for `data` the payload (errors
 * are skipped), for `records` a header line then the payload, for jsonl
 * one line that holds the payload (see shown_length). */
static gboolean entry_visible(CrtHubReader *r, Entry *e)
{
    return e->eos || r->view != CRT_HUB_VIEW_DATA || e->length > 0;
}

/* The payload bytes that follow the reader's line of `e`: none for jsonl,
 * whose line carries them. */
static size_t shown_length(const CrtHubReader *r, const Entry *e)
{
    return r->view == CRT_HUB_VIEW_JSONL ? 0 : e->length;
}

/* At an end-of-stream marker: the reader passes it and gets end of file
 * (once: its generation catches up).  Lock held. */
static gboolean take_eos_unlocked(CrtHubReader *r)
{
    Entry *e = r->at;

    if (!e || !e->eos || r->offset > 0)
        return FALSE;
    r->gen = MAX(r->gen, e->eos_gen);
    reader_advance_unlocked(r);
    return TRUE;
}

static const char *status_word(const Entry *e)
{
    return e->event ? e->event : status_name(e->status);
}

/* An entry's `records` header line into buf; its length. */
static size_t make_header(char *buf, size_t cap, const Entry *e)
{
    int n = snprintf(buf, cap, "%" PRIu64 " %" PRId64 ".%09" PRId64 " %s %zu\n", e->seq,
                     e->time_ns / 1000000000, e->time_ns % 1000000000, status_word(e),
                     e->length);

    return (size_t)MIN(n, (int)cap - 1);
}

/* An entry's records.jsonl line into `line`; its length. */
static size_t make_jsonl(GString *line, const Entry *e)
{
    CrtJsonlEntry j = {e->seq,         e->time_ns, e->mono_ns,
                       status_word(e), e->buffer,  e->length};

    g_string_truncate(line, 0);
    return crt_jsonl_append(line, &j);
}

/* The line `view` shows before (records) or instead of (jsonl) the
 * payload of `e`, made in `hdr` (HEADER_MAX bytes) or in *line (made on
 * first use): its length, 0 for `data`; *text is where it is. */
static size_t make_line(CrtHubView view, const Entry *e, char *hdr, GString **line,
                        const char **text)
{
    size_t n = 0;

    *text = hdr;
    if (view == CRT_HUB_VIEW_RECORDS) {
        n = make_header(hdr, HEADER_MAX, e);
    } else if (view == CRT_HUB_VIEW_JSONL) {
        if (!*line)
            *line = g_string_sized_new(HEADER_MAX);
        n = make_jsonl(*line, e);
        *text = (*line)->str; /* after the line grew */
    }
    return n;
}

/* The reader's line of its current entry, made once per entry: its
 * length.  The bytes are then at header_text(r). */
static size_t current_header(CrtHubReader *r, Entry *e)
{
    const char *text;

    if (r->header_len == 0)
        r->header_len = make_line(r->view, e, r->header, &r->line, &text);
    return r->header_len;
}

static const char *header_text(const CrtHubReader *r)
{
    return r->line ? r->line->str : r->header;
}

/* Describe what a reader sees of `e` (header `hdr` of `hlen` bytes, then
 * `plen` bytes of the payload) from byte `offset`, up to `size` bytes: at
 * most two pieces, added to iov.  Returns the bytes. */
static size_t entry_pieces(const Entry *e, const char *hdr, size_t hlen, size_t plen,
                           size_t offset, size_t size, struct iovec *iov, int *niov)
{
    size_t done = 0, total = hlen + plen;

    while (done < size && offset < total) {
        gboolean in_header = offset < hlen;
        size_t n = MIN(size - done, in_header ? hlen - offset : total - offset);
        const char *src =
            in_header ? hdr + offset : (const char *)e->buffer + (offset - hlen);

        iov[(*niov)++] = (struct iovec){(void *)src, n};
        done += n;
        offset += n;
    }
    return done;
}

static void skip_invisible_unlocked(CrtHubReader *r)
{
    while (r->at && r->offset == 0 && !entry_visible(r, r->at))
        reader_advance_unlocked(r);
}

/* Advance the reader by `bytes` of what it sees; lock held. */
static void consume_unlocked(CrtHubReader *r, size_t bytes)
{
    while (bytes > 0 && r->at && !r->at->eos) {
        size_t total = current_header(r, r->at) + shown_length(r, r->at);
        size_t step = MIN(bytes, total - r->offset);

        r->last_start = r->pos - r->offset;
        r->pos += step;
        if (r->view == CRT_HUB_VIEW_JSONL)
            r->hub->stats.jsonl_bytes += step;
        bytes -= step;
        if (r->offset + step < total) {
            r->offset += step;
            return;
        }
        reader_advance_unlocked(r);
        r->hub->stats.delivered++;
        skip_invisible_unlocked(r);
    }
}

/* End of file for a reader with nothing left: once per end of stream, or
 * for good after close.  Lock held. */
static gboolean at_eof_unlocked(CrtHubReader *r)
{
    CrtHub *hub = r->hub;

    if (r->at || (r->gen == hub->gen && !hub->closed))
        return FALSE;
    r->gen = hub->gen;
    return TRUE;
}

/* Describe, without moving, what a read of `size` bytes at the reader's
 * position hands out: at most max_iov pieces.  Lock held. */
static size_t describe_unlocked(CrtHubReader *r, size_t size, CrtFraming framing,
                                struct iovec *iov, int max_iov, int *niov)
{
    size_t done = 0, offset = r->offset;

    for (Entry *e = r->at; e && done < size && *niov + 2 <= max_iov;
         e = e->next, offset = 0) {
        size_t hlen;

        if (e->eos)
            break; /* the end of file comes with the next read */
        if (offset == 0 && !entry_visible(r, e))
            continue;
        if (e != r->at && r->view != CRT_HUB_VIEW_DATA)
            break;                   /* the header buffer holds one entry's line */
        hlen = current_header(r, e); /* before header_text: it may grow the line */
        done += entry_pieces(e, header_text(r), hlen, shown_length(r, e), offset,
                             size - done, iov, niov);
        if (framing == CRT_FRAMING_RECORD)
            break;
    }
    return done;
}

/* The pieces of `n` bytes of the ring that start `back` bytes before its
 * newest byte's end (at most two). */
static size_t ring_pieces(CrtHubReader *r, size_t back, size_t n, struct iovec *iov,
                          int *niov)
{
    size_t start = (r->ring_head + r->ring_size - back) % r->ring_size;
    size_t first = MIN(n, r->ring_size - start);

    iov[(*niov)++] = (struct iovec){r->ring + start, first};
    if (n > first)
        iov[(*niov)++] = (struct iovec){r->ring, n - first};
    return n;
}

/* Room for `need` bytes in the ring (at least CRT_HUB_WINDOW), keeping its
 * newest bytes: allocates only when a read is larger than any before. */
static void ring_reserve(CrtHubReader *r, size_t need)
{
    size_t size = MAX(r->ring_size, CRT_HUB_WINDOW);
    struct iovec iov[2];
    int niov = 0;
    char *ring;

    if (need <= r->ring_size)
        return;
    while (size < need)
        size *= 2;
    ring = g_malloc(size);
    if (r->ring_len > 0) {
        ring_pieces(r, r->ring_len, r->ring_len, iov, &niov);
        memcpy(ring, iov[0].iov_base, iov[0].iov_len);
        if (niov > 1)
            memcpy(ring + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
    }
    g_free(r->ring);
    r->ring = ring;
    r->ring_size = size;
    r->ring_head = r->ring_len;
}

static void ring_put(CrtHubReader *r, const char *src, size_t n)
{
    r->ring_len = MIN(r->ring_len + n, r->ring_size);
    while (n > 0) {
        size_t k = MIN(n, r->ring_size - r->ring_head);

        memcpy(r->ring + r->ring_head, src, k);
        r->ring_head = (r->ring_head + k) % r->ring_size;
        src += k;
        n -= k;
    }
}

/* Copy what the reader may read, up to `size` bytes, into its window and
 * move it on; the bytes.  Lock held. */
static size_t copy_unlocked(CrtHubReader *r, size_t size, CrtFraming framing)
{
    size_t done = 0;

    while (r->at && !r->at->eos && done < size) {
        struct iovec iov[2];
        int niov = 0;
        size_t hlen = current_header(r, r->at);
        size_t n = entry_pieces(r->at, header_text(r), hlen, shown_length(r, r->at),
                                r->offset, size - done, iov, &niov);

        ring_reserve(r, done + n);
        for (int i = 0; i < niov; i++)
            ring_put(r, iov[i].iov_base, iov[i].iov_len);
        done += n;
        consume_unlocked(r, n);
        if (framing == CRT_FRAMING_RECORD)
            break;
    }
    return done;
}

/* ---- replays (hub-history.h) ----------------------------------------- */

void crt_hub_set_history(CrtHub *hub, const CrtHistoryLimits *limits)
{
    g_mutex_lock(&hub->lock);
    crt_history_set_limits(hub->history, limits, g_get_real_time() * 1000);
    g_mutex_unlock(&hub->lock);
}

/* An entry of the history as the read code sees entries. */
static void entry_view(Entry *v, const CrtHistItem *it)
{
    memset(v, 0, sizeof *v);
    v->buffer = (void *)it->data;
    v->length = it->length;
    v->status = it->status;
    v->seq = it->seq;
    v->time_ns = it->time_ns;
    v->mono_ns = it->mono_ns;
    v->event = it->event;
}

/* The replay's next entry that the reader sees (data readers skip markers
 * and empty entries), or NULL once the replay is over (the cursor goes).
 * Entries the history let go before the reader got to them count as its
 * drops.  Lock held. */
static CrtHistItem *replay_entry_unlocked(CrtHubReader *r)
{
    CrtHistItem *it = NULL;
    guint64 lost = 0;

    while (r->replay &&
           (it = crt_replay_cursor_current(r->replay, r->hub->history, &lost)) != NULL) {
        if (r->view != CRT_HUB_VIEW_DATA || it->length > 0 || r->replay->offset > 0)
            break;
        crt_replay_cursor_next(r->replay);
    }
    r->drops += lost;
    r->hub->stats.dropped += lost;
    if (!it)
        g_clear_pointer(&r->replay, crt_replay_cursor_free);
    return it;
}

/* Copy what the replay holds, up to `size` bytes, into the reader's window
 * and move it on, as copy_unlocked does with live entries; the bytes (0
 * once the replay is over: the live entries follow).  Lock held. */
static size_t replay_copy_unlocked(CrtHubReader *r, size_t size, CrtFraming framing)
{
    size_t done = 0;
    CrtHistItem *it;

    while (done < size && (it = replay_entry_unlocked(r)) != NULL) {
        CrtReplayCursor *c = r->replay;
        char hdr[HEADER_MAX];
        const char *head;
        struct iovec iov[2];
        int niov = 0;
        Entry view;
        size_t hlen, plen, n;

        entry_view(&view, it);
        /* made again for each read of it: the same bytes every time */
        hlen = make_line(r->view, &view, hdr, &r->replay_line, &head);
        plen = shown_length(r, &view);
        n = entry_pieces(&view, head, hlen, plen, c->offset, size - done, iov, &niov);
        ring_reserve(r, done + n);
        for (int i = 0; i < niov; i++)
            ring_put(r, iov[i].iov_base, iov[i].iov_len);
        r->last_start = r->pos - c->offset;
        r->pos += n;
        done += n;
        if (c->offset + n < hlen + plen) {
            c->offset += n;
            break;
        }
        r->hub->stats.delivered += it->seq > 0; /* markers are not entries */
        crt_replay_cursor_next(c);
        if (framing == CRT_FRAMING_RECORD)
            break;
    }
    if (done > 0)
        r->keep = NULL; /* the window is the ring's */
    return done;
}

/* The first entry the reader gets live, from `r->at` on. */
static guint64 first_live_unlocked(CrtHubReader *r)
{
    for (Entry *e = r->at; e; e = e->next) {
        if (!e->eos)
            return e->seq;
    }
    return r->hub->next_seq + 1;
}

/* Where a replay asked for by `spec` starts, before what is held bounds
 * it.  Lock held. */
static guint64 replay_start_unlocked(CrtHubReader *r, const CrtReplaySpec *spec,
                                     gint64 now_ns)
{
    CrtHub *hub = r->hub;
    gint64 since = now_ns - (gint64)spec->age_ms * 1000000;
    guint64 from;

    switch (spec->mode) {
    case CRT_REPLAY_LAST:
        return hub->next_seq >= spec->last ? hub->next_seq - spec->last + 1 : 1;
    case CRT_REPLAY_AGE:
        from = crt_history_first_since(hub->history, since);
        for (Entry *e = r->at; e && (!from || e->seq < from); e = e->next) {
            if (!e->eos && e->time_ns >= since) {
                from = e->seq;
                break;
            }
        }
        return from ? from : hub->next_seq + 1;
    default:
        return 1;
    }
}

/* A reader opening with a replay: the kept entries older than its start
 * are not for it, the history gives what lies between its start and its
 * first live entry.  Lock held. */
static void replay_begin_unlocked(CrtHubReader *r, const CrtReplaySpec *spec)
{
    CrtHub *hub = r->hub;
    gint64 now_ns = g_get_real_time() * 1000;
    guint64 from, live, held;
    gboolean kept_too;

    crt_history_expire(hub->history, now_ns);
    from = replay_start_unlocked(r, spec, now_ns);
    held = crt_history_oldest(hub->history);
    /* Kept entries that the history holds as well come from it: the live
     * marker then falls where what came after the open begins. */
    kept_too = r->at && held && held <= MAX(from, first_live_unlocked(r));
    while (r->at && (kept_too || (!r->at->eos && r->at->seq < from))) {
        hub->stats.discarded += !r->at->eos && r->at->seq < from;
        reader_advance_unlocked(r);
    }
    live = first_live_unlocked(r);
    from = MAX(from, MIN(held ? held : live, live));
    r->replay = crt_replay_cursor_new(from, live, r->view != CRT_HUB_VIEW_DATA, now_ns);
    hub->stats.replays++;
    /* Of a stopped target, the replay ends with end of file, as what a
     * finished stream left behind does. */
    if (!hub->streaming && (from < live || r->at))
        r->gen = hub->gen - 1;
}

/* A read at the reader's position: the window moves on to what it hands
 * out.  Large pieces go out from the shared buffers, which the window then
 * keeps; small ones are copied into the ring.  What the window held before
 * is let go after the reply (crt_hub_read_done).  Lock held. */
static gssize read_on_unlocked(CrtHubReader *r, size_t size, CrtFraming framing,
                               struct iovec *iov, int *niov)
{
    size_t bytes = 0;

    if (r->replay && (bytes = replay_copy_unlocked(r, size, framing)) > 0)
        return (gssize)ring_pieces(r, bytes, bytes, iov, niov);
    skip_invisible_unlocked(r);
    if (!take_eos_unlocked(r)) {
        bytes = describe_unlocked(r, size, framing, iov, CRT_HUB_MAX_IOV, niov);
        if (bytes == 0 && !at_eof_unlocked(r) && !(r->at_eof && !r->hub->streaming)) {
            /* Nothing to reply from: the engine gets the kept buffers
             * back at once (the copied window stays). */
            release_window_unlocked(r);
            return -EAGAIN;
        }
    }
    r->at_eof = bytes == 0;
    if (bytes == 0) {
        release_window_unlocked(r);
        r->ring_len = 0; /* an end of file ends the window */
        return 0;
    }
    /* A jsonl line is the reader's own (nothing shared to hand out), and
     * the ring is its window: replay_kept_unlocked makes `records` lines
     * only. */
    if (r->view != CRT_HUB_VIEW_JSONL && bytes / (size_t)*niov >= CRT_HUB_ZERO_COPY_MIN) {
        if (!r->hold)
            r->hold = r->at;
        r->keep = r->at;
        r->keep_offset = r->offset;
        r->keep_pos = r->pos;
        r->ring_len = 0;
        consume_unlocked(r, bytes);
        return (gssize)bytes;
    }
    r->keep = NULL;
    *niov = 0;
    bytes = copy_unlocked(r, size, framing);
    return (gssize)ring_pieces(r, bytes, bytes, iov, niov);
}

/* A replay of `n` bytes at `off` from the entries the window keeps.  Lock
 * held. */
static gssize replay_kept_unlocked(CrtHubReader *r, guint64 off, size_t n,
                                   struct iovec *iov, int *niov)
{
    size_t skip = r->keep_offset + (size_t)(off - r->keep_pos), done = 0;

    for (Entry *e = r->keep; e && done < n && *niov + 2 <= CRT_HUB_MAX_IOV; e = e->next) {
        size_t hlen = 0;

        if (e->eos || !entry_visible(r, e))
            continue;
        if (r->view == CRT_HUB_VIEW_RECORDS)
            hlen = make_header(r->keep_header, sizeof r->keep_header, e);
        if (skip >= hlen + e->length) {
            skip -= hlen + e->length;
            continue;
        }
        done +=
            entry_pieces(e, r->keep_header, hlen, e->length, skip, n - done, iov, niov);
        skip = 0;
        if (r->view == CRT_HUB_VIEW_RECORDS)
            break; /* one header buffer */
    }
    return (gssize)done;
}

/* Where the retained window starts; it ends at the position.  Lock held. */
static guint64 window_start_unlocked(CrtHubReader *r, CrtFraming framing)
{
    guint64 start = r->keep ? r->keep_pos : r->pos - r->ring_len;

    return framing == CRT_FRAMING_RECORD ? MAX(start, r->last_start) : start;
}

gssize crt_hub_read_at(CrtHubReader *r, guint64 off, size_t size, CrtFraming framing,
                       struct iovec *iov, int *niov)
{
    CrtHub *hub = r->hub;
    gssize n;

    *niov = 0;
    g_mutex_lock(&hub->lock);
    if (off == r->pos) {
        n = read_on_unlocked(r, size, framing, iov, niov);
    } else if (off < r->pos && off >= window_start_unlocked(r, framing)) {
        size_t want = (size_t)MIN((guint64)size, r->pos - off);

        n = r->keep ? replay_kept_unlocked(r, off, want, iov, niov)
                    : (gssize)ring_pieces(r, (size_t)(r->pos - off), want, iov, niov);
    } else {
        n = -ESPIPE;
    }
    trim_unlocked(hub);
    unlock_and_room(hub);
    return n;
}

void crt_hub_read_done(CrtHubReader *r)
{
    CrtHub *hub = r->hub;

    g_mutex_lock(&hub->lock);
    if (r->hold)
        release_held_unlocked(r, r->keep ? r->keep : r->at);
    trim_unlocked(hub);
    unlock_and_room(hub);
}

gssize crt_hub_read(CrtHubReader *r, char *dst, size_t size, CrtFraming framing)
{
    struct iovec iov[CRT_HUB_MAX_IOV];
    int niov;
    gssize n = crt_hub_read_at(r, r->pos, size, framing, iov, &niov);
    size_t done = 0;

    for (int i = 0; n > 0 && i < niov; i++) {
        memcpy(dst + done, iov[i].iov_base, iov[i].iov_len);
        done += iov[i].iov_len;
    }
    if (n > 0)
        crt_hub_read_done(r);
    return n;
}

void crt_hub_reader_window(CrtHubReader *r, CrtFraming framing, guint64 *start,
                           guint64 *end)
{
    g_mutex_lock(&r->hub->lock);
    *start = window_start_unlocked(r, framing);
    *end = r->pos;
    g_mutex_unlock(&r->hub->lock);
}

gboolean crt_hub_readable(CrtHubReader *r)
{
    CrtHub *hub = r->hub;
    gboolean ready;

    g_mutex_lock(&hub->lock);
    skip_invisible_unlocked(r);
    trim_unlocked(hub);
    ready = replay_entry_unlocked(r) != NULL || r->at != NULL || r->gen != hub->gen ||
            hub->closed || (r->at_eof && !hub->streaming);
    unlock_and_room(hub);
    return ready;
}

guint64 crt_hub_reader_drops(CrtHubReader *r)
{
    guint64 n;

    g_mutex_lock(&r->hub->lock);
    n = r->drops;
    g_mutex_unlock(&r->hub->lock);
    return n;
}

void crt_hub_get_stats(CrtHub *hub, CrtHubStats *stats)
{
    g_mutex_lock(&hub->lock);
    crt_history_expire(hub->history, g_get_real_time() * 1000);
    *stats = hub->stats;
    stats->history_entries = crt_history_count(hub->history);
    stats->history_bytes = crt_history_bytes(hub->history);
    g_mutex_unlock(&hub->lock);
}
