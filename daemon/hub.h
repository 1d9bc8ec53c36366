/* crtfs - the broadcast hub behind a target's `data`, `records` and
 * `records.jsonl` files.
 *
 * Every streamed output buffer becomes an entry, in sequence order.  Every
 * reader open when the entry arrives gets it; an entry that arrives while
 * nobody reads is kept for the next reader that opens.  Entries are shared
 * between readers: the entry lives in the output buffer's client context,
 * and the buffer goes back to its engine when the last reader has read it
 * (and let go of it in its retained window, see crt_hub_read_at).  Buffers
 * shorter than CRT_HUB_COPY_MAX are copied into an entry of their own
 * instead, up to the copy budget (crt_hub_set_copy), and go back at once.
 * A reader that falls behind meets the overflow policy: `block` (the copy
 * budget is spent, then the engine runs out of buffers and the stream
 * pauses) or `drop-oldest` (the oldest entry is dropped for whoever still
 * holds it, and counted).
 *
 * No FUSE here.  Threads: every function takes the hub lock; the notify
 * callback runs without it.  Entries go back with crt_engine_buffer_put
 * under the hub lock (the lock order: README, "Threads and locks").
 */
#ifndef CRTFS_HUB_H
#define CRTFS_HUB_H

#include <sys/types.h>
#include <sys/uio.h>

#include "hub-history.h"
#include "target-config.h"
#include <crtfs/engine.h>

typedef struct CrtHub CrtHub;
typedef struct CrtHubReader CrtHubReader;

/* Something a reader may wait for happened (data, end of stream, close). */
typedef void (*CrtHubNotify)(CrtHub *hub, gpointer data);

typedef struct {
    guint readers;
    guint64 queued;      /* entries held now */
    guint64 delivered;   /* entries fully read, summed over readers */
    guint64 dropped;     /* entries dropped for a reader (drop-oldest) */
    guint64 discarded;   /* entries not kept while nobody read (keep) */
    guint64 last_seq;    /* newest entry's number (the hub numbers entries 1, 2, 3 ...) */
    guint readers_jsonl; /* of `readers`, those of records.jsonl */
    guint64 jsonl_bytes; /* bytes of records.jsonl handed out (replays not counted) */
    guint64 history_entries; /* held by the history now (crt_hub_set_history) */
    guint64 history_bytes;   /* what they cost, counted against history_bytes */
    guint64 replays;         /* readers opened with a replay */
} CrtHubStats;

/* The client context size an engine feeding this hub must give its output
 * buffers (the entry lives there). */
size_t crt_hub_context_size(void);

CrtHub *crt_hub_new(CrtHubNotify notify, gpointer data);
/* Release every entry (buffers back to their engines) and free. */
void crt_hub_free(CrtHub *hub);

/* The most entries without a buffer (write-stream completions, errors) the
 * hub ever holds; beyond it the oldest go, counted as drops. */
#define CRT_HUB_MAX_BUFFERLESS 4096

/* The overflow policy, and how many bufferless entries the hub holds before
 * it acts (1 to CRT_HUB_MAX_BUFFERLESS; the channel uses out_count): with
 * nobody reading, or under drop-oldest, the oldest of them go (counted);
 * under `block` with readers, crt_hub_input_gate turns the producer away
 * until the slowest reader has caught up. */
void crt_hub_set_policy(CrtHub *hub, CrtOverflow overflow, guint bufferless_cap);

/* For producers of bufferless completions (the input callback of a write
 * stream): FALSE while the stream must pause (`block`, readers hold the cap
 * unread).  The hub then calls `room` (without its lock, from the thread of
 * the reader that made room) once the producer may go on. */
gboolean crt_hub_input_gate(CrtHub *hub);
void crt_hub_set_room_notify(CrtHub *hub, CrtHubNotify room, gpointer data);

/* The buffer-output callback's work: take one completion.  -ECANCELED
 * completions are not entries.  Returns the disposition for the engine. */
CrtDisposition crt_hub_push(CrtHub *hub, CrtEngine *engine, const CrtOutput *out);

/* An entry without data for something that happened on the line (a
 * modem-line change, a break, a UART error): `records` shows `word` as its
 * STATUS ("line:cts=1", "line:framing+3") with LENGTH 0; `data` readers
 * see nothing of it.  Numbered, kept and dropped like the other bufferless
 * entries (errors); `time_ns` is CLOCK_REALTIME.  Any thread. */
void crt_hub_push_event(CrtHub *hub, const char *word, gint64 time_ns);

/* Streaming started (readers then get end of file at its end). */
void crt_hub_begin_stream(CrtHub *hub);
/* Streaming stopped: readers that have read everything get end of file. */
void crt_hub_end_stream(CrtHub *hub);
/* The target directory goes away: every read ends now. */
void crt_hub_close(CrtHub *hub);
/* What waits for the next reader while nobody reads (a resolved policy:
 * not CRT_KEEP_AUTO).  Entries beyond it go as they arrive, and when a
 * reader opens (age), counted in `discarded`.  Readers that are open get
 * everything whatever the policy. */
void crt_hub_set_keep(CrtHub *hub, const CrtKeep *keep);

/* With nobody reading, keep at most `max` entries (the oldest go, counted
 * as drops): a rebuilt engine's pool bounds what waits for the next
 * reader, not the sum of every pool the directory ever had. */
void crt_hub_limit_kept(CrtHub *hub, guint max);
/* Drop every kept entry of `engine` (before that engine is freed). */
void crt_hub_release_engine(CrtHub *hub, CrtEngine *engine);

/* What a reader sees of each entry. */
typedef enum {
    CRT_HUB_VIEW_DATA = 0,    /* `data`: the payload; entries without one are skipped */
    CRT_HUB_VIEW_RECORDS = 1, /* `records`: "SEQ SEC.NSEC STATUS LENGTH\n", the payload */
    CRT_HUB_VIEW_JSONL,       /* `records.jsonl`: one line of JSON (jsonl.h) */
} CrtHubView;

/* A reader of one view of the stream.  A jsonl reader's lines are made as
 * it reads (one per entry, kept while the entry is partly read) and always
 * copied to its window: the retained window below is its ring. */
CrtHubReader *crt_hub_reader_new(CrtHub *hub, CrtHubView view);

/* What the history keeps (hub-history.h; off by default, crt_hub_new):
 * copies of every entry the hub numbers, read or not, within the limits. */
void crt_hub_set_history(CrtHub *hub, const CrtHistoryLimits *limits);

/* A reader that starts back in the stream (`data@5`; `replay` NULL or
 * CRT_REPLAY_NONE: as crt_hub_reader_new).  It reads the entries from the
 * start `replay` asks for (N back from the newest, the ones younger than a
 * duration, or all), as far as the history or the entries kept for the
 * next reader still hold them, then goes on live: no gap, no entry twice,
 * each with its own number.  Kept entries older than the start are not
 * handed to it (counted as discarded); kept entries that the history holds
 * too come from the history.  `records` and records.jsonl readers get a marker
 * entry before the replay ("replay:from=SEQ") and one where the live
 * entries begin ("live:from=SEQ"), both of SEQ 0 and LENGTH 0; of a
 * stopped target the replay ends with end of file.  Replayed bytes are
 * copies in the reader's window (crt_hub_read_at replays them on a seek
 * back like any other). */
CrtHubReader *crt_hub_reader_new_replay(CrtHub *hub, CrtHubView view,
                                        const CrtReplaySpec *replay);
void crt_hub_reader_free(CrtHubReader *reader);

/* Buffers shorter than this are copied when they arrive (into an entry of
 * their own, shared by every reader like any other) and go back to the
 * engine at once, which re-arms them: the pool then does not bound how much
 * one read carries (a read of 64-byte buffers packs up to its size, not
 * out_count of them).  Larger ones stay shared zero-copy.  4 KiB: from
 * there on out_count buffers fill a read well (16 x 4 KiB = 64 KiB). */
#define CRT_HUB_COPY_MAX 4096
/* The most bytes the copies hold at once (whole copy chunks, each entry's
 * payload plus its own bookkeeping, sizeof an entry, see hub.c): what the slowest reader (or the next one,
 * entries kept while nobody reads) has not read yet.  Beyond it `block`
 * holds the engine's buffers again (the pool then pauses the stream) and
 * `drop-oldest` drops the oldest copies (counted).  Counted in the mount's
 * max_target_memory for targets whose out_size is below CRT_HUB_COPY_MAX. */
#define CRT_HUB_COPY_BYTES (1024 * 1024)

/* How many bytes the copies may hold (CRT_HUB_COPY_BYTES for the daemon's
 * targets; 0, the default of crt_hub_new, copies nothing: every entry then
 * holds its buffer). */
void crt_hub_set_copy(CrtHub *hub, size_t budget);

/* The most pieces crt_hub_read_at describes. */
#define CRT_HUB_MAX_IOV 64
/* Pieces at least this large on average go out from the shared buffers;
 * smaller ones are cheaper to copy than to hand to the kernel one by one. */
#define CRT_HUB_ZERO_COPY_MIN (16 * 1024)
/* What a reader's window holds at least after reads of small pieces (and
 * what its ring takes once it has copied anything): a pipe's capacity. */
#define CRT_HUB_WINDOW (64 * 1024)

/* A read of up to `size` bytes at stream offset `off` of the reader's
 * stream: the bytes handed out since it opened, which is the file offset
 * of an open `data`, `records` or `records.jsonl` file.
 *
 * At the reader's position (every byte before it handed out) the read
 * continues the stream and moves the position on.  At an earlier offset
 * still in the retained window it hands out the same bytes again and moves
 * nothing (bash's `read`, head(1) and stdio seek back over what they read
 * ahead; the next reader of the file descriptor starts there).  The window
 * is at least everything the last read handed out, and after reads of small
 * pieces the last CRT_HUB_WINDOW bytes (more after larger reads); under
 * `record` framing only the part in the entry the last read came from; an
 * end of file empties it.
 *
 * The bytes are described in iov (*niov pieces, at most CRT_HUB_MAX_IOV):
 * the shared buffers themselves for large pieces, else the reader's own
 * copy; they stay valid until the reader's next read or its free.  Returns
 * their count (> 0), 0 at end of file, -EAGAIN when nothing is there yet,
 * -ESPIPE when `off` lies before the window or after the position.
 * `record` framing hands out at most one buffer (the rest of a partly read
 * one comes next); `stream` packs.  One read at a time per reader. */
gssize crt_hub_read_at(CrtHubReader *reader, guint64 off, size_t size, CrtFraming framing,
                       struct iovec *iov, int *niov);
/* After a read_at that returned bytes, once the reply has left: the
 * buffers the window no longer needs go back (a reply goes out before
 * anything else is done).  Forgetting it only delays them to the reader's
 * next read that finds nothing, or its free. */
void crt_hub_read_done(CrtHubReader *reader);
/* crt_hub_read_at at the reader's position, copied to dst (then
 * crt_hub_read_done). */
gssize crt_hub_read(CrtHubReader *reader, char *dst, size_t size, CrtFraming framing);
/* The offsets a read may ask for now: the window [*start, *end), *end being
 * the position. */
void crt_hub_reader_window(CrtHubReader *reader, CrtFraming framing, guint64 *start,
                           guint64 *end);

/* Whether a read at the reader's position would not return -EAGAIN. */
gboolean crt_hub_readable(CrtHubReader *reader);
guint64 crt_hub_reader_drops(CrtHubReader *reader);

void crt_hub_get_stats(CrtHub *hub, CrtHubStats *stats);

#endif
