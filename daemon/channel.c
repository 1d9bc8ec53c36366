/* crtfs - one target directory without FUSE (channel.h): the control
 * operations, the engine built from the configuration, and the target.
 * The `ctl` text is in channel-ctl.c, state and stats in channel-report.c,
 * `send` sessions in channel-send.c, opening as the writer in creds.c. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <crtfs/target.h>

#include "channel-private.h"

/* ---- the engine's callbacks ------------------------------------------- */

/* A failed completion: say what failed.  A fatal completion also stopped
 * the engine by itself: then the readers' stream ends.  A `wait` target's
 * failures are its losses. */
static void output_failed(CrtChannel *ch, CrtEngine *e, const CrtOutput *out)
{
    gboolean ended = crt_engine_get_state(e) != CRT_STATE_STREAMING;
    gboolean waits;
    char *msg;

    g_mutex_lock(&ch->now.lock);
    waits = ch->now.target_waits;
    msg = g_strdup_printf(
        "%s: %s (seq %" G_GUINT64_FORMAT ")",
        ended   ? "stream ended"
        : waits ? "target lost"
                : "request failed",
        out->status == -ENODATA ? "end of file" : g_strerror(-out->status), out->seq);
    if (ended) {
        ch->now.target_dead = TRUE; /* `start` opens it again */
        g_free(ch->now.dead_reason);
        ch->now.dead_reason = g_strdup(msg);
    }
    g_mutex_unlock(&ch->now.lock);
    crt_channel_log_set_error(&ch->log, msg);
    crt_channel_log_event(&ch->log, TRUE, "%s", msg);
    g_free(msg);
    if (ended)
        crt_hub_end_stream(ch->hub);
}

static CrtDisposition on_output(CrtEngine *e, const CrtOutput *out, gpointer data)
{
    CrtChannel *ch = data;
    CrtDisposition d = crt_hub_push(ch->hub, e, out);

    /* -EISCONN: a `wait` target came back (`presence:` in state says so). */
    if (out->status == -EISCONN)
        crt_channel_log_event(&ch->log, FALSE, "target back");
    else if (out->status != 0 && out->status != -ECANCELED)
        output_failed(ch, e, out);
    return d;
}

/* Fill an input buffer from the `input` queue, else the configured payload,
 * else wait for `input`. */
static int on_input(CrtEngine *e, void *buf, size_t *size, void *ctx, gpointer data)
{
    CrtChannel *ch = data;
    gboolean dequeued;
    int r;

    /* Under `block`, a write stream waits for its slowest reader of
     * `records` or `data` as a read stream does (hub_room re-arms it). */
    if (!crt_hub_input_gate(ch->hub))
        return -EAGAIN;
    r = crt_input_queue_fill(&ch->input, buf, size, &dequeued);
    if (dequeued)
        crt_channel_wake(ch); /* room in the input queue */
    return r;
}

/* Requests waiting for input may go on. */
static void input_ready(CrtChannel *ch)
{
    g_mutex_lock(&ch->now.lock);
    if (ch->now.engine)
        crt_engine_input_ready(ch->now.engine);
    g_mutex_unlock(&ch->now.lock);
}

static void wake_task_run(CrtTask *task)
{
    crt_channel_wake(G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtChannel, wake_task)));
}

/* Readers can go on.  From a task of the I/O thread (a target serving a
 * batch of completions) they are woken once that task is done: a parked
 * read then carries the batch, not its first buffer, and the I/O thread
 * replies once per batch.  Anywhere else now. */
static void hub_notify(CrtHub *hub, gpointer data)
{
    CrtChannel *ch = data;

    crt_loop_after_task(ch->loop, &ch->wake_task);
}

static void cancel_wake(gpointer data)
{
    CrtChannel *ch = data;

    crt_loop_cancel(ch->loop, &ch->wake_task);
}

static void hub_room(CrtHub *hub, gpointer data)
{
    input_ready(data);
}

/* ---- creating, failing ------------------------------------------------ */

static void apply_live(CrtChannel *ch);

CrtChannel *crt_channel_new(const char *name, const CrtChannelPolicy *policy,
                            CrtChannelNotify notify, gpointer data)
{
    CrtChannel *ch = g_new0(CrtChannel, 1);

    ch->name = g_strdup(name);
    if (policy)
        ch->policy = *policy;
    ch->notify = notify;
    ch->notify_data = data;
    g_mutex_init(&ch->ctl.lock);
    crt_config_init(&ch->ctl.cfg);
    ch->ctl.cfg_dirty = TRUE;
    ch->ctl.retired = g_ptr_array_new();
    g_mutex_init(&ch->now.lock);
    crt_channel_log_init(&ch->log, ch->name);
    crt_channel_lines_init(ch);
    crt_input_queue_init(&ch->input);
    ch->loop = crt_loop_default();
    ch->wake_task.fn = wake_task_run;
    ch->hub = crt_hub_new(hub_notify, ch);
    crt_hub_set_room_notify(ch->hub, hub_room, ch);
    crt_hub_set_copy(ch->hub, CRT_HUB_COPY_BYTES);
    apply_live(ch);
    return ch;
}

const char *crt_channel_name(CrtChannel *ch)
{
    return ch->name;
}

void crt_channel_set_error(CrtChannel *ch, const char *message)
{
    crt_channel_log_set_error(&ch->log, message);
}

int crt_channel_fail(CrtChannel *ch, GError **error, int err, GError *cause)
{
    err = crt_channel_user_errno(err);
    if (!cause)
        cause =
            g_error_new_literal(G_IO_ERROR, g_io_error_from_errno(err), g_strerror(err));
    crt_channel_log_set_error_from(&ch->log, cause);
    g_propagate_error(error, cause);
    return -err;
}

int crt_channel_failf(CrtChannel *ch, GError **error, int err, const char *fmt, ...)
{
    va_list ap;
    GError *cause;

    va_start(ap, fmt);
    cause = g_error_new_valist(G_IO_ERROR, g_io_error_from_errno(err), fmt, ap);
    va_end(ap);
    return crt_channel_fail(ch, error, err, cause);
}

void crt_channel_wake(CrtChannel *ch)
{
    if (ch->notify)
        ch->notify(ch, ch->notify_data);
}

/* ---- the engine ------------------------------------------------------- */

/* Free retired engines whose buffers have all come back from the hub.
 * ctl.lock held. */
static void reap_retired(CrtChannel *ch)
{
    GPtrArray *retired = ch->ctl.retired;

    for (guint i = retired->len; i-- > 0;) {
        CrtEngine *e = g_ptr_array_index(retired, i);
        CrtEngineStats st;

        crt_engine_get_stats(e, &st);
        if (st.out_pool_used == 0) {
            g_ptr_array_remove_index_fast(retired, i);
            crt_engine_free(e);
        }
    }
}

void crt_channel_add_stats(CrtEngineStats *sum, const CrtEngineStats *st)
{
    sum->completed += st->completed;
    sum->failed += st->failed;
    sum->cancelled += st->cancelled;
    sum->bytes_read += st->bytes_read;
    sum->bytes_written += st->bytes_written;
    sum->sends += st->sends;
}

/* Hand the channel's target to the engine; automatic mode starts here.
 * ctl.lock held. */
static int attach_target(CrtChannel *ch, CrtTarget *t)
{
    int r;

    if (ch->ctl.cfg.mode != CRT_MODE_AUTOMATIC)
        return crt_engine_io_target_set(ch->now.engine, crt_target_ref(t));
    crt_hub_begin_stream(ch->hub);
    r = crt_engine_io_target_set(ch->now.engine, crt_target_ref(t));
    if (r == 0)
        crt_channel_lines_open_locked(ch); /* it streams already */
    return r;
}

/* The most buffer memory a configuration can take: both pools, a
 * look-aside pool at its largest (bufpool.h), the copies of small buffers
 * and the history. */
static guint64 pool_bytes(const CrtEngineConfig *ec, const CrtConfig *cfg)
{
    guint64 out =
        ec->lookaside_output ? MAX(8 * (guint64)ec->out_count, 64) : ec->out_count;
    guint64 in = crt_request_type_has_input(ec->type) ? ec->in_count : 0;

    /* Small buffers are copied on arrival; what the copies may hold. */
    guint64 copies = ec->out_size < CRT_HUB_COPY_MAX ? CRT_HUB_COPY_BYTES : 0;
    guint64 history = crt_history_limits_on(&cfg->history) ? cfg->history.bytes : 0;

    return out * ec->out_size + in * ec->in_size + copies + history;
}

/* `cfg` as an engine's configuration, within the mount's memory limit.
 * ctl.lock held. */
static int config_to_engine(CrtChannel *ch, const CrtConfig *cfg, CrtEngineConfig *ec,
                            GError **error)
{
    int r = crt_config_to_engine(cfg, ec, error);
    guint64 need;

    if (r < 0 || !ch->policy.max_memory ||
        (need = pool_bytes(ec, cfg)) <= ch->policy.max_memory)
        return r;
    return crt_set_error(
        error, ENOMEM,
        "the buffers need %" G_GUINT64_FORMAT " bytes, more than the "
        "%" G_GUINT64_FORMAT " a target may have (mount option "
        "max_target_memory); lower out_count, out_size, in_count, in_size or "
        "history_bytes (counted while history is on)",
        need, ch->policy.max_memory);
}

/* The history applies at once, so its memory is checked when it is set
 * (the other keys' when the engine is built).  ctl.lock held. */
static int check_history_memory(CrtChannel *ch, const char *key, const CrtConfig *next,
                                GError **error)
{
    CrtEngineConfig ec;
    GError *err = NULL;

    if (strcmp(key, "history") != 0 && strcmp(key, "history_bytes") != 0)
        return 0;
    if (config_to_engine(ch, next, &ec, &err) == -ENOMEM)
        return crt_channel_fail(ch, error, ENOMEM, err);
    g_clear_error(&err); /* other faults of the combination show at start */
    return 0;
}

/* Put `e` in place of the current engine, which retires (its counters go
 * to the base, its buffers come back later).  ctl.lock held. */
static void replace_engine(CrtChannel *ch, CrtEngine *e)
{
    CrtEngine *old = ch->now.engine;
    CrtEngineStats st;

    if (old) {
        crt_engine_io_target_clear(old);
        crt_engine_get_stats(old, &st);
        g_ptr_array_add(ch->ctl.retired, old);
    }
    g_mutex_lock(&ch->now.lock);
    if (old)
        crt_channel_add_stats(&ch->now.base, &st);
    ch->now.engine = e;
    g_mutex_unlock(&ch->now.lock);
    ch->ctl.cfg_dirty = FALSE;
}

/* Build the engine from the configuration if it changed.  ctl.lock held,
 * the engine (if any) stopped. */
static int ensure_engine(CrtChannel *ch, GError **error)
{
    CrtEngineConfig ec;
    CrtEngine *e;
    GError *err = NULL;
    gboolean rebuilt;
    int r;

    if (!ch->ctl.cfg_dirty && ch->now.engine)
        return 0;
    r = config_to_engine(ch, &ch->ctl.cfg, &ec, &err);
    if (r == 0) {
        ec.buffer_output = on_output;
        ec.buffer_input = on_input;
        ec.user_data = ch;
        ec.out_context_size = crt_hub_context_size();
        r = crt_engine_new(&ec, &e, &err);
    }
    if (r < 0)
        return crt_channel_fail(ch, error, -r, err);
    rebuilt = ch->now.engine != NULL;
    replace_engine(ch, e);
    if (rebuilt)
        crt_hub_limit_kept(ch->hub, MAX(ec.out_count, 1));
    crt_hub_set_policy(ch->hub, ch->ctl.cfg.overflow, ch->ctl.cfg.out_count);
    reap_retired(ch);
    return ch->now.target ? attach_target(ch, ch->now.target) : 0;
}

/* ---- the control operations ------------------------------------------ */

int crt_channel_control(CrtChannel *ch, CrtChannelControlFn op, gconstpointer arg,
                        const char *done, GError **error)
{
    int r;

    g_mutex_lock(&ch->ctl.lock);
    if (ch->ctl.shut)
        r = crt_channel_failf(ch, error, ENODEV, "the target is being removed");
    else
        r = op(ch, arg, error);
    g_mutex_unlock(&ch->ctl.lock);
    /* What the operation did (the state may have moved on already). */
    if (r == 0 && done)
        crt_channel_log_event(&ch->log, FALSE, "%s", done);
    return r;
}

static int reopen_target(CrtChannel *ch, GError **error);

/* The target is gone for `why` (kept for `presence:`). */
static void mark_dead(CrtChannel *ch, const char *why)
{
    g_mutex_lock(&ch->now.lock);
    ch->now.target_dead = ch->now.target != NULL;
    g_free(ch->now.dead_reason);
    ch->now.dead_reason = ch->now.target ? g_strdup(why) : NULL;
    g_mutex_unlock(&ch->now.lock);
}

static int start_locked(CrtChannel *ch, gconstpointer arg, GError **error)
{
    gboolean dead;
    int r;

    if (!ch->now.target)
        return crt_channel_failf(ch, error, EDESTADDRREQ,
                                 "start: no target is set (write one to `target`)");
    if (ch->now.engine && crt_engine_get_state(ch->now.engine) == CRT_STATE_STREAMING)
        return crt_channel_failf(ch, error, EALREADY, "start: already streaming");
    /* A target whose stream ended by itself (end of file, a dead device, a
     * closed connection, an exited command), or whose path now names
     * another file, is opened again: `start` means "stream again". */
    g_mutex_lock(&ch->now.lock);
    dead = ch->now.target_dead;
    g_mutex_unlock(&ch->now.lock);
    if (dead || crt_target_is_stale(ch->now.target)) {
        r = reopen_target(ch, error);
        if (r < 0) {
            char *why = crt_channel_log_error(&ch->log, NULL); /* the failure's words */

            mark_dead(ch, why ? why : g_strerror(-r));
            g_free(why);
            return r;
        }
    }
    r = ensure_engine(ch, error);
    if (r < 0)
        return r;
    crt_hub_begin_stream(ch->hub);
    /* It streams from here: the error is over (before the engine starts,
     * whose first completion may fail already). */
    crt_channel_log_clear_error(&ch->log);
    crt_channel_lines_open_locked(ch);
    r = crt_engine_start(ch->now.engine);
    if (r < 0 && r != -EALREADY) /* EALREADY: automatic mode started it */
        return crt_channel_failf(ch, error, -r, "start: %s", g_strerror(-r));
    return 0;
}

int crt_channel_start(CrtChannel *ch, GError **error)
{
    return crt_channel_control(ch, start_locked, NULL, "streaming", error);
}

static int stop_locked(CrtChannel *ch, gconstpointer wait, GError **error)
{
    CrtEngine *e = ch->now.engine;

    /* While the stream is still on: what the target answers is recorded. */
    crt_channel_lines_close_locked(ch);
    if (e && wait)
        crt_engine_stop_and_wait(e);
    else if (e)
        crt_engine_stop(e);
    crt_hub_end_stream(ch->hub);
    return 0;
}

int crt_channel_stop(CrtChannel *ch, gboolean wait, GError **error)
{
    return crt_channel_control(ch, stop_locked, wait ? ch : NULL, "stopped", error);
}

/* suspend (arg NULL) or resume (arg non-NULL). */
static int pause_locked(CrtChannel *ch, gconstpointer resume, GError **error)
{
    const char *cmd = resume ? "resume" : "suspend";
    CrtEngine *e = ch->now.engine;
    int r;

    if (!e)
        return crt_channel_failf(ch, error, EDESTADDRREQ,
                                 "%s: no target has been set yet", cmd);
    if (resume) {
        crt_hub_begin_stream(ch->hub);
        crt_channel_log_clear_error(&ch->log); /* before the first completion */
    }
    r = resume ? crt_engine_resume(e) : crt_engine_suspend(e);
    if (r < 0)
        return crt_channel_failf(ch, error, -r, "%s: %s", cmd,
                                 r != -EALREADY ? g_strerror(-r)
                                 : resume       ? "not suspended"
                                                : "already suspended");
    if (!resume && ch->ctl.cfg.purge_on_suspend)
        crt_hub_end_stream(ch->hub);
    return 0;
}

int crt_channel_suspend(CrtChannel *ch, GError **error)
{
    return crt_channel_control(ch, pause_locked, NULL, "suspended", error);
}

int crt_channel_resume(CrtChannel *ch, GError **error)
{
    return crt_channel_control(ch, pause_locked, ch, "streaming", error);
}

gboolean crt_channel_purges_on_suspend(CrtChannel *ch)
{
    gboolean purge;

    g_mutex_lock(&ch->now.lock);
    purge = ch->now.purge_on_suspend;
    g_mutex_unlock(&ch->now.lock);
    return purge;
}

/* ---- the target ------------------------------------------------------- */

/* A live source, whose past nobody wants once it is old: a character
 * device (ttys, serial adapters, input devices) or a socket.  FIFOs,
 * files, commands and the simulator are not; a remote serial port
 * (rfc2217:) is a socket too. */
static gboolean spec_is_live(const CrtTargetSpec *spec)
{
    struct stat st;

    if (spec->kind == CRT_TARGET_UNIX || spec->kind == CRT_TARGET_TCP ||
        spec->kind == CRT_TARGET_UDEV || /* always a tty */
        spec->kind == CRT_TARGET_RFC2217)
        return TRUE;
    return spec->kind == CRT_TARGET_PATH && stat(spec->path, &st) == 0 &&
           S_ISCHR(st.st_mode);
}

CrtKeep crt_channel_keep_unlocked(CrtChannel *ch)
{
    return crt_keep_resolve(&ch->now.keep, ch->now.target_live);
}

/* Tell the hub the keep policy for the current target and configuration. */
static void apply_keep(CrtChannel *ch)
{
    CrtKeep k;

    g_mutex_lock(&ch->now.lock);
    k = crt_channel_keep_unlocked(ch);
    g_mutex_unlock(&ch->now.lock);
    crt_hub_set_keep(ch->hub, &k);
}

/* Frame the current target's reads by the configured split (live: from
 * its next message).  ctl.lock held (or creation). */
static void apply_split(CrtChannel *ch)
{
    CrtTarget *t;

    g_mutex_lock(&ch->now.lock);
    t = ch->now.target ? crt_target_ref(ch->now.target) : NULL;
    g_mutex_unlock(&ch->now.lock);
    if (t) {
        crt_target_set_split(t, &ch->ctl.cfg.split);
        crt_target_unref(t);
    }
}

/* Release the target; readers get end of file unless the stream ended
 * already (a dead target opened again at `start`).  ctl.lock held. */
static void drop_target(CrtChannel *ch, gboolean end_stream)
{
    crt_channel_lines_close_locked(ch);
    if (ch->now.target)
        crt_channel_lines_unwatch(ch, ch->now.target);
    if (ch->now.engine)
        crt_engine_io_target_clear(ch->now.engine);
    if (end_stream)
        crt_hub_end_stream(ch->hub);
    g_mutex_lock(&ch->now.lock);
    if (ch->now.target)
        crt_target_unref(ch->now.target);
    ch->now.target = NULL;
    ch->now.target_waits = FALSE;
    ch->now.target_dead = FALSE;
    g_free(ch->now.dead_reason);
    ch->now.dead_reason = NULL;
    ch->now.target_live = FALSE;
    g_free(ch->now.target_text);
    ch->now.target_text = NULL;
    g_mutex_unlock(&ch->now.lock);
}

static int install_target(CrtChannel *ch, CrtTarget *t, const char *text,
                          const CrtTargetSpec *spec, gboolean end_stream, GError **error)
{
    int r;

    drop_target(ch, end_stream);
    g_mutex_lock(&ch->now.lock);
    ch->now.target = t;
    ch->now.target_text = g_strdup(text);
    ch->now.target_waits = spec->wait;
    ch->now.target_live = spec_is_live(spec);
    g_mutex_unlock(&ch->now.lock);
    crt_channel_lines_watch(ch, t);
    apply_keep(ch);
    apply_split(ch);
    r = ensure_engine(ch, error);
    if (r == 0 && !ch->ctl.cfg_dirty && crt_engine_has_target(ch->now.engine) == FALSE)
        r = attach_target(ch, t);
    if (r < 0 && !ch->now.engine) {
        drop_target(ch, TRUE); /* the configuration cannot run it: nothing changes */
        return r;
    }
    if (r < 0 && error && !*error)
        return crt_channel_failf(
            ch, error, -r, "target set, but streaming did not start: %s", g_strerror(-r));
    return r;
}

/* Whether the configuration can make an engine: checked before a target is
 * replaced, so a failing write leaves the old one in place.  ctl.lock held. */
static int check_config(CrtChannel *ch, GError **error)
{
    CrtEngineConfig ec;

    return ch->ctl.cfg_dirty ? config_to_engine(ch, &ch->ctl.cfg, &ec, error) : 0;
}

static void keep_creds(CrtChannel *ch, const CrtCreds *creds)
{
    gid_t *old = (gid_t *)ch->ctl.creds.groups;

    ch->ctl.has_creds = creds != NULL;
    if (creds) {
        ch->ctl.creds = *creds;
        ch->ctl.creds.groups =
            g_memdup2(creds->groups, (gsize)MAX(creds->ngroups, 0) * sizeof(gid_t));
    } else {
        memset(&ch->ctl.creds, 0, sizeof ch->ctl.creds);
    }
    g_free(old);
}

/* Whether `t` has open the file `spec` names now (a usb:/udev: spec's
 * resolved tty). */
static gboolean holds_spec_file(CrtTarget *t, const CrtTargetSpec *spec)
{
    char *node = NULL;
    gboolean holds = FALSE;

    if ((spec->kind == CRT_TARGET_PATH || spec->kind == CRT_TARGET_UDEV) &&
        crt_target_spec_node(spec, &node, NULL) == 0)
        holds = crt_target_holds_file(t, node);
    g_free(node);
    return holds;
}

static int open_and_install(CrtChannel *ch, const char *text, const CrtCreds *creds,
                            gboolean end_stream, GError **error);

/* Open `text` again as the writer who set the current target.  ctl.lock
 * held. */
static int reopen_as_writer(CrtChannel *ch, const char *text, GError **error)
{
    CrtCreds creds = ch->ctl.creds;
    int r;

    /* keep_creds frees the groups this copy points at only after copying */
    creds.groups = g_memdup2(ch->ctl.creds.groups,
                             (gsize)MAX(ch->ctl.creds.ngroups, 0) * sizeof(gid_t));
    r = open_and_install(ch, text, ch->ctl.has_creds ? &creds : NULL, FALSE, error);
    g_free((gid_t *)creds.groups);
    return r;
}

/* `start` after the stream ended by itself: the same spec, the same
 * writer.  ctl.lock held. */
static int reopen_target(CrtChannel *ch, GError **error)
{
    char *text = g_strdup(ch->now.target_text);
    int r = reopen_as_writer(ch, text, error);

    g_free(text);
    return r;
}

/* Drop the current target, which holds the file `spec` names, and open
 * `spec` in its place (*t).  When that fails the old spec is opened back,
 * so a refused write leaves the target as it was where it can.  ctl.lock
 * held. */
static int replace_own(CrtChannel *ch, const CrtTargetSpec *spec, const CrtCreds *creds,
                       gboolean end_stream, CrtTarget **t, GError **error)
{
    char *old = g_strdup(ch->now.target_text);
    int r;

    drop_target(ch, end_stream);
    r = crt_creds_open_target(spec, creds, &ch->policy, t, error);
    if (r < 0 && reopen_as_writer(ch, old, NULL) < 0)
        g_prefix_error(error, "the target is cleared: ");
    g_free(old);
    return r;
}

/* Parse, open as `creds` and make it the target; ctl.lock held. */
static int open_and_install(CrtChannel *ch, const char *text, const CrtCreds *creds,
                            gboolean end_stream, GError **error)
{
    CrtTargetSpec spec;
    CrtTarget *t = NULL;
    GError *err = NULL;
    int r;

    if ((r = crt_target_spec_parse(text, &spec, &err)) < 0)
        return crt_channel_fail(ch, error, -r, err);
    if ((r = check_config(ch, &err)) < 0) {
        crt_target_spec_clear(&spec);
        return crt_channel_fail(ch, error, -r, err);
    }
    r = crt_creds_open_target(&spec, creds, &ch->policy, &t, &err);
    if (r == -EBUSY && ch->now.target && holds_spec_file(ch->now.target, &spec)) {
        /* The lock that refused is our own: the tty this directory has
         * open, set again (new line settings, say).  Let it go and open
         * it anew. */
        g_clear_error(&err);
        r = replace_own(ch, &spec, creds, end_stream, &t, &err);
        end_stream = FALSE;
    }
    r = r < 0 ? crt_channel_fail(ch, error, -r, err)
              : install_target(ch, t, text, &spec, end_stream, error);
    crt_target_spec_clear(&spec);
    if (r == 0)
        keep_creds(ch, creds);
    return r;
}

typedef struct {
    const char *text;
    const CrtCreds *creds;
} TargetArg;

static int set_target_locked(CrtChannel *ch, gconstpointer data, GError **error)
{
    const TargetArg *a = data;

    /* A new target, a new story: a failure says so again. */
    crt_channel_log_clear_error(&ch->log);
    if (a->text[0])
        return open_and_install(ch, a->text, a->creds, TRUE, error);
    drop_target(ch, TRUE);
    keep_creds(ch, NULL);
    return 0;
}

int crt_channel_set_target(CrtChannel *ch, const char *line, const CrtCreds *creds,
                           GError **error)
{
    TargetArg a = {g_strstrip(g_strdup(line)), creds};
    char *done = g_strdup_printf("target %s", a.text[0] ? a.text : "cleared");
    int r = crt_channel_control(ch, set_target_locked, &a, done, error);

    g_free(done);
    g_free((char *)a.text);
    return r;
}

gboolean crt_channel_holds_spec_file(CrtChannel *ch, const char *spec)
{
    CrtTargetSpec parsed;
    gboolean holds = FALSE;

    if (crt_target_spec_parse(spec, &parsed, NULL) < 0)
        return FALSE;
    if (parsed.kind == CRT_TARGET_PATH || parsed.kind == CRT_TARGET_UDEV) {
        g_mutex_lock(&ch->now.lock);
        holds = ch->now.target && holds_spec_file(ch->now.target, &parsed);
        g_mutex_unlock(&ch->now.lock);
    }
    crt_target_spec_clear(&parsed);
    return holds;
}

int crt_channel_explain_busy(CrtChannel *ch, const char *spec, const char *holder,
                             GError **error)
{
    char *text = g_strstrip(g_strdup(spec));
    GError *why =
        g_error_new(G_IO_ERROR, G_IO_ERROR_BUSY,
                    "%s is already the target of %s/ in this mount: read %s/data "
                    "instead (every reader gets the whole stream), or add \"shared\" "
                    "to both specs to open it twice",
                    text, holder, holder);

    g_free(text);
    if (error)
        g_clear_error(error);
    return crt_channel_fail(ch, error, EBUSY, why);
}

char *crt_channel_target_text(CrtChannel *ch)
{
    char *s;

    g_mutex_lock(&ch->now.lock);
    s = ch->now.target_text ? g_strconcat(ch->now.target_text, "\n", NULL) : g_strdup("");
    g_mutex_unlock(&ch->now.lock);
    return s;
}

/* ---- the configuration ------------------------------------------------ */

/* Hand what may change while streaming to the pieces that use it.
 * ctl.lock held (or creation). */
static void apply_live(CrtChannel *ch)
{
    const CrtConfig *cfg = &ch->ctl.cfg;

    crt_input_queue_configure(&ch->input, cfg);
    crt_hub_set_policy(ch->hub, cfg->overflow, cfg->out_count);
    crt_hub_set_history(ch->hub, &cfg->history);
    g_mutex_lock(&ch->now.lock);
    ch->now.framing = cfg->framing;
    ch->now.mode = cfg->mode;
    ch->now.type = cfg->type;
    ch->now.out_size = cfg->out_size;
    ch->now.purge_on_suspend = cfg->purge_on_suspend;
    ch->now.keep = cfg->keep;
    g_mutex_unlock(&ch->now.lock);
    apply_keep(ch);
    apply_split(ch);
}

typedef struct {
    const char *key, *value;
} ConfigArg;

static int config_set_locked(CrtChannel *ch, gconstpointer data, GError **error)
{
    const ConfigArg *a = data;
    gboolean live = crt_config_key_is_live(a->key);
    GError *err = NULL;
    CrtConfig next;
    int r;

    crt_config_copy(&next, &ch->ctl.cfg);
    if ((r = crt_config_set(&next, a->key, a->value, &err)) < 0) {
        r = crt_channel_fail(ch, error, -r, err);
    } else if ((r = check_history_memory(ch, a->key, &next, error)) < 0) {
        /* refused, in words */
    } else if (!live && ch->now.engine &&
               crt_engine_get_state(ch->now.engine) != CRT_STATE_STOPPED) {
        r = crt_channel_failf(ch, error, EBUSY,
                              "%s cannot change while the target streams (stop it first)",
                              a->key);
    } else {
        crt_config_clear(&ch->ctl.cfg);
        ch->ctl.cfg = next;
        memset(&next, 0, sizeof next);
        ch->ctl.cfg_dirty |= !live;
        apply_live(ch);
        /* Requests waiting for input may send the new payload now. */
        if (strcmp(a->key, "payload") == 0)
            input_ready(ch);
    }
    crt_config_clear(&next);
    return r;
}

int crt_channel_config_set(CrtChannel *ch, const char *key, const char *value,
                           GError **error)
{
    ConfigArg a = {key, value};

    return crt_channel_control(ch, config_set_locked, &a, NULL, error);
}

char *crt_channel_config_get(CrtChannel *ch, const char *key)
{
    char *s;

    g_mutex_lock(&ch->ctl.lock);
    s = crt_config_get(&ch->ctl.cfg, key);
    g_mutex_unlock(&ch->ctl.lock);
    return s;
}

/* ---- what readers see -------------------------------------------------- */

CrtEngineState crt_channel_state(CrtChannel *ch)
{
    CrtEngineState st = CRT_STATE_STOPPED;

    g_mutex_lock(&ch->now.lock);
    if (ch->now.engine)
        st = crt_engine_get_state(ch->now.engine);
    g_mutex_unlock(&ch->now.lock);
    return st;
}

gboolean crt_channel_presence_unlocked(CrtChannel *ch, char **text)
{
    CrtTarget *t = ch->now.target;
    char *reason = NULL;
    gboolean there;

    if (!t) {
        *text = g_strdup("none");
        return FALSE;
    }
    there = crt_target_presence(t, &reason) == CRT_PRESENCE_PRESENT;
    if (!ch->now.target_waits && ch->now.target_dead) {
        char *kind_says = reason; /* an exited command says how it ended */

        there = FALSE;
        reason = g_strdup_printf("absent (%s%s%s; `start` opens it again)",
                                 kind_says ? kind_says : "", kind_says ? "; " : "",
                                 ch->now.dead_reason);
        g_free(kind_says);
    } else if (!ch->now.target_waits && crt_target_is_stale(t)) {
        there = FALSE;
        g_free(reason);
        reason = g_strdup("absent (the path names another file now, or nothing; `start` "
                          "opens it again)");
    }
    *text = reason ? reason : g_strdup("present");
    return there;
}

gboolean crt_channel_has_target(CrtChannel *ch)
{
    gboolean has;

    g_mutex_lock(&ch->now.lock);
    has = ch->now.target != NULL;
    g_mutex_unlock(&ch->now.lock);
    return has;
}

gboolean crt_channel_present(CrtChannel *ch)
{
    gboolean present;
    char *text;

    g_mutex_lock(&ch->now.lock);
    present = crt_channel_presence_unlocked(ch, &text);
    g_mutex_unlock(&ch->now.lock);
    g_free(text);
    return present;
}

CrtHub *crt_channel_hub(CrtChannel *ch)
{
    return ch->hub;
}

CrtFraming crt_channel_framing(CrtChannel *ch)
{
    CrtFraming f;

    g_mutex_lock(&ch->now.lock);
    f = ch->now.framing;
    g_mutex_unlock(&ch->now.lock);
    return f;
}

/* ---- `input` ------------------------------------------------------------ */

int crt_channel_input_write(CrtChannel *ch, const void *buf, size_t len, GError **error)
{
    GError *err = NULL;
    int r = crt_input_queue_push(&ch->input, buf, len, &err);

    if (r == 0)
        input_ready(ch);
    else if (err)
        r = crt_channel_fail(ch, error, -r, err);
    return r;
}

gboolean crt_channel_input_writable(CrtChannel *ch)
{
    return crt_input_queue_has_room(&ch->input);
}

/* ---- the end ------------------------------------------------------------ */

static int shutdown_locked(CrtChannel *ch, gconstpointer arg, GError **error)
{
    ch->ctl.shut = TRUE;
    drop_target(ch, TRUE);
    crt_hub_close(ch->hub);
    return 0;
}

void crt_channel_shutdown(CrtChannel *ch)
{
    crt_channel_lines_cancel_all(ch); /* a running `lines` write holds ctl.lock */
    g_mutex_lock(&ch->ctl.lock);
    if (!ch->ctl.shut)
        shutdown_locked(ch, NULL, NULL);
    g_mutex_unlock(&ch->ctl.lock);
    /* Nothing runs for the directory after this: a wake-up still queued
     * goes (the loop runs one task at a time, so none is running). */
    crt_loop_call(ch->loop, cancel_wake, ch);
}

void crt_channel_free(CrtChannel *ch)
{
    GPtrArray *retired;

    if (!ch)
        return;
    crt_channel_shutdown(ch);
    retired = ch->ctl.retired;
    if (ch->now.engine)
        crt_hub_release_engine(ch->hub, ch->now.engine);
    for (guint i = 0; i < retired->len; i++)
        crt_hub_release_engine(ch->hub, g_ptr_array_index(retired, i));
    crt_hub_free(ch->hub);
    crt_engine_free(ch->now.engine);
    for (guint i = 0; i < retired->len; i++)
        crt_engine_free(g_ptr_array_index(retired, i));
    g_ptr_array_free(retired, TRUE);
    crt_config_clear(&ch->ctl.cfg);
    g_free((gid_t *)ch->ctl.creds.groups);
    crt_input_queue_clear(&ch->input);
    crt_channel_log_clear(&ch->log);
    crt_channel_lines_clear(ch);
    g_mutex_clear(&ch->ctl.lock);
    g_mutex_clear(&ch->now.lock);
    g_free(ch->now.dead_reason);
    crt_loop_unref(ch->loop);
    g_free(ch->name);
    g_free(ch);
}
