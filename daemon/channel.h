/* crtfs - one target directory, without FUSE: its configuration, target,
 * engine, broadcast hub, `input` queue, `send` sessions, state and stats.
 *
 * The control operations are typed functions (crt_channel_start, _stop,
 * _suspend, _resume, _set_target, _config_set); crt_channel_ctl is the
 * `ctl` file's text on top of them.  Every control operation validates
 * first and changes nothing when it fails; the failure's words become the
 * `error:` line of `state`, and a success is logged.
 *
 * Threads: any thread but the loop thread (operations may block on
 * stop-and-wait or on opening a target); control operations run one at a
 * time, readers of state and stats never wait for them.  The notify
 * callback runs without locks, from any thread, whenever a reader, writer
 * or send session may make progress.  The pieces and their locks:
 * channel-private.h.
 */
#ifndef CRTFS_CHANNEL_H
#define CRTFS_CHANNEL_H

#include <sys/types.h>

#include <gio/gio.h>

#include "target-config.h"
#include <crtfs/engine.h>

#include "hub.h"

typedef struct CrtChannel CrtChannel;
typedef struct CrtSendSession CrtSendSession;

typedef void (*CrtChannelNotify)(CrtChannel *ch, gpointer data);

/* Who wrote a spec: the target opens with these credentials. */
typedef struct {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int ngroups;
} CrtCreds;

typedef struct {
    gboolean allow_exec_for_users; /* exec: specs from non-root writers */
    guint64 max_memory;            /* bytes of buffers a target may have; 0: no limit */
} CrtChannelPolicy;

CrtChannel *crt_channel_new(const char *name, const CrtChannelPolicy *policy,
                            CrtChannelNotify notify, gpointer data);
/* Stop and wait, end every read, free.  Readers and send sessions must be
 * gone (the filesystem closes them first); see crt_channel_shutdown. */
void crt_channel_free(CrtChannel *ch);
/* Stop and wait, and end every read and send (rmdir, unmount).  After this
 * every control write fails with -ENODEV. */
void crt_channel_shutdown(CrtChannel *ch);

const char *crt_channel_name(CrtChannel *ch);

/* Start streaming; a target whose stream ended by itself, or whose path
 * names another file now, is opened again first.  -EDESTADDRREQ without a
 * target, -EALREADY while streaming. */
int crt_channel_start(CrtChannel *ch, GError **error);
/* Stop streaming; `wait`: until every request is back (stop-wait).
 * Readers get end of file. */
int crt_channel_stop(CrtChannel *ch, gboolean wait, GError **error);
/* Suspend and resume the stream (-EDESTADDRREQ before any target, -EALREADY
 * when already so).  Under purge_on_suspend a suspend ends the readers'
 * stream. */
int crt_channel_suspend(CrtChannel *ch, GError **error);
int crt_channel_resume(CrtChannel *ch, GError **error);
/* The purge_on_suspend key (system sleep suspends only such targets). */
gboolean crt_channel_purges_on_suspend(CrtChannel *ch);

/* `ctl`: one of start, stop, stop-wait, suspend, resume, as text (channel-ctl.c).
 * 0 or -errno (-EINVAL for an unknown word). */
int crt_channel_ctl(CrtChannel *ch, const char *line, GError **error);

/* `target`: open and set the spec (NULL creds: the daemon's own); an empty
 * line clears.  0 or -errno. */
int crt_channel_set_target(CrtChannel *ch, const char *line, const CrtCreds *creds,
                           GError **error);
/* Whether the directory's target has the file open that the path spec
 * `spec` names (another directory's spec, refused with EBUSY). */
gboolean crt_channel_holds_spec_file(CrtChannel *ch, const char *spec);
/* Setting `spec` failed with EBUSY because directory `holder` of the same
 * mount has the file open: say so, and what to do, in `error:` and in
 * *error.  Returns -EBUSY. */
int crt_channel_explain_busy(CrtChannel *ch, const char *spec, const char *holder,
                             GError **error);

/* The spec as written with a newline, or "" when none.  Newly allocated. */
char *crt_channel_target_text(CrtChannel *ch);

/* `config/KEY`.  -EBUSY while streaming for keys that cannot change live. */
int crt_channel_config_set(CrtChannel *ch, const char *key, const char *value,
                           GError **error);
char *crt_channel_config_get(CrtChannel *ch, const char *key);

/* Record a failed write's reason for `state` (the filesystem calls this for
 * errors it finds itself, such as a write at an offset). */
void crt_channel_set_error(CrtChannel *ch, const char *message);

char *crt_channel_state_text(CrtChannel *ch);
/* A g_get_real_time figure as `state` shows times: local ISO 8601 with the
 * zone, to the millisecond (channel-report.c).  Newly allocated. */
char *crt_channel_time_text(gint64 us);

/* One figure of `stats`. */
typedef struct {
    const char *name; /* as `stats` names it */
    guint64 value;
    gboolean counter; /* only grows (a Prometheus counter), else a gauge */
    const char *help; /* one sentence */
} CrtStat;
#define CRT_STATS_MAX 48

/* The figures of `stats`, in its order, into out[CRT_STATS_MAX]; how many. */
guint crt_channel_stats(CrtChannel *ch, CrtStat *out);
char *crt_channel_stats_text(CrtChannel *ch);
CrtEngineState crt_channel_state(CrtChannel *ch);
/* A target is set (there or not). */
gboolean crt_channel_has_target(CrtChannel *ch);
/* A target is set and there (a `wait` target may be absent). */
gboolean crt_channel_present(CrtChannel *ch);

CrtHub *crt_channel_hub(CrtChannel *ch);
CrtFraming crt_channel_framing(CrtChannel *ch);

/* `lines` (channel-lines.c): the modem lines as one line of words
 * ("dtr=1 rts=1 cts=1 dsr=1 dcd=1 ri=0\n", newly allocated in *text), or
 * -ENOTTY for a target without lines, -EDESTADDRREQ without a target.
 * Never waits for a control operation. */
int crt_channel_lines_read(CrtChannel *ch, char **text, GError **error);
/* Run the sequence `text` (crt_line_seq_parse) on the target, as one
 * control operation; returns when it is done.  -EINVAL naming the word,
 * -EDESTADDRREQ without a target, the failing step's -errno, -ECANCELED
 * when `cancel` (may be NULL) fired, -ENODEV when the directory goes away
 * meanwhile.  Blocks up to the sequence's bound (10 s) plus the wait for
 * the control lock: not on a FUSE thread. */
int crt_channel_lines_write(CrtChannel *ch, const char *text, GCancellable *cancel,
                            GError **error);

/* `input`: one write is one input buffer's content.  0 or -EAGAIN while the
 * queue is full, -EMSGSIZE over in_size, -EINVAL for a non-input type. */
int crt_channel_input_write(CrtChannel *ch, const void *buf, size_t len, GError **error);
gboolean crt_channel_input_writable(CrtChannel *ch);

/* `send`: a session per open file.  A write submits one request (header
 * line, then payload); a read returns the next completion in submission
 * order; closing cancels what is pending. */
CrtSendSession *crt_send_open(CrtChannel *ch);
int crt_send_write(CrtSendSession *s, const char *buf, size_t len, GError **error);
/* Bytes, or -EAGAIN while the next completion is not there, or 0 when
 * nothing was submitted and nothing is pending (end of file). */
gssize crt_send_read(CrtSendSession *s, char *dst, size_t size);
gboolean crt_send_readable(CrtSendSession *s);
void crt_send_close(CrtSendSession *s);

#endif
