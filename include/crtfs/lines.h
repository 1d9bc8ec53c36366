/* crtfs - a serial line's modem lines, break and line events (issue 12).
 *
 * Targets whose kind has modem lines (a tty path, the simulator's `uart`
 * generator, and a `wait` target while its inner one has them) answer these
 * calls; every other target answers -ENOTTY with the reason in words (a
 * pseudo-terminal, a FIFO, a socket: "has no modem lines"), never a silent
 * no-op.
 *
 * Threads: any thread but the loop thread (the calls may block briefly in
 * an ioctl; a break blocks for its duration).  Line events are delivered to
 * the watcher on a thread of the target's own (not the loop thread), one at
 * a time, in the order they happened.
 */
#ifndef CRTFS_LINES_H
#define CRTFS_LINES_H

#include <gio/gio.h>
#include <glib.h>

#include <crtfs/export.h>
#include <crtfs/engine.h>
#include <crtfs/target.h>

G_BEGIN_DECLS

/* The modem lines, as bits.  DTR and RTS are outputs; the rest inputs. */
typedef enum {
    CRT_LINE_DTR = 1 << 0,
    CRT_LINE_RTS = 1 << 1,
    CRT_LINE_CTS = 1 << 2,
    CRT_LINE_DSR = 1 << 3,
    CRT_LINE_DCD = 1 << 4,
    CRT_LINE_RI = 1 << 5,
} CrtLine;

#define CRT_LINES_OUTPUTS (CRT_LINE_DTR | CRT_LINE_RTS)
#define CRT_LINES_INPUTS (CRT_LINE_CTS | CRT_LINE_DSR | CRT_LINE_DCD | CRT_LINE_RI)
#define CRT_LINES_ALL (CRT_LINES_OUTPUTS | CRT_LINES_INPUTS)

/* "dtr", "rts", "cts", "dsr", "dcd", "ri" for one bit; NULL otherwise. */
CRT_API const char *crt_line_name(CrtLine line);
/* The bit a name (any case) stands for, or 0. */
CRT_API CrtLine crt_line_from_name(const char *name);

/* Read every modem line: 0 and *lines (CrtLine bits set for the lines that
 * are up), or -errno with `error` in words. */
CRT_API int crt_target_lines_get(CrtTarget *target, guint *lines, GError **error);

/* Set the outputs in `mask` (CRT_LINES_OUTPUTS bits only, else -EINVAL) to
 * the values in `values`; the others stay. */
CRT_API int crt_target_lines_set(CrtTarget *target, guint mask, guint values,
                                 GError **error);

/* Hold a break on the line for `ms` milliseconds (1 to 10000), then
 * release it; returns when the break is over. */
CRT_API int crt_target_send_break(CrtTarget *target, guint ms, GError **error);

typedef enum {
    CRT_LINE_EVENT_CHANGE = 1, /* an input line changed: `line`, `up` */
    CRT_LINE_EVENT_BREAK,      /* breaks received: `count` */
    CRT_LINE_EVENT_FRAMING,    /* framing errors: `count` */
    CRT_LINE_EVENT_PARITY,     /* parity errors: `count` */
    CRT_LINE_EVENT_OVERRUN,    /* overruns (hardware and buffer): `count` */
} CrtLineEventKind;

typedef struct {
    CrtLineEventKind kind;
    CrtLine line;   /* CHANGE: the input line that changed */
    gboolean up;    /* CHANGE: its new level */
    guint64 count;  /* BREAK and the errors: how many since the last event */
    gint64 time_ns; /* CLOCK_REALTIME when it was seen */
} CrtLineEvent;

/* "change", "break", "framing", "parity", "overrun". */
CRT_API const char *crt_line_event_kind_to_string(CrtLineEventKind kind);

typedef void (*CrtLineEventFn)(CrtTarget *target, const CrtLineEvent *event,
                               gpointer data);

/* Report line events to `fn(target, event, data)` until unwatched or the
 * target is closed; one watcher per target (a second watch replaces the
 * first).  Changes of CTS, DSR, DCD and RI, received breaks and framing,
 * parity and overrun errors.  0, or -ENOTTY (-EOPNOTSUPP) with `error` when
 * the target cannot report them; `destroy(data)` runs when the watcher is
 * no longer called (also on failure). */
CRT_API int crt_target_watch_lines(CrtTarget *target, CrtLineEventFn fn, gpointer data,
                                   GDestroyNotify destroy, GError **error);
/* Stop reporting; when it returns, `fn` is not running and will not run
 * again.  Not from within `fn` (it would wait for itself). */
CRT_API void crt_target_unwatch_lines(CrtTarget *target);

/* Make `count` events of `kind` (not CHANGE) happen at the far end of the
 * line, as a test would with a real device: only the simulator's `uart`
 * can (for it, a BREAK or an error arrives as a received one would, as an
 * event and in its counters); every other target answers -EOPNOTSUPP. */
CRT_API int crt_target_line_inject(CrtTarget *target, CrtLineEventKind kind, guint count,
                                   GError **error);

/* ---- sequences ------------------------------------------------------------
 *
 * A sequence is the text an admin writes to a target's `lines` file and to
 * its on_open/on_close keys: words separated by blanks, applied in order.
 *
 *   dtr=0|1 rts=0|1     set an output (adjacent set words with nothing
 *                       between them go out in one call, unless the same
 *                       line is set twice)
 *   break=DURATION      hold a break for that long
 *   wait=DURATION       wait
 *   send=TEXT           write bytes to the target; TEXT takes the escapes
 *                       \r \n \t \\ and \xHH (a blank is \x20), at most
 *                       CRT_LINE_SEQ_MAX_SEND bytes
 *   inject=KIND[*N]     the simulator's UART only: make N (1 to 1000) breaks
 *                       or framing, parity or overrun errors arrive
 *                       (KIND break|framing|parity|overrun)
 *
 * DURATION is a whole number with ms or s (250ms, 2s).  At most
 * CRT_LINE_SEQ_MAX_WORDS words; the waits and breaks of one sequence add
 * up to at most CRT_LINE_SEQ_MAX_MS.
 */
#define CRT_LINE_SEQ_MAX_WORDS 64
#define CRT_LINE_SEQ_MAX_MS 10000
#define CRT_LINE_SEQ_MAX_SEND 4096

typedef struct CrtLineSeq CrtLineSeq;

/* Parse `text` into *out (free with crt_line_seq_free).  0, or -EINVAL
 * with `error` naming the word, its position (word N) and what was
 * expected.  An empty text is an empty sequence.  Pure; any thread. */
CRT_API int crt_line_seq_parse(const char *text, CrtLineSeq **out, GError **error);
CRT_API void crt_line_seq_free(CrtLineSeq *seq);
/* How many words the sequence has, and how long its waits and breaks take
 * (ms). */
CRT_API guint crt_line_seq_words(const CrtLineSeq *seq);
CRT_API guint crt_line_seq_duration_ms(const CrtLineSeq *seq);
/* Whether it has a send= word (it then needs an engine to run). */
CRT_API gboolean crt_line_seq_sends(const CrtLineSeq *seq);

/* Run the sequence on `target`, step by step, returning when it is done.
 * send= words go through crt_engine_send_sync(engine, WRITE), so they are
 * ordered with the engine's other writes (each may take up to
 * CRT_LINE_SEQ_MAX_MS to be written, else -ETIMEDOUT); `engine` may be NULL for a
 * sequence without send= (else -EDESTADDRREQ).  `cancel` (may be NULL)
 * stops it between steps and inside waits: -ECANCELED.  A failing step
 * stops the sequence: -errno with `error` naming the word ("word 3
 * \"dtr=1\": ..."); the steps before it stay done.  Threads: as the calls
 * above (never the loop thread); blocks for the sequence's duration. */
CRT_API int crt_line_seq_run(CrtTarget *target, const CrtLineSeq *seq, CrtEngine *engine,
                             GCancellable *cancel, GError **error);

G_END_DECLS

#endif
