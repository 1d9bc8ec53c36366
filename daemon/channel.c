/* crtfs - one target directory without FUSE (see channel.h); the `send`
 * sessions are in channel-send.c, opening with credentials in creds.c. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <string.h>

#include <crtfs/target.h>

#include "channel-private.h"

/* A target event in the log (syslog when daemonized): a state change at
 * notice priority, an error at warning priority; errors beyond
 * CRT_LOG_BURST in a window are held back and counted in the next line. */
static void log_event(CrtChannel *ch, gboolean error, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static void log_event(CrtChannel *ch, gboolean error, const char *fmt, ...)
{
    gint64 now = g_get_monotonic_time();
    guint held = 0;
    gboolean say = TRUE;
    va_list ap;
    char *msg, *line;

    if (error) {
        g_mutex_lock(&ch->lock);
        if (now - ch->log_window >= CRT_LOG_WINDOW_US) {
            held = ch->log_held;
            ch->log_held = ch->log_count = 0;
            ch->log_window = now;
        }
        say = ch->log_count++ < CRT_LOG_BURST;
        ch->log_held += !say;
        g_mutex_unlock(&ch->lock);
    }
    if (held)
        g_log(CRT_TARGET_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
              "%s: %u more errors in the last %d s were not logged", ch->name, held,
              (int)(CRT_LOG_WINDOW_US / G_USEC_PER_SEC));
    if (!say)
        return;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = crt_channel_readable(msg);
    g_log(CRT_TARGET_LOG_DOMAIN, error ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_MESSAGE, "%s: %s",
          ch->name, line);
    g_free(line);
    g_free(msg);
}

static CrtDisposition on_output(CrtEngine *e, const CrtOutput *out, gpointer data)
{
    CrtChannel *ch = data;
    CrtDisposition d = crt_hub_push(ch->hub, e, out);

    gboolean ended, waits;
    char *msg;

    /* -EISCONN: a `wait` target came back (`presence:` in state says so). */
    if (out->status == -EISCONN)
        log_event(ch, FALSE, "target back");
    if (out->status == 0 || out->status == -ECANCELED || out->status == -EISCONN)
        return d;
    /* Say what failed; a fatal completion also stopped the engine by
     * itself: then the readers' stream ends.  A `wait` target's failures
     * are its losses. */
    ended = crt_engine_get_state(e) != CRT_STATE_STREAMING;
    g_mutex_lock(&ch->lock);
    waits = ch->target_waits;
    if (ended)
        ch->target_dead = TRUE; /* `start` opens it again */
    g_mutex_unlock(&ch->lock);
    msg = g_strdup_printf("%s: %s (seq %" G_GUINT64_FORMAT ")",
                          ended   ? "stream ended"
                          : waits ? "target lost"
                                  : "request failed",
                          out->status == -ENODATA ? "end of file" : g_strerror(-out->status),
                          out->seq);
    crt_channel_set_error(ch, msg);
    log_event(ch, TRUE, "%s", msg);
    g_free(msg);
    if (ended)
        crt_hub_end_stream(ch->hub);
    return d;
}

/* Fill an input buffer from the `input` queue, else the configured payload,
 * else wait for `input`. */
static int on_input(CrtEngine *e, void *buf, size_t *size, void *ctx, gpointer data)
{
    CrtChannel *ch = data;
    GBytes *b;
    gboolean notify = FALSE;

    /* Under `block`, a write stream waits for its slowest reader of
     * `records` or `data` as a read stream does (hub_room re-arms it). */
    if (!crt_hub_input_gate(ch->hub))
        return -EAGAIN;
    g_mutex_lock(&ch->input_lock);
    b = g_queue_pop_head(&ch->input);
    notify = b != NULL;
    if (b) {
        gsize n;
        const void *p = g_bytes_get_data(b, &n);

        *size = MIN(n, *size);
        memcpy(buf, p, *size);
        g_bytes_unref(b);
    } else if (ch->payload && ch->payload_len) {
        *size = MIN(ch->payload_len, *size);
        memcpy(buf, ch->payload, *size);
    } else {
        g_mutex_unlock(&ch->input_lock);
        return -EAGAIN;
    }
    g_mutex_unlock(&ch->input_lock);
    if (notify && ch->notify)
        ch->notify(ch, ch->notify_data); /* room in the input queue */
    return 0;
}

static void apply_live(CrtChannel *ch);

static void hub_notify(CrtHub *hub, gpointer data)
{
    CrtChannel *ch = data;

    if (ch->notify)
        ch->notify(ch, ch->notify_data);
}

static void hub_room(CrtHub *hub, gpointer data)
{
    CrtChannel *ch = data;

    g_mutex_lock(&ch->lock);
    if (ch->engine)
        crt_engine_input_ready(ch->engine);
    g_mutex_unlock(&ch->lock);
}

CrtChannel *crt_channel_new(const char *name, const CrtChannelPolicy *policy,
                            CrtChannelNotify notify, gpointer data)
{
    CrtChannel *ch = g_new0(CrtChannel, 1);

    ch->name = g_strdup(name);
    if (policy)
        ch->policy = *policy;
    g_mutex_init(&ch->ctl_lock);
    g_mutex_init(&ch->lock);
    g_mutex_init(&ch->input_lock);
    g_queue_init(&ch->input);
    crt_config_init(&ch->cfg);
    ch->cfg_dirty = TRUE;
    ch->notify = notify;
    ch->notify_data = data;
    ch->hub = crt_hub_new(hub_notify, ch);
    crt_hub_set_room_notify(ch->hub, hub_room, ch);
    ch->retired = g_ptr_array_new();
    crt_channel_send_init(ch);
    apply_live(ch);
    return ch;
}

const char *crt_channel_name(CrtChannel *ch)
{
    return ch->name;
}

char *crt_channel_readable(const char *msg)
{
    GString *s = g_string_new(NULL);
    const char *p = msg, *end = msg + strlen(msg);

    while (p < end && s->len < CRT_ERROR_MAX) {
        gunichar c = g_utf8_get_char_validated(p, end - p);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            g_string_append_printf(s, "\\x%02x", (guchar)*p++); /* not UTF-8 */
            continue;
        }
        if (c == '\n')
            g_string_append(s, "\\n");
        else if (c == '\t')
            g_string_append(s, "\\t");
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
            g_string_append_printf(s, "\\x%02x", (guint)c);
        else
            g_string_append_len(s, p, g_utf8_next_char(p) - p);
        p = g_utf8_next_char(p);
    }
    if (p < end)
        g_string_append(s, "...");
    return g_string_free(s, FALSE);
}

/* `line` (readable already, taken) becomes `error:`. */
static void store_error(CrtChannel *ch, char *line)
{
    g_mutex_lock(&ch->lock);
    g_free(ch->error);
    ch->error = line;
    g_mutex_unlock(&ch->lock);
}

void crt_channel_set_error(CrtChannel *ch, const char *message)
{
    store_error(ch, crt_channel_readable(message));
}

void crt_channel_set_error_from(CrtChannel *ch, GError *err)
{
    char *line = crt_channel_readable(err->message);

    g_free(err->message);
    err->message = line;
    store_error(ch, g_strdup(line));
}

/* Fail with `err`: the reason goes to `state` and to the caller (both as
 * one readable line). */
static int fail(CrtChannel *ch, GError **error, int err, GError *cause)
{
    if (!cause)
        cause = g_error_new_literal(G_IO_ERROR, g_io_error_from_errno(err), g_strerror(err));
    crt_channel_set_error_from(ch, cause);
    g_propagate_error(error, cause);
    return -err;
}

static int failf(CrtChannel *ch, GError **error, int err, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static int failf(CrtChannel *ch, GError **error, int err, const char *fmt, ...)
{
    va_list ap;
    GError *cause;

    va_start(ap, fmt);
    cause = g_error_new_valist(G_IO_ERROR, g_io_error_from_errno(err), fmt, ap);
    va_end(ap);
    return fail(ch, error, err, cause);
}

/* Free retired engines whose buffers have all come back from the hub.
 * ctl_lock held. */
static void reap_retired(CrtChannel *ch)
{
    for (guint i = ch->retired->len; i-- > 0;) {
        CrtEngine *e = g_ptr_array_index(ch->retired, i);
        CrtEngineStats st;

        crt_engine_get_stats(e, &st);
        if (st.out_pool_used == 0) {
            g_ptr_array_remove_index_fast(ch->retired, i);
            crt_engine_free(e);
        }
    }
}

static void add_stats(CrtEngineStats *sum, const CrtEngineStats *st)
{
    sum->completed += st->completed;
    sum->failed += st->failed;
    sum->cancelled += st->cancelled;
    sum->bytes_read += st->bytes_read;
    sum->bytes_written += st->bytes_written;
    sum->sends += st->sends;
}

/* Hand the channel's target to the engine; automatic mode starts here. */
static int attach_target(CrtChannel *ch, CrtTarget *t)
{
    if (ch->cfg.mode == CRT_MODE_AUTOMATIC)
        crt_hub_begin_stream(ch->hub);
    return crt_engine_io_target_set(ch->engine, crt_target_ref(t));
}

/* Build the engine from the configuration if it changed.  ctl_lock held,
 * the engine (if any) stopped. */
/* The most buffer memory a configuration can take: both pools, a
 * look-aside pool at its largest (bufpool.h). */
static guint64 pool_bytes(const CrtEngineConfig *ec)
{
    guint64 out = ec->lookaside_output ? MAX(8 * (guint64)ec->out_count, 64) : ec->out_count;
    guint64 in = crt_request_type_has_input(ec->type) ? ec->in_count : 0;

    return out * ec->out_size + in * ec->in_size;
}

/* The configuration as an engine's, within the mount's memory limit. */
static int config_to_engine(CrtChannel *ch, CrtEngineConfig *ec, GError **error)
{
    int r = crt_config_to_engine(&ch->cfg, ec, error);
    guint64 need;

    if (r < 0 || !ch->policy.max_memory || (need = pool_bytes(ec)) <= ch->policy.max_memory)
        return r;
    return crt_set_error(error, ENOMEM,
                         "the buffers need %" G_GUINT64_FORMAT " bytes, more than the "
                         "%" G_GUINT64_FORMAT " a target may have (mount option "
                         "max_target_memory); lower out_count, out_size, in_count or in_size",
                         need, ch->policy.max_memory);
}

static int ensure_engine(CrtChannel *ch, GError **error)
{
    CrtEngineConfig ec;
    CrtEngine *e, *old;
    GError *err = NULL;
    int r;

    if (!ch->cfg_dirty && ch->engine)
        return 0;
    r = config_to_engine(ch, &ec, &err);
    if (r == 0) {
        ec.buffer_output = on_output;
        ec.buffer_input = on_input;
        ec.user_data = ch;
        ec.out_context_size = crt_hub_context_size();
        r = crt_engine_new(&ec, &e, &err);
    }
    if (r < 0)
        return fail(ch, error, -r, err);
    old = ch->engine;
    if (old) {
        CrtEngineStats st;

        crt_engine_io_target_clear(old);
        crt_engine_get_stats(old, &st);
        add_stats(&ch->base, &st);
        g_ptr_array_add(ch->retired, old);
    }
    g_mutex_lock(&ch->lock);
    ch->engine = e;
    ch->cfg_dirty = FALSE;
    g_mutex_unlock(&ch->lock);
    if (old)
        crt_hub_limit_kept(ch->hub, MAX(ec.out_count, 1));
    crt_hub_set_policy(ch->hub, ch->cfg.overflow, ch->cfg.out_count);
    reap_retired(ch);
    return ch->target ? attach_target(ch, ch->target) : 0;
}

static int reopen_target(CrtChannel *ch, GError **error);

static int ctl_start(CrtChannel *ch, GError **error)
{
    gboolean dead;
    int r;

    if (!ch->target)
        return failf(ch, error, ENOTCONN,
                     "start: no target is set (write one to `target`)");
    if (ch->engine && crt_engine_get_state(ch->engine) == CRT_STATE_STREAMING)
        return failf(ch, error, EALREADY, "start: already streaming");
    /* A target whose stream ended by itself (end of file, a dead device, a
     * closed connection, an exited command), or whose path now names
     * another file, is opened again: `start` means "stream again". */
    g_mutex_lock(&ch->lock);
    dead = ch->target_dead;
    g_mutex_unlock(&ch->lock);
    if (dead || crt_target_is_stale(ch->target)) {
        r = reopen_target(ch, error);
        if (r < 0)
            return r;
    }
    r = ensure_engine(ch, error);
    if (r < 0)
        return r;
    crt_hub_begin_stream(ch->hub);
    r = crt_engine_start(ch->engine);
    if (r == -EALREADY)
        return 0; /* automatic mode started it on the rebuild */
    if (r < 0)
        return failf(ch, error, -r, "start: %s", g_strerror(-r));
    return 0;
}

static int ctl_dispatch(CrtChannel *ch, const char *cmd, GError **error)
{
    CrtEngine *e = ch->engine;
    int r = 0;

    if (strcmp(cmd, "start") == 0)
        return ctl_start(ch, error);
    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "stop-wait") == 0) {
        if (e && cmd[4])
            crt_engine_stop_and_wait(e);
        else if (e)
            crt_engine_stop(e);
        crt_hub_end_stream(ch->hub);
        return 0;
    }
    if (strcmp(cmd, "suspend") == 0 || strcmp(cmd, "resume") == 0) {
        if (!e)
            return failf(ch, error, ENOTCONN, "%s: no target has been set yet", cmd);
        if (cmd[0] == 'r')
            crt_hub_begin_stream(ch->hub);
        r = cmd[0] == 's' ? crt_engine_suspend(e) : crt_engine_resume(e);
        if (r < 0)
            return failf(ch, error, -r, "%s: %s", cmd,
                         r == -EALREADY
                             ? (cmd[0] == 's' ? "already suspended" : "not suspended")
                             : g_strerror(-r));
        if (cmd[0] == 's' && ch->cfg.purge_on_suspend)
            crt_hub_end_stream(ch->hub);
        return 0;
    }
    return failf(ch, error, EINVAL,
                 "unknown command \"%s\" (expected start, stop, stop-wait, suspend or "
                 "resume)",
                 cmd);
}

/* The state a command that succeeded leads to, for the log. */
static const char *ctl_outcome(const char *cmd)
{
    static const struct {
        const char *cmd, *state;
    } outcomes[] = {{"start", "streaming"}, {"resume", "streaming"}, {"suspend", "suspended"},
                    {"stop", "stopped"},     {"stop-wait", "stopped"}};

    for (size_t i = 0; i < G_N_ELEMENTS(outcomes); i++) {
        if (strcmp(cmd, outcomes[i].cmd) == 0)
            return outcomes[i].state;
    }
    return cmd;
}

int crt_channel_ctl(CrtChannel *ch, const char *line, GError **error)
{
    char *cmd = g_strstrip(g_strdup(line));
    int r;

    g_mutex_lock(&ch->ctl_lock);
    if (ch->shut)
        r = failf(ch, error, ENODEV, "the target is being removed");
    else
        r = ctl_dispatch(ch, cmd, error);
    g_mutex_unlock(&ch->ctl_lock);
    /* What the command did (the state may have moved on already). */
    if (r == 0)
        log_event(ch, FALSE, "%s", ctl_outcome(cmd));
    g_free(cmd);
    return r;
}

/* Release the target; readers get end of file unless the stream ended
 * already (a dead target opened again at `start`). */
static void drop_target(CrtChannel *ch, gboolean end_stream)
{
    if (ch->engine)
        crt_engine_io_target_clear(ch->engine);
    if (end_stream)
        crt_hub_end_stream(ch->hub);
    g_mutex_lock(&ch->lock);
    if (ch->target)
        crt_target_unref(ch->target);
    ch->target = NULL;
    ch->target_waits = FALSE;
    ch->target_dead = FALSE;
    g_free(ch->target_text);
    ch->target_text = NULL;
    g_mutex_unlock(&ch->lock);
}

static int install_target(CrtChannel *ch, CrtTarget *t, const char *text,
                          gboolean end_stream, GError **error)
{
    int r;

    drop_target(ch, end_stream);
    g_mutex_lock(&ch->lock);
    ch->target = t;
    ch->target_text = g_strdup(text);
    g_mutex_unlock(&ch->lock);
    r = ensure_engine(ch, error);
    if (r == 0 && !ch->cfg_dirty && crt_engine_has_target(ch->engine) == FALSE)
        r = attach_target(ch, t);
    if (r < 0 && !ch->engine) {
        drop_target(ch, TRUE); /* the configuration cannot run it: nothing changes */
        return r;
    }
    if (r < 0 && error && !*error)
        return failf(ch, error, -r, "target set, but streaming did not start: %s",
                     g_strerror(-r));
    return r;
}

/* Whether the configuration can make an engine: checked before a target is
 * replaced, so a failing write leaves the old one in place.  ctl_lock held. */
static int check_config(CrtChannel *ch, GError **error)
{
    CrtEngineConfig ec;

    return ch->cfg_dirty ? config_to_engine(ch, &ec, error) : 0;
}

static void keep_creds(CrtChannel *ch, const CrtCreds *creds)
{
    gid_t *old = (gid_t *)ch->creds.groups;

    ch->has_creds = creds != NULL;
    if (creds) {
        ch->creds = *creds;
        ch->creds.groups = g_memdup2(creds->groups, (gsize)MAX(creds->ngroups, 0) *
                                                        sizeof(gid_t));
    } else {
        memset(&ch->creds, 0, sizeof ch->creds);
    }
    g_free(old);
}

static int open_and_install(CrtChannel *ch, const char *text, const CrtCreds *creds,
                            gboolean end_stream, GError **error);

/* Open `text` again as the writer who set the current target.  ctl_lock
 * held. */
static int reopen_as_writer(CrtChannel *ch, const char *text, GError **error)
{
    CrtCreds creds = ch->creds;
    int r;

    /* keep_creds frees the groups this copy points at only after copying */
    creds.groups = g_memdup2(ch->creds.groups,
                             (gsize)MAX(ch->creds.ngroups, 0) * sizeof(gid_t));
    r = open_and_install(ch, text, ch->has_creds ? &creds : NULL, FALSE, error);
    g_free((gid_t *)creds.groups);
    return r;
}

/* `start` after the stream ended by itself: the same spec, the same
 * writer.  ctl_lock held. */
static int reopen_target(CrtChannel *ch, GError **error)
{
    char *text = g_strdup(ch->target_text);
    int r = reopen_as_writer(ch, text, error);

    g_free(text);
    return r;
}

/* Drop the current target, which holds the file `spec` names, and open
 * `spec` in its place (*t).  When that fails the old spec is opened back,
 * so a refused write leaves the target as it was where it can.  ctl_lock
 * held. */
static int replace_own(CrtChannel *ch, const CrtTargetSpec *spec, const CrtCreds *creds,
                       gboolean end_stream, CrtTarget **t, GError **error)
{
    char *old = g_strdup(ch->target_text);
    int r;

    drop_target(ch, end_stream);
    r = crt_creds_open_target(spec, creds, &ch->policy, t, error);
    if (r < 0 && reopen_as_writer(ch, old, NULL) < 0)
        g_prefix_error(error, "the target is cleared: ");
    g_free(old);
    return r;
}

/* Parse, open as `creds` and make it the target; ctl_lock held. */
static int open_and_install(CrtChannel *ch, const char *text, const CrtCreds *creds,
                            gboolean end_stream, GError **error)
{
    CrtTargetSpec spec;
    CrtTarget *t = NULL;
    GError *err = NULL;
    gboolean waits;
    int r;

    if ((r = crt_target_spec_parse(text, &spec, &err)) < 0)
        return fail(ch, error, -r, err);
    if ((r = check_config(ch, &err)) < 0) {
        crt_target_spec_clear(&spec);
        return fail(ch, error, -r, err);
    }
    waits = spec.wait;
    r = crt_creds_open_target(&spec, creds, &ch->policy, &t, &err);
    if (r == -EBUSY && ch->target && spec.kind == CRT_TARGET_PATH &&
        crt_target_holds_file(ch->target, spec.path)) {
        /* The lock that refused is our own: the tty this directory has
         * open, set again (new line settings, say).  Let it go and open
         * it anew. */
        g_clear_error(&err);
        r = replace_own(ch, &spec, creds, end_stream, &t, &err);
        end_stream = FALSE;
    }
    crt_target_spec_clear(&spec);
    r = r < 0 ? fail(ch, error, -r, err) : install_target(ch, t, text, end_stream, error);
    if (r == 0) {
        g_mutex_lock(&ch->lock);
        ch->target_waits = waits;
        g_mutex_unlock(&ch->lock);
        keep_creds(ch, creds);
    }
    return r;
}

int crt_channel_set_target(CrtChannel *ch, const char *line, const CrtCreds *creds,
                           GError **error)
{
    char *text = g_strstrip(g_strdup(line));
    int r;

    g_mutex_lock(&ch->ctl_lock);
    if (ch->shut) {
        r = failf(ch, error, ENODEV, "the target is being removed");
    } else if (text[0] == '\0') {
        drop_target(ch, TRUE);
        keep_creds(ch, NULL);
        r = 0;
    } else {
        r = open_and_install(ch, text, creds, TRUE, error);
    }
    g_mutex_unlock(&ch->ctl_lock);
    if (r == 0)
        log_event(ch, FALSE, "target %s", text[0] ? text : "cleared");
    g_free(text);
    return r;
}

char *crt_channel_target_text(CrtChannel *ch)
{
    char *s;

    g_mutex_lock(&ch->lock);
    s = ch->target_text ? g_strconcat(ch->target_text, "\n", NULL) : g_strdup("");
    g_mutex_unlock(&ch->lock);
    return s;
}

static void apply_live(CrtChannel *ch)
{
    g_mutex_lock(&ch->input_lock);
    g_free(ch->payload);
    ch->payload = g_strdup(ch->cfg.payload ? ch->cfg.payload : "");
    ch->payload_len = strlen(ch->payload);
    ch->in_type = ch->cfg.type;
    ch->in_count = MAX(ch->cfg.in_count, 1);
    ch->in_size = ch->cfg.in_size;
    g_mutex_unlock(&ch->input_lock);
    crt_hub_set_policy(ch->hub, ch->cfg.overflow, ch->cfg.out_count);
    g_mutex_lock(&ch->lock);
    ch->framing = ch->cfg.framing;
    g_mutex_unlock(&ch->lock);
}

int crt_channel_config_set(CrtChannel *ch, const char *key, const char *value,
                           GError **error)
{
    GError *err = NULL;
    CrtConfig next;
    int r;

    g_mutex_lock(&ch->ctl_lock);
    crt_config_copy(&next, &ch->cfg);
    if (ch->shut) {
        r = failf(ch, error, ENODEV, "the target is being removed");
    } else if ((r = crt_config_set(&next, key, value, &err)) < 0) {
        r = fail(ch, error, -r, err);
    } else if (!crt_config_key_is_live(key) && ch->engine &&
               crt_engine_get_state(ch->engine) != CRT_STATE_STOPPED) {
        r = failf(ch, error, EBUSY,
                  "%s cannot change while the target streams (stop it first)", key);
    } else {
        crt_config_clear(&ch->cfg);
        ch->cfg = next;
        memset(&next, 0, sizeof next);
        if (!crt_config_key_is_live(key))
            ch->cfg_dirty = TRUE;
        apply_live(ch);
        /* Requests waiting for input may send the new payload now. */
        if (ch->engine && strcmp(key, "payload") == 0)
            crt_engine_input_ready(ch->engine);
    }
    crt_config_clear(&next);
    g_mutex_unlock(&ch->ctl_lock);
    return r;
}

char *crt_channel_config_get(CrtChannel *ch, const char *key)
{
    char *s;

    g_mutex_lock(&ch->ctl_lock);
    s = crt_config_get(&ch->cfg, key);
    g_mutex_unlock(&ch->ctl_lock);
    return s;
}

CrtEngineState crt_channel_state(CrtChannel *ch)
{
    CrtEngineState st = CRT_STATE_STOPPED;

    g_mutex_lock(&ch->lock);
    if (ch->engine)
        st = crt_engine_get_state(ch->engine);
    g_mutex_unlock(&ch->lock);
    return st;
}

gboolean crt_channel_present(CrtChannel *ch)
{
    gboolean present;

    g_mutex_lock(&ch->lock);
    present = ch->target && crt_target_presence(ch->target, NULL) == CRT_PRESENCE_PRESENT;
    g_mutex_unlock(&ch->lock);
    return present;
}

char *crt_channel_state_text(CrtChannel *ch)
{
    CrtEngineState st = crt_channel_state(ch);
    char *s, *presence = NULL;

    g_mutex_lock(&ch->lock);
    /* `wait` targets say whether they are there, since when, and why not. */
    if (ch->target)
        crt_target_presence(ch->target, &presence);
    s = g_strdup_printf(
        "%s\ntarget: %s\npresence: %s\nmode: %s\ntype: %s\nerror: %s\n",
        crt_engine_state_to_string(st), ch->target_text ? ch->target_text : "none",
        presence ? presence : (ch->target ? "present" : "none"),
        crt_mode_to_string(ch->cfg.mode), crt_request_type_to_string(ch->cfg.type),
        ch->error ? ch->error : "none");
    g_mutex_unlock(&ch->lock);
    g_free(presence);
    return s;
}

guint crt_channel_stats(CrtChannel *ch, CrtStat *out)
{
    CrtEngineStats st = {0};
    CrtHubStats hs;
    CrtTargetCounters tc = {0};
    guint n = 0;

    g_mutex_lock(&ch->lock);
    if (ch->engine)
        crt_engine_get_stats(ch->engine, &st);
    add_stats(&st, &ch->base);
    if (ch->target)
        crt_target_get_counters(ch->target, &tc);
    g_mutex_unlock(&ch->lock);
    crt_hub_get_stats(ch->hub, &hs);
#define STAT(k, v, c, h) out[n++] = (CrtStat){k, (guint64)(v), c, h}
    STAT("requests_in_flight", st.requests_in_flight, FALSE, "Requests at the target now.");
    STAT("completed", st.completed, TRUE, "Streaming requests completed.");
    STAT("failed", st.failed, TRUE, "Completions with an error status.");
    STAT("cancelled", st.cancelled, TRUE, "Requests cancelled.");
    STAT("bytes_read", st.bytes_read, TRUE, "Bytes read from the target.");
    STAT("bytes_written", st.bytes_written, TRUE, "Bytes written to the target.");
    STAT("buffers_queued", hs.queued, FALSE, "Buffers held for readers now.");
    STAT("buffers_delivered", hs.delivered, TRUE, "Buffers read, summed over readers.");
    STAT("buffers_dropped", hs.dropped, TRUE, "Buffers dropped for a reader.");
    STAT("out_pool_free", st.out_pool_free, FALSE, "Free output buffers.");
    STAT("out_pool_size", st.out_pool_size, FALSE, "Output buffers in the pool.");
    STAT("readers", hs.readers, FALSE, "Open readers of data and records.");
    /* the numbers `records` shows */
    STAT("last_seq", hs.last_seq, FALSE, "Sequence number of the newest buffer.");
    STAT("slots_waiting", st.slots_waiting, FALSE, "Requests waiting for a buffer.");
    STAT("sends", st.sends, TRUE, "Single requests sent.");
    if (tc.has_icount) {
        STAT("tty_overruns", tc.overruns, TRUE, "UART and buffer overruns.");
        STAT("tty_framing", tc.framing, TRUE, "UART framing errors.");
        STAT("tty_parity", tc.parity, TRUE, "UART parity errors.");
        STAT("tty_breaks", tc.breaks, TRUE, "Breaks received.");
    }
#undef STAT
    g_assert(n <= CRT_STATS_MAX);
    return n;
}

char *crt_channel_stats_text(CrtChannel *ch)
{
    CrtStat st[CRT_STATS_MAX];
    guint n = crt_channel_stats(ch, st);
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < n; i++)
        g_string_append_printf(s, "%s %" G_GUINT64_FORMAT "\n", st[i].name, st[i].value);
    return g_string_free(s, FALSE);
}

CrtHub *crt_channel_hub(CrtChannel *ch)
{
    return ch->hub;
}

CrtFraming crt_channel_framing(CrtChannel *ch)
{
    CrtFraming f;

    g_mutex_lock(&ch->lock);
    f = ch->framing;
    g_mutex_unlock(&ch->lock);
    return f;
}

int crt_channel_input_write(CrtChannel *ch, const void *buf, size_t len, GError **error)
{
    CrtRequestType type;
    guint64 in_size;

    g_mutex_lock(&ch->input_lock);
    type = ch->in_type;
    in_size = ch->in_size;
    g_mutex_unlock(&ch->input_lock);
    if (!crt_request_type_has_input(type))
        return failf(ch, error, EINVAL, "input: type %s sends no input",
                     crt_request_type_to_string(type));
    if (len > in_size)
        return failf(ch, error, EMSGSIZE, "input: %zu bytes exceed in_size %" PRIu64, len,
                     in_size);
    g_mutex_lock(&ch->input_lock);
    if (g_queue_get_length(&ch->input) >= ch->in_count) {
        g_mutex_unlock(&ch->input_lock);
        return -EAGAIN;
    }
    g_queue_push_tail(&ch->input, g_bytes_new(buf, len));
    g_mutex_unlock(&ch->input_lock);
    g_mutex_lock(&ch->lock);
    if (ch->engine)
        crt_engine_input_ready(ch->engine);
    g_mutex_unlock(&ch->lock);
    return 0;
}

gboolean crt_channel_input_writable(CrtChannel *ch)
{
    gboolean ok;

    g_mutex_lock(&ch->input_lock);
    ok = g_queue_get_length(&ch->input) < ch->in_count;
    g_mutex_unlock(&ch->input_lock);
    return ok;
}

void crt_channel_shutdown(CrtChannel *ch)
{
    g_mutex_lock(&ch->ctl_lock);
    if (!ch->shut) {
        ch->shut = TRUE;
        drop_target(ch, TRUE);
        crt_hub_close(ch->hub);
    }
    g_mutex_unlock(&ch->ctl_lock);
}

void crt_channel_free(CrtChannel *ch)
{
    if (!ch)
        return;
    crt_channel_shutdown(ch);
    if (ch->engine)
        crt_hub_release_engine(ch->hub, ch->engine);
    for (guint i = 0; i < ch->retired->len; i++)
        crt_hub_release_engine(ch->hub, g_ptr_array_index(ch->retired, i));
    crt_hub_free(ch->hub);
    crt_engine_free(ch->engine);
    for (guint i = 0; i < ch->retired->len; i++)
        crt_engine_free(g_ptr_array_index(ch->retired, i));
    g_ptr_array_free(ch->retired, TRUE);
    g_queue_clear_full(&ch->input, (GDestroyNotify)g_bytes_unref);
    crt_config_clear(&ch->cfg);
    g_free(ch->payload);
    g_free(ch->error);
    g_free(ch->name);
    g_free((gid_t *)ch->creds.groups);
    g_mutex_clear(&ch->ctl_lock);
    g_mutex_clear(&ch->lock);
    g_mutex_clear(&ch->input_lock);
    g_free(ch);
}
