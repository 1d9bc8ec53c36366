/* crtfs - open files: reads, writes, parked requests and poll.
 *
 * A read of `data`, `records` or `send` that has to wait, and a write to a
 * full `input`, is parked in its open file and answered later from whatever
 * thread makes progress possible (the channel's notify), so no FUSE thread
 * is held.  Every parked request has an interrupt function.  Whoever takes a
 * request out of its open file (under the directory's wait_lock) replies to
 * it, exactly once.  A `lines` write runs its sequence on a worker thread
 * (lines_pool), which replies; its interrupt cancels the rest.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>

#include "fs-private.h"
#include "metrics.h"

/* Control writes are one command each; longer ones are mistakes. */
#define MAX_CONTROL_WRITE (64 * 1024)

static CrtFs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static OpenFile *of_of(struct fuse_file_info *fi)
{
    return (OpenFile *)(uintptr_t)fi->fh;
}

static gboolean kind_readable(NodeKind k)
{
    return k != N_CTL && k != N_INPUT && k != N_DIR && k != N_CONFIG_DIR && k != N_ROOT;
}

/* Which view of the stream a stream file shows. */
static CrtHubView view_of(NodeKind k)
{
    return k == N_RECORDS_JSONL ? CRT_HUB_VIEW_JSONL
           : k == N_RECORDS     ? CRT_HUB_VIEW_RECORDS
                                : CRT_HUB_VIEW_DATA;
}

static gboolean kind_writable(NodeKind k)
{
    return k == N_CTL || k == N_TARGET || k == N_INPUT || k == N_SEND || k == N_CONFIG ||
           k == N_LINES;
}

static gint dir_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp((*(Dir *const *)a)->name, (*(Dir *const *)b)->name);
}

/* `metrics`: the targets in name order. */
static char *metrics_text(CrtFs *fs)
{
    GPtrArray *dirs = crt_fs_dirs_ref(fs);
    CrtChannel **chs = g_new0(CrtChannel *, MAX(dirs->len, 1));
    CrtReloadStatus reload;
    char *text;

    g_ptr_array_sort(dirs, dir_name_cmp);
    for (guint i = 0; i < dirs->len; i++)
        chs[i] = ((Dir *)g_ptr_array_index(dirs, i))->ch;
    crt_fs_reload_status(fs, &reload);
    text = crt_metrics_text(chs, dirs->len, crt_fs_removed_held(fs), &reload);
    for (guint i = 0; i < dirs->len; i++)
        crt_fs_dir_unref(fs, g_ptr_array_index(dirs, i));
    g_ptr_array_free(dirs, TRUE);
    g_free(chs);
    return text;
}

/* A generated file's content now. */
static char *generate(CrtFs *fs, Node *n, Dir *d)
{
    switch (n->kind) {
    case N_VERSION:
        return g_strdup(PACKAGE_STRING "\n");
    case N_METRICS:
        return metrics_text(fs);
    case N_RELOAD:
        return crt_fs_reload_text(fs);
    case N_STATE:
        return crt_channel_state_text(d->ch);
    case N_STATS:
        return crt_channel_stats_text(d->ch);
    case N_TARGET:
        return crt_channel_target_text(d->ch);
    case N_CONFIG:
        return crt_channel_config_get(d->ch, n->name);
    default:
        return NULL;
    }
}

void crt_fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    CrtFs *fs = fs_of(req);
    Node *n = crt_fs_node(fs, ino);
    int acc = fi->flags & O_ACCMODE;
    OpenFile *of;

    if (!n || n->removed) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (S_ISDIR(n->mode)) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if ((acc != O_WRONLY && !kind_readable(n->kind)) ||
        (acc != O_RDONLY && !kind_writable(n->kind))) {
        fuse_reply_err(req, EACCES);
        return;
    }
    of = g_new0(OpenFile, 1);
    of->node = n;
    g_atomic_int_inc(&n->opens);
    of->dir = n->dir;
    of->link.data = of;
    of->refs = 1;
    g_mutex_init(&of->read_lock);
    if (of->dir) {
        crt_fs_dir_ref(fs, of->dir);
        of->fs = fs;
        if (crt_fs_stream_kind(n->kind))
            of->reader = crt_hub_reader_new_replay(crt_channel_hub(of->dir->ch),
                                                   view_of(n->kind), &n->replay);
        else if (n->kind == N_SEND)
            of->send = crt_send_open(of->dir->ch);
        g_mutex_lock(&of->dir->wait_lock);
        of->dir->opens = g_list_concat(&of->link, of->dir->opens);
        g_mutex_unlock(&of->dir->wait_lock);
    }
    fi->fh = (uintptr_t)of;
    g_atomic_int_inc(&fs->open_files);
    fi->direct_io = 1;
    /* Files one reads take lseek: bash's `read`, head(1) and stdio seek
     * back over what they read ahead, so that the next reader of the file
     * descriptor starts right after what they took.  The stream files
     * replay what they retain (crt_hub_read_at); generated files are read
     * at the offset. */
    fi->nonseekable = n->kind == N_CTL || n->kind == N_INPUT || n->kind == N_SEND;
    fuse_reply_open(req, fi);
}

static void open_file_unref(OpenFile *of);
static void write_lines(fuse_req_t req, OpenFile *of, const char *buf, size_t size);

/* --- reads ------------------------------------------------------------- */

/* The `send` file's reads: copied out of the session. */
static gboolean reply_copy(fuse_req_t req, OpenFile *of, size_t size)
{
    gssize n;

    if (of->buf_size < size) {
        g_free(of->buf);
        of->buf = g_malloc(size);
        of->buf_size = size;
    }
    n = crt_send_read(of->send, of->buf, size);
    if (n == -EAGAIN)
        return FALSE;
    fuse_reply_buf(req, of->buf, n > 0 ? (size_t)n : 0);
    return TRUE;
}

/* A read outside what a stream file retains: ESPIPE, with the offsets. */
static void reply_seek_error(fuse_req_t req, OpenFile *of, off_t off, CrtFraming framing)
{
    guint64 start, end;
    char *msg;

    crt_hub_reader_window(of->reader, framing, &start, &end);
    msg = g_strdup_printf("%s: read at offset %jd, but only %" G_GUINT64_FORMAT
                          " to %" G_GUINT64_FORMAT " can be read (a seek outside the "
                          "retained window)",
                          of->node->name, (intmax_t)off, start, end);
    crt_channel_set_error(of->dir->ch, msg);
    g_free(msg);
    fuse_reply_err(req, ESPIPE);
}

/* One attempt at a streaming read at `off`, answered if it can be: FALSE
 * when there is nothing yet.  `data` and `records` reply straight from
 * what the hub describes (shared buffers or the reader's window); read_lock
 * held, so the pieces stay valid until the reply has left. */
static gboolean stream_read(fuse_req_t req, OpenFile *of, size_t size, off_t off)
{
    CrtFraming framing;
    struct iovec iov[CRT_HUB_MAX_IOV];
    int niov;
    gssize n;

    if (!of->reader)
        return reply_copy(req, of, MAX(size, 1));
    framing = crt_channel_framing(of->dir->ch);
    n = crt_hub_read_at(of->reader, (guint64)off, size, framing, iov, &niov);
    if (n == -EAGAIN)
        return FALSE;
    if (n == -ESPIPE)
        reply_seek_error(req, of, off, framing);
    else if (n == 0)
        fuse_reply_buf(req, NULL, 0);
    else {
        fuse_reply_iov(req, iov, niov);
        crt_hub_read_done(of->reader);
    }
    return TRUE;
}

/* Cheap check before a parked read is tried (the notify comes per buffer). */
static gboolean has_news(OpenFile *of)
{
    return of->reader ? crt_hub_readable(of->reader) : crt_send_readable(of->send);
}

/* Answer the parked read if it can be; wait_lock held. */
static void try_parked_read(OpenFile *of)
{
    fuse_req_t req = of->read_req;

    if (!req || !has_news(of))
        return;
    g_mutex_lock(&of->read_lock);
    if (stream_read(req, of, of->read_size, of->read_off))
        of->read_req = NULL;
    g_mutex_unlock(&of->read_lock);
}

static void read_interrupted(fuse_req_t req, void *data)
{
    OpenFile *of = data;
    gboolean mine;

    g_mutex_lock(&of->dir->wait_lock);
    mine = of->read_req == req;
    if (mine)
        of->read_req = NULL;
    g_mutex_unlock(&of->dir->wait_lock);
    if (mine)
        fuse_reply_err(req, EINTR);
}

static void read_stream(fuse_req_t req, OpenFile *of, size_t size, off_t off, int flags)
{
    gboolean answered;

    g_mutex_lock(&of->read_lock);
    answered = stream_read(req, of, size, off);
    g_mutex_unlock(&of->read_lock);
    if (answered) {
        return;
    } else if (of->reader && !crt_channel_has_target(of->dir->ch)) {
        /* Nothing is there and nothing can come: waiting would be forever,
         * in silence.  (A `wait` target that is absent is a target.) */
        crt_channel_set_error(of->dir->ch, "read: no target is set, so nothing can come "
                                           "(write one to `target`, then read)");
        fuse_reply_err(req, EDESTADDRREQ);
    } else if (flags & O_NONBLOCK) {
        fuse_reply_err(req, EAGAIN);
    } else {
        /* The interrupt function goes first: an interrupt that came before
         * the request is parked is seen by fuse_req_interrupted below, one
         * that comes after finds it parked.  Once parked, the request may be
         * answered (and freed) by another thread at any moment. */
        fuse_req_interrupt_func(req, read_interrupted, of);
        g_mutex_lock(&of->dir->wait_lock);
        if (of->read_req || fuse_req_interrupted(req)) {
            int err = of->read_req ? EBUSY : EINTR; /* one parked read per open file */

            g_mutex_unlock(&of->dir->wait_lock);
            fuse_reply_err(req, err);
            return;
        }
        of->read_req = req;
        of->read_size = size;
        of->read_off = off;
        /* Data may have come while we were not looking. */
        try_parked_read(of);
        g_mutex_unlock(&of->dir->wait_lock);
    }
}

void crt_fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    OpenFile *of = of_of(fi);
    size_t start;

    /* The kernel may release the file as soon as our reply is in, before
     * this thread is done with it: the read holds a reference. */
    g_atomic_int_inc(&of->refs);
    if (of->reader || of->send) {
        read_stream(req, of, size, off, fi->flags);
        open_file_unref(of);
        return;
    }
    /* A generated file: a snapshot taken at offset 0, read as a whole.
     * read_lock: release waits until the reply has left. */
    g_mutex_lock(&of->read_lock);
    if ((off == 0 || !of->text) && of->node->kind == N_LINES) {
        GError *error = NULL;
        char *text;
        int r = crt_channel_lines_read(of->dir->ch, &text, &error);

        if (r < 0) {
            g_mutex_unlock(&of->read_lock);
            crt_fs_reply_error(req, of->dir, -r, error);
            open_file_unref(of);
            return;
        }
        g_free(of->text);
        of->text = text;
        of->text_len = strlen(text);
    } else if (off == 0 || !of->text) {
        g_free(of->text);
        of->text = generate(fs_of(req), of->node, of->dir);
        of->text_len = of->text ? strlen(of->text) : 0;
    }
    start = MIN((size_t)MAX(off, 0), of->text_len);
    fuse_reply_buf(req, of->text ? of->text + start : NULL,
                   MIN(size, of->text_len - start));
    g_mutex_unlock(&of->read_lock);
    open_file_unref(of);
}

/* --- writes ------------------------------------------------------------ */

static void fill_creds(fuse_req_t req, CrtCreds *c, gid_t *groups, int max)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int n = fuse_req_getgroups(req, max, groups);

    c->uid = ctx->uid;
    c->gid = ctx->gid;
    c->groups = groups;
    c->ngroups = n < 0 ? 0 : MIN(n, max);
}

static int control_write(fuse_req_t req, OpenFile *of, const char *text, GError **error)
{
    CrtChannel *ch = of->dir->ch;
    gid_t groups[64];
    CrtCreds creds;

    switch (of->node->kind) {
    case N_CTL:
        return crt_channel_ctl(ch, text, error);
    case N_TARGET:
        fill_creds(req, &creds, groups, G_N_ELEMENTS(groups));
        return crt_fs_explain_busy(fs_of(req), of->dir, text,
                                   crt_channel_set_target(ch, text, &creds, error),
                                   error);
    case N_CONFIG:
        return crt_channel_config_set(ch, of->node->name, text, error);
    default:
        return -EBADF;
    }
}

/* Answer the parked input write if there is room now; wait_lock held. */
static void try_parked_write(OpenFile *of)
{
    fuse_req_t req = of->write_req;
    gsize len;
    const void *p;
    int r;

    if (!req)
        return;
    p = g_bytes_get_data(of->write_data, &len);
    r = crt_channel_input_write(of->dir->ch, p, len, NULL);
    if (r == -EAGAIN)
        return;
    of->write_req = NULL;
    g_clear_pointer(&of->write_data, g_bytes_unref);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_write(req, len);
}

static void write_interrupted(fuse_req_t req, void *data)
{
    OpenFile *of = data;
    gboolean mine;

    g_mutex_lock(&of->dir->wait_lock);
    mine = of->write_req == req;
    if (mine) {
        of->write_req = NULL;
        g_clear_pointer(&of->write_data, g_bytes_unref);
    }
    g_mutex_unlock(&of->dir->wait_lock);
    if (mine)
        fuse_reply_err(req, EINTR);
}

static void write_input(fuse_req_t req, OpenFile *of, const char *buf, size_t size,
                        int flags)
{
    GError *error = NULL;
    int r = crt_channel_input_write(of->dir->ch, buf, size, &error);

    if (r == 0) {
        fuse_reply_write(req, size);
    } else if (r != -EAGAIN) {
        crt_fs_reply_error(req, of->dir, -r, error);
    } else if (flags & O_NONBLOCK) {
        fuse_reply_err(req, EAGAIN);
    } else {
        fuse_req_interrupt_func(req, write_interrupted, of); /* first: see reads */
        g_mutex_lock(&of->dir->wait_lock);
        if (of->write_req || fuse_req_interrupted(req)) {
            int err = of->write_req ? EBUSY : EINTR;

            g_mutex_unlock(&of->dir->wait_lock);
            fuse_reply_err(req, err);
            return;
        }
        of->write_req = req;
        of->write_data = g_bytes_new(buf, size);
        try_parked_write(of);
        g_mutex_unlock(&of->dir->wait_lock);
    }
}

void crt_fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    OpenFile *of = of_of(fi);
    GError *error = NULL;
    char *text;
    int r;

    if (!of->dir) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (of->node->kind == N_INPUT) {
        write_input(req, of, buf, size, fi->flags);
        return;
    }
    if (of->node->kind == N_LINES) {
        write_lines(req, of, buf, size);
        return;
    }
    if (of->node->kind == N_SEND) {
        r = crt_send_write(of->send, buf, size, &error);
    } else if (size > MAX_CONTROL_WRITE || memchr(buf, '\0', size)) {
        crt_channel_set_error(of->dir->ch, size > MAX_CONTROL_WRITE
                                               ? "write too long for a control file"
                                               : "NUL byte in a control write");
        r = size > MAX_CONTROL_WRITE ? -EFBIG : -EINVAL;
    } else {
        /* One write is one command or value, wherever the offset is. */
        text = g_strndup(buf, size);
        r = control_write(req, of, text, &error);
        g_free(text);
    }
    if (r < 0)
        crt_fs_reply_error(req, of->dir, -r, error);
    else
        fuse_reply_write(req, size);
}

/* --- lines ------------------------------------------------------------- */

typedef struct {
    fuse_req_t req;
    OpenFile *of; /* referenced */
    char *text;
    size_t size;
    GCancellable *cancel;
} LinesJob;

static void lines_job_free(LinesJob *job)
{
    g_object_unref(job->cancel);
    g_free(job->text);
    g_free(job);
}

/* Take the `lines` request out of its open file if it is still `req`;
 * wait_lock held. */
static gboolean take_lines_req_unlocked(OpenFile *of, fuse_req_t req)
{
    if (!req || of->lines_req != req)
        return FALSE;
    of->lines_req = NULL;
    g_clear_object(&of->lines_cancel);
    return TRUE;
}

static void lines_interrupted(fuse_req_t req, void *data)
{
    OpenFile *of = data;
    GCancellable *cancel = NULL;
    gboolean mine;

    g_mutex_lock(&of->dir->wait_lock);
    if (of->lines_req == req && of->lines_cancel)
        cancel = g_object_ref(of->lines_cancel);
    mine = take_lines_req_unlocked(of, req);
    g_mutex_unlock(&of->dir->wait_lock);
    if (cancel) {
        g_cancellable_cancel(cancel); /* the rest of the sequence does not run */
        g_object_unref(cancel);
    }
    if (mine)
        fuse_reply_err(req, EINTR);
}

void crt_fs_lines_job(gpointer data, gpointer fs)
{
    LinesJob *job = data;
    OpenFile *of = job->of;
    GError *error = NULL;
    int r = crt_channel_lines_write(of->dir->ch, job->text, job->cancel, &error);
    gboolean mine;

    g_mutex_lock(&of->dir->wait_lock);
    mine = take_lines_req_unlocked(of, job->req);
    g_mutex_unlock(&of->dir->wait_lock);
    if (!mine)
        g_clear_error(&error); /* interrupted: EINTR went out already */
    else if (r < 0)
        crt_fs_reply_error(job->req, of->dir, -r, error);
    else
        fuse_reply_write(job->req, job->size);
    open_file_unref(of);
    lines_job_free(job);
}

/* A `lines` write: one sequence, run on a worker; the reply comes when it
 * is done (or interrupted). */
/* Make `job` the open file's `lines` request: 0, or EBUSY (one sequence
 * at a time per open file) or EINTR (interrupted already). */
static int park_lines_job(OpenFile *of, LinesJob *job)
{
    int err = 0;

    fuse_req_interrupt_func(job->req, lines_interrupted, of); /* first: see reads */
    g_mutex_lock(&of->dir->wait_lock);
    if (of->lines_req)
        err = EBUSY;
    else if (fuse_req_interrupted(job->req))
        err = EINTR;
    else {
        of->lines_req = job->req;
        of->lines_cancel = g_object_ref(job->cancel);
        g_atomic_int_inc(&of->refs); /* the job's */
    }
    g_mutex_unlock(&of->dir->wait_lock);
    return err;
}

/* Hand `job` to a worker; FALSE once shutdown stopped them. */
static gboolean push_lines_job(CrtFs *fs, LinesJob *job)
{
    gboolean pushed;

    g_mutex_lock(&fs->lock);
    pushed = fs->lines_pool != NULL;
    if (pushed)
        g_thread_pool_push(fs->lines_pool, job, NULL);
    g_mutex_unlock(&fs->lock);
    return pushed;
}

static void write_lines(fuse_req_t req, OpenFile *of, const char *buf, size_t size)
{
    LinesJob *job;
    gboolean mine;
    int err;

    if (size > MAX_CONTROL_WRITE || memchr(buf, '\0', size)) {
        crt_channel_set_error(of->dir->ch, size > MAX_CONTROL_WRITE
                                               ? "write too long for a control file"
                                               : "NUL byte in a control write");
        fuse_reply_err(req, size > MAX_CONTROL_WRITE ? EFBIG : EINVAL);
        return;
    }
    job = g_new0(LinesJob, 1);
    job->req = req;
    job->of = of;
    job->text = g_strndup(buf, size);
    job->size = size;
    job->cancel = g_cancellable_new();
    if ((err = park_lines_job(of, job)) != 0) {
        lines_job_free(job);
        fuse_reply_err(req, err);
        return;
    }
    if (push_lines_job(fs_of(req), job))
        return;
    /* The filesystem is shutting down: no more sequences. */
    g_mutex_lock(&of->dir->wait_lock);
    mine = take_lines_req_unlocked(of, req);
    g_mutex_unlock(&of->dir->wait_lock);
    if (mine)
        fuse_reply_err(req, ENODEV);
    open_file_unref(of);
    lines_job_free(job);
}

/* --- poll, wake-ups, release ----------------------------------------------- */

static unsigned revents_of(OpenFile *of)
{
    switch (of->node->kind) {
    case N_DATA:
    case N_RECORDS:
    case N_RECORDS_JSONL:
        return crt_hub_readable(of->reader) ? POLLIN | POLLRDNORM : 0;
    case N_SEND:
        return POLLOUT | POLLWRNORM |
               (crt_send_readable(of->send) ? POLLIN | POLLRDNORM : 0);
    case N_INPUT:
        return crt_channel_input_writable(of->dir->ch) ? POLLOUT | POLLWRNORM : 0;
    default:
        return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
    }
}

void crt_fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
    OpenFile *of = of_of(fi);
    unsigned rev;

    if (!of->dir) {
        if (ph)
            fuse_pollhandle_destroy(ph);
        fuse_reply_poll(req, POLLIN | POLLRDNORM);
        return;
    }
    g_mutex_lock(&of->dir->wait_lock);
    if (ph) {
        if (of->ph)
            fuse_pollhandle_destroy(of->ph);
        of->ph = ph; /* the newest handle replaces the old one */
    }
    rev = revents_of(of);
    g_mutex_unlock(&of->dir->wait_lock);
    fuse_reply_poll(req, rev);
}

static _Thread_local Dir *waking;

void crt_fs_dir_wake(Dir *d)
{
    /* A write retried from here can make the channel notify again on this
     * thread: that round is already under way. */
    if (waking == d)
        return;
    waking = d;
    g_mutex_lock(&d->wait_lock);
    for (GList *l = d->opens; l; l = l->next) {
        OpenFile *of = l->data;

        try_parked_read(of);
        try_parked_write(of);
        if (of->ph && revents_of(of)) {
            fuse_lowlevel_notify_poll(of->ph);
            fuse_pollhandle_destroy(of->ph);
            of->ph = NULL;
        }
    }
    g_mutex_unlock(&d->wait_lock);
    waking = NULL;
}

void crt_fs_dir_flush(Dir *d)
{
    /* The channel is shut down: reads now end, writes fail. */
    crt_fs_dir_wake(d);
    g_mutex_lock(&d->wait_lock);
    for (GList *l = d->opens; l; l = l->next) {
        OpenFile *of = l->data;

        if (of->write_req) {
            fuse_reply_err(of->write_req, ENODEV);
            of->write_req = NULL;
            g_clear_pointer(&of->write_data, g_bytes_unref);
        }
        if (of->read_req) {
            fuse_reply_buf(of->read_req, NULL, 0);
            of->read_req = NULL;
        }
        if (of->ph) {
            fuse_lowlevel_notify_poll(of->ph);
            fuse_pollhandle_destroy(of->ph);
            of->ph = NULL;
        }
    }
    g_mutex_unlock(&d->wait_lock);
}

/* The last reference: the reader and send session go, then the reference
 * on the directory, whose channel and hub they belong to (a read still
 * under way after the release keeps both alive). */
static void open_file_unref(OpenFile *of)
{
    if (!g_atomic_int_dec_and_test(&of->refs))
        return;
    crt_hub_reader_free(of->reader);
    if (of->send)
        crt_send_close(of->send);
    g_atomic_int_add(&of->node->opens, -1);
    if (of->fs && of->dir)
        crt_fs_dir_unref(of->fs, of->dir);
    g_free(of->text);
    g_free(of->buf);
    g_mutex_clear(&of->read_lock);
    g_free(of);
}

void crt_fs_open_file_free(OpenFile *of)
{
    Dir *d = of->dir;

    if (d) {
        g_mutex_lock(&d->wait_lock);
        d->opens = g_list_remove_link(d->opens, &of->link);
        if (of->ph)
            fuse_pollhandle_destroy(of->ph);
        of->ph = NULL;
        g_mutex_unlock(&d->wait_lock);
    }
    open_file_unref(of);
}

void crt_fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    OpenFile *of = of_of(fi);

    crt_fs_open_file_free(of); /* the directory goes with its last reference */
    g_atomic_int_add(&fs_of(req)->open_files, -1);
    fuse_reply_err(req, 0);
}

void crt_fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_open(req, fi);
}
