/* crtfs - the pieces of a target directory (CrtChannel), for the files that
 * implement it: channel.c (control: the typed operations), channel-ctl.c
 * (the `ctl` text on top of them), channel-report.c (state and stats),
 * channel-send.c (send sessions), creds.c (opening as the writer).
 *
 * Each piece has one job and one lock; the lock order is the one chain in
 * the README ("Threads and locks").
 */
#ifndef CRTFS_CHANNEL_PRIVATE_H
#define CRTFS_CHANNEL_PRIVATE_H

#include <errno.h>

#include <gio/gio.h>

#include <crtfs/error.h>
#include <crtfs/loop.h>

#include "channel-input.h"
#include "channel-log.h"
#include "channel.h"

struct CrtChannel {
    /* Set at creation, read-only after. */
    char *name;
    CrtChannelPolicy policy;
    CrtChannelNotify notify;
    gpointer notify_data;
    CrtHub *hub;
    /* The wake-up of readers for what the I/O thread's current task made
     * ready: one per task, not one per completion (hub_notify). */
    CrtLoop *loop;
    CrtTask wake_task;

    /* Control: one control operation at a time (start, stop, a target or
     * a key set, shutdown).  ctl.lock may be held across blocking engine
     * calls; everything here is touched only with it held. */
    struct {
        GMutex lock;
        CrtConfig cfg;
        gboolean cfg_dirty; /* the engine does not match cfg */
        gboolean shut;      /* shut down: every operation fails with ENODEV */
        GPtrArray *retired; /* engines whose buffers are still out */
        /* Who set the target (groups owned), to open it again at `start`.
         * has_creds FALSE: the daemon itself. */
        CrtCreds creds;
        gboolean has_creds;
        /* on_open ran for the current stream, so on_close is due
         * (channel-lines.c). */
        gboolean opened;
    } ctl;

    /* What the directory is now, for readers of state, stats, data and
     * send: written by control operations (which hold ctl.lock too) and by
     * the completion callback; now.lock is short and never held across a
     * blocking call. */
    struct {
        GMutex lock;
        CrtEngine *engine;     /* NULL until the first target or config */
        CrtEngineStats base;   /* counters of retired engines */
        CrtTarget *target;     /* the channel's own reference */
        char *target_text;     /* the spec as written */
        gboolean target_waits; /* its spec has `wait` */
        gboolean target_dead;  /* a fatal completion ended its stream */
        char *dead_reason;     /* why, or why `start` could not open it again */
        gboolean target_live;  /* a live source: keep=auto keeps nothing */
        /* Copies of the configuration that readers need. */
        CrtFraming framing;
        CrtMode mode;
        CrtRequestType type;
        size_t out_size;
        gboolean purge_on_suspend;
        CrtKeep keep; /* as configured (auto unresolved) */
    } now;

    /* Modem lines (channel-lines.c): `lock` guards these; it is short,
     * never held across a call, and taken last (on the target's event
     * thread, under the target's watch lock, before the hub's). */
    struct {
        GMutex lock;
        guint64 changes, breaks, framing, parity, overruns; /* line events */
        gboolean watched;  /* the current target reports line events */
        GSList *running;   /* GCancellable of each `lines` write under way */
        gboolean shutting; /* rmdir/unmount: sequences stop */
    } lines;

    CrtChannelLog log;   /* the `error:` line and the event log */
    CrtInputQueue input; /* the `input` queue */
};

/* Record `err`'s reason (made one readable line, in `err` too) and pass it
 * to the caller: the channel's one way to fail.  Returns -errno. */
int crt_channel_fail(CrtChannel *ch, GError **error, int err, GError *cause);
int crt_channel_failf(CrtChannel *ch, GError **error, int err, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
/* Run op(ch, arg, error) as the one control operation (ctl.lock held),
 * unless the channel is shut down (-ENODEV); log `done` when it succeeds
 * (NULL: nothing). */
typedef int (*CrtChannelControlFn)(CrtChannel *ch, gconstpointer arg, GError **error);
int crt_channel_control(CrtChannel *ch, CrtChannelControlFn op, gconstpointer arg,
                        const char *done, GError **error);
/* The errno a user gets for `err`: ENOTCONN on a FUSE file is what users
 * see when the daemon is gone, so the daemon never answers it; the
 * engine's "no target" becomes EDESTADDRREQ.  Positive errnos. */
static inline int crt_channel_user_errno(int err)
{
    return err == ENOTCONN ? EDESTADDRREQ : err;
}

/* The keep policy in force: the configured one, auto resolved for the
 * current target.  now.lock held. */
CrtKeep crt_channel_keep_unlocked(CrtChannel *ch);

/* What `presence:` says (newly allocated) and whether the target is there
 * (crtfs_present): a `wait` target says itself; any other is gone once its
 * stream ended by itself or its path names another file.  now.lock held. */
gboolean crt_channel_presence_unlocked(CrtChannel *ch, char **text);
/* Add a retired engine's counters to `sum`. */
void crt_channel_add_stats(CrtEngineStats *sum, const CrtEngineStats *st);
/* Wake whoever waits on the directory's files. */
void crt_channel_wake(CrtChannel *ch);

/* channel-lines.c: set up and tear down the lines piece; watch the line
 * events of `t` (a target without lines is no failure) and stop; run
 * on_open once a stream starts and on_close before it ends (ctl.lock held;
 * a failure is logged and shown in `error:`, the stream goes on); stop
 * every running `lines` write (rmdir, unmount); the line_* figures of
 * `stats` into out[*n...]. */
void crt_channel_lines_init(CrtChannel *ch);
void crt_channel_lines_clear(CrtChannel *ch);
void crt_channel_lines_watch(CrtChannel *ch, CrtTarget *t);
void crt_channel_lines_unwatch(CrtChannel *ch, CrtTarget *t);
void crt_channel_lines_open_locked(CrtChannel *ch);
void crt_channel_lines_close_locked(CrtChannel *ch);
void crt_channel_lines_cancel_all(CrtChannel *ch);
void crt_channel_lines_stats(CrtChannel *ch, CrtStat *out, guint *n);

/* creds.c: open a target as `creds` (NULL: as the daemon). */
int crt_creds_open_target(const CrtTargetSpec *spec, const CrtCreds *creds,
                          const CrtChannelPolicy *policy, CrtTarget **out,
                          GError **error);

#endif
