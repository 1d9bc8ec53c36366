/* crtfs - channel internals shared by channel.c, channel-send.c and
 * creds.c. */
#ifndef CRTFS_CHANNEL_PRIVATE_H
#define CRTFS_CHANNEL_PRIVATE_H

#include <stdarg.h>

#include <gio/gio.h>

#include <crtfs/error.h>

#include "channel.h"

struct CrtChannel {
    char *name;
    CrtChannelPolicy policy;
    CrtChannelNotify notify;
    gpointer notify_data;
    CrtHub *hub;

    /* Lock order: ctl_lock, then lock, then an engine's or the hub's lock.
     * ctl_lock serialises control writes and may be held across blocking
     * engine calls; lock is short and guards engine, target, target_text,
     * error and framing for readers of state and stats. */
    GMutex ctl_lock;
    GMutex lock;
    CrtConfig cfg;       /* ctl_lock */
    gboolean cfg_dirty;  /* ctl_lock: the engine does not match cfg */
    gboolean shut;       /* ctl_lock */
    CrtEngine *engine;   /* written under both locks */
    GPtrArray *retired;  /* ctl_lock: engines whose buffers are still out */
    CrtEngineStats base; /* ctl_lock: counters of retired engines */
    CrtTarget *target;   /* the channel's own reference; both locks */
    gboolean target_waits; /* its spec has `wait`; `lock` */
    gboolean target_dead;  /* a fatal completion ended its stream; `lock` */
    /* Who set the target (groups owned), to open it again at `start`;
     * ctl_lock.  has_creds FALSE: the daemon itself. */
    CrtCreds creds;
    gboolean has_creds;
    /* Error lines logged in the current window, and those held back. */
    gint64 log_window; /* `lock` */
    guint log_count, log_held;
    char *target_text;   /* lock */
    char *error;         /* lock */
    CrtFraming framing;  /* lock */

    GMutex input_lock; /* guards input, payload and the in_* copies */
    GQueue input;      /* GBytes written to `input`, not sent yet */
    char *payload;
    size_t payload_len;
    CrtRequestType in_type; /* copies of cfg for the `input` file */
    guint in_count;
    guint64 in_size;

    GMutex send_lock; /* guards sessions (channel-send.c) */
    GList *sessions;
};

/* channel-send.c */
void crt_channel_send_init(CrtChannel *ch);

/* The log domain of a target's events: one line per state change and per
 * error, errors at most CRT_LOG_BURST per CRT_LOG_WINDOW_US. */
#define CRT_TARGET_LOG_DOMAIN "crtfs-target"
#define CRT_LOG_BURST 5
#define CRT_LOG_WINDOW_US (10 * G_USEC_PER_SEC)

/* The longest `error:` line, in bytes, before "..." */
#define CRT_ERROR_MAX 512

/* `msg` as one readable line: control characters and bytes that are not
 * UTF-8 escaped (\n, \t, \xNN), cut after CRT_ERROR_MAX bytes with "...".
 * Anyone can write anything to the control files, and the reasons quote
 * it. */
char *crt_channel_readable(const char *msg);
/* Make `err`'s message one readable line and put it in `error:`. */
void crt_channel_set_error_from(CrtChannel *ch, GError *err);

/* creds.c: open a target as `creds` (NULL: as the daemon). */
int crt_creds_open_target(const CrtTargetSpec *spec, const CrtCreds *creds,
                          const CrtChannelPolicy *policy, CrtTarget **out,
                          GError **error);

#endif
