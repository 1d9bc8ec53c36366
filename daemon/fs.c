/* crtfs - the filesystem's tree: the root, one directory per target, its
 * files and config/ (see fs-private.h).  Open files live in fs-io.c.
 *
 * Inode numbers are never reused.  A node stays valid while the kernel
 * holds a lookup reference to it, even after rmdir; a target directory (with
 * its channel) is freed when the tree, every node the kernel knows and every
 * open file have let go of it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <gio/gio.h>

#include <crtfs/error.h>

#include "config-file.h"
#include "fs-private.h"

#define DEFAULT_MAX_TARGETS 1024
/* Replay names (`data@5`) a directory keeps at once: unused ones (the
 * kernel forgot them, nothing has them open) make room for new ones. */
#define MAX_REPLAY_NODES 256

static const struct {
    const char *name;
    NodeKind kind;
    mode_t mode;
} dir_files[] = {
    {"ctl", N_CTL, S_IFREG | 0200},
    {"state", N_STATE, S_IFREG | 0444},
    {"target", N_TARGET, S_IFREG | 0644},
    {"data", N_DATA, S_IFREG | 0444},
    {"records", N_RECORDS, S_IFREG | 0444},
    {"records.jsonl", N_RECORDS_JSONL, S_IFREG | 0444},
    {"input", N_INPUT, S_IFREG | 0200},
    {"send", N_SEND, S_IFREG | 0600},
    {"stats", N_STATS, S_IFREG | 0444},
    {"lines", N_LINES, S_IFREG | 0644},
    {"config", N_CONFIG_DIR, S_IFDIR | 0755},
};

static CrtFs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* fs lock held. */
static Node *node_new(CrtFs *fs, NodeKind kind, const char *name, Dir *d, mode_t mode,
                      uid_t uid, gid_t gid)
{
    Node *n = g_new0(Node, 1);

    n->ino = fs->next_ino++;
    n->kind = kind;
    n->name = name;
    n->dir = d;
    n->mode = mode;
    n->uid = uid;
    n->gid = gid;
    clock_gettime(CLOCK_REALTIME, &n->ctime);
    g_hash_table_insert(fs->nodes, &n->ino, n);
    if (d)
        g_ptr_array_add(d->files, n);
    return n;
}

CrtFs *crt_fs_new(const CrtFsOptions *opts)
{
    CrtFs *fs = g_new0(CrtFs, 1);

    g_mutex_init(&fs->lock);
    fs->opts = *opts;
    if (!fs->opts.max_targets)
        fs->opts.max_targets = DEFAULT_MAX_TARGETS;
    fs->nodes = g_hash_table_new(g_int64_hash, g_int64_equal);
    fs->dirs = g_hash_table_new(g_str_hash, g_str_equal);
    fs->next_ino = FUSE_ROOT_ID;
    fs->root = node_new(fs, N_ROOT, "", NULL, S_IFDIR | 0755, geteuid(), getegid());
    fs->version =
        node_new(fs, N_VERSION, "version", NULL, S_IFREG | 0444, geteuid(), getegid());
    fs->metrics =
        node_new(fs, N_METRICS, "metrics", NULL, S_IFREG | 0444, geteuid(), getegid());
    fs->reload =
        node_new(fs, N_RELOAD, "reload", NULL, S_IFREG | 0444, geteuid(), getegid());
    fs->reload_status = (CrtReloadStatus){TRUE, 0, g_get_real_time()};
    fs->lines_pool = g_thread_pool_new(crt_fs_lines_job, fs, 4, FALSE, NULL);
    return fs;
}

guint crt_fs_open_files(CrtFs *fs)
{
    return (guint)g_atomic_int_get(&fs->open_files);
}

Node *crt_fs_node(CrtFs *fs, fuse_ino_t ino)
{
    Node *n;

    g_mutex_lock(&fs->lock);
    n = g_hash_table_lookup(fs->nodes, &ino);
    g_mutex_unlock(&fs->lock);
    return n;
}

static void channel_notify(CrtChannel *ch, gpointer data)
{
    crt_fs_dir_wake(data);
}

/* fs lock held. */
static Dir *dir_new_unlocked(CrtFs *fs, const char *name, uid_t uid, gid_t gid)
{
    CrtChannelPolicy policy = {.allow_exec_for_users = fs->opts.allow_exec,
                               .max_memory = fs->opts.max_target_memory};
    Dir *d = g_new0(Dir, 1);

    d->name = g_strdup(name);
    d->refs = 1; /* the tree */
    d->files = g_ptr_array_new();
    g_mutex_init(&d->wait_lock);
    d->ch = crt_channel_new(name, &policy, channel_notify, d);
    d->node = node_new(fs, N_DIR, d->name, d, S_IFDIR | 0755, uid, gid);
    for (size_t i = 0; i < G_N_ELEMENTS(dir_files); i++) {
        Node *n = node_new(fs, dir_files[i].kind, dir_files[i].name, d, dir_files[i].mode,
                           uid, gid);

        if (n->kind == N_CONFIG_DIR)
            d->config = n;
    }
    g_assert(d->config);
    for (const char *const *k = crt_config_keys(); *k; k++)
        node_new(fs, N_CONFIG, *k, d, S_IFREG | 0644, uid, gid);
    g_hash_table_insert(fs->dirs, d->name, d);
    fs->dirs_alive++;
    return d;
}

guint crt_fs_removed_held(CrtFs *fs)
{
    guint n;

    g_mutex_lock(&fs->lock);
    n = fs->dirs_alive - g_hash_table_size(fs->dirs);
    g_mutex_unlock(&fs->lock);
    return n;
}

GPtrArray *crt_fs_dirs_ref(CrtFs *fs)
{
    GPtrArray *dirs = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&fs->lock);
    g_hash_table_iter_init(&it, fs->dirs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        ((Dir *)v)->refs++;
        g_ptr_array_add(dirs, v);
    }
    g_mutex_unlock(&fs->lock);
    return dirs;
}

void crt_fs_dir_ref(CrtFs *fs, Dir *d)
{
    g_mutex_lock(&fs->lock);
    d->refs++;
    g_mutex_unlock(&fs->lock);
}

static void dir_free(Dir *d)
{
    /* Files still open only at the very end, after the session is gone;
     * the directory is going anyway: their reference on it no longer counts. */
    while (d->opens) {
        ((OpenFile *)d->opens->data)->fs = NULL;
        crt_fs_open_file_free(d->opens->data);
    }
    crt_channel_free(d->ch);
    for (guint i = 0; i < d->files->len; i++) {
        Node *n = g_ptr_array_index(d->files, i);

        g_free(n->owned_name);
        g_free(n);
    }
    g_ptr_array_free(d->files, TRUE);
    g_mutex_clear(&d->wait_lock);
    g_free(d->group_text);
    g_free(d->name);
    g_free(d);
}

void crt_fs_dir_unref(CrtFs *fs, Dir *d)
{
    gboolean last;

    g_mutex_lock(&fs->lock);
    last = --d->refs == 0;
    if (last) {
        fs->dirs_alive--;
        for (guint i = 0; i < d->files->len; i++) {
            Node *n = g_ptr_array_index(d->files, i);

            g_hash_table_remove(fs->nodes, &n->ino);
        }
    }
    g_mutex_unlock(&fs->lock);
    if (last)
        dir_free(d);
}

int crt_fs_explain_busy(CrtFs *fs, Dir *d, const char *spec, int r, GError **error)
{
    GPtrArray *dirs;
    Dir *holder = NULL;

    if (r != -EBUSY)
        return r;
    dirs = crt_fs_dirs_ref(fs);
    for (guint i = 0; i < dirs->len && !holder; i++) {
        Dir *other = g_ptr_array_index(dirs, i);

        if (other != d && crt_channel_holds_spec_file(other->ch, spec))
            holder = other;
    }
    if (holder)
        r = crt_channel_explain_busy(d->ch, spec, holder->name, error);
    for (guint i = 0; i < dirs->len; i++)
        crt_fs_dir_unref(fs, g_ptr_array_index(dirs, i));
    g_ptr_array_free(dirs, TRUE);
    return r;
}

void crt_fs_reply_error(fuse_req_t req, Dir *d, int err, GError *error)
{
    if (error) {
        g_debug("%s: %s", d ? d->name : "/", error->message);
        g_error_free(error);
    }
    fuse_reply_err(req, err);
}

/* --- attributes and lookup -------------------------------------------- */

static void fill_stat(const Node *node, struct stat *st)
{
    const Node *n = node->base ? node->base : node; /* a replay name: its file's */

    memset(st, 0, sizeof *st);
    st->st_ino = node->ino;
    st->st_mode = n->mode;
    st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
    st->st_uid = n->uid;
    st->st_gid = n->gid;
    st->st_blksize = 4096;
    st->st_atim = st->st_mtim = st->st_ctim = n->ctime;
}

/* The child `name` of `parent`; fs lock held. */
static Node *child_unlocked(CrtFs *fs, Node *parent, const char *name)
{
    Dir *d;

    if (parent->kind == N_ROOT) {
        if (strcmp(name, "version") == 0)
            return fs->version;
        if (strcmp(name, "metrics") == 0)
            return fs->metrics;
        if (strcmp(name, "reload") == 0)
            return fs->reload;
        d = g_hash_table_lookup(fs->dirs, name);
        return d ? d->node : NULL;
    }
    if (parent->kind != N_DIR && parent->kind != N_CONFIG_DIR)
        return NULL;
    d = parent->dir;
    for (guint i = 0; i < d->files->len; i++) {
        Node *n = g_ptr_array_index(d->files, i);
        gboolean in_config = n->kind == N_CONFIG;

        if (n != d->node && in_config == (parent->kind == N_CONFIG_DIR) &&
            strcmp(n->name, name) == 0)
            return n;
    }
    return NULL;
}

/* Count a kernel reference; fs lock held.  A directory's nodes keep it. */
static void node_lookup_unlocked(Node *n)
{
    if (n->nlookup++ == 0 && n->dir)
        n->dir->refs++;
}

static void reply_entry_unlocked(fuse_req_t req, Node *n)
{
    struct fuse_entry_param e = {0};

    node_lookup_unlocked(n);
    e.ino = n->ino;
    /* No caching of names: targets come and go with mkdir and rmdir. */
    e.attr_timeout = 0;
    e.entry_timeout = 0;
    fill_stat(n, &e.attr);
    fuse_reply_entry(req, &e);
}

/* ---- replay names ------------------------------------------------------ */

/* Make room for one more replay node of `d`: an unused one goes.  FALSE
 * when every one is in use.  fs lock held. */
static gboolean replay_room_unlocked(CrtFs *fs, Dir *d)
{
    guint count = 0;
    Node *unused = NULL;

    for (guint i = 0; i < d->files->len; i++) {
        Node *n = g_ptr_array_index(d->files, i);

        if (!n->base)
            continue;
        count++;
        if (n->nlookup == 0 && g_atomic_int_get(&n->opens) == 0)
            unused = n;
    }
    if (count < MAX_REPLAY_NODES)
        return TRUE;
    if (!unused)
        return FALSE;
    g_ptr_array_remove(d->files, unused);
    g_hash_table_remove(fs->nodes, &unused->ino);
    g_free(unused->owned_name);
    g_free(unused);
    return TRUE;
}

/* The node for `name` (`data@5`, `records@all`) in target directory `d`,
 * made on its first lookup, or NULL with `error` saying why.  Such names
 * are not listed: they are ways to open the stream files, one node per
 * name so that an open knows what it asked for.  fs lock held. */
static Node *replay_child_unlocked(CrtFs *fs, Dir *d, const char *name, GError **error)
{
    const char *at = strchr(name, '@');
    char *base_name = g_strndup(name, (gsize)(at - name));
    Node *base = NULL, *n;
    CrtReplaySpec spec;

    for (guint i = 0; i < d->files->len && !base; i++) {
        n = g_ptr_array_index(d->files, i);
        if (!n->base && crt_fs_stream_kind(n->kind) && strcmp(n->name, base_name) == 0)
            base = n;
    }
    g_free(base_name);
    if (!base) {
        crt_set_error(error, ENOENT,
                      "%s: only the stream files take a replay suffix "
                      "(data@N, records@N ...)",
                      name);
        return NULL;
    }
    if (crt_replay_parse(at + 1, &spec, error) < 0)
        return NULL;
    if (!replay_room_unlocked(fs, d)) {
        crt_set_error(error, ENOENT,
                      "%s: %d replay names are in use at once already (close some)", name,
                      MAX_REPLAY_NODES);
        return NULL;
    }
    n = node_new(fs, base->kind, NULL, d, base->mode, base->uid, base->gid);
    n->owned_name = g_strdup(name);
    n->name = n->owned_name;
    n->base = base;
    n->replay = spec;
    return n;
}

/* A lookup of a name with `@` failed: the reason goes to `state`. */
static void report_replay_error(CrtFs *fs, Dir *d, GError *error)
{
    crt_channel_set_error(d->ch, error->message);
    g_debug("%s: %s", d->name, error->message);
    g_error_free(error);
    crt_fs_dir_unref(fs, d);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    CrtFs *fs = fs_of(req);
    Node *p, *n = NULL;

    GError *error = NULL;
    Dir *failed = NULL;

    g_mutex_lock(&fs->lock);
    p = g_hash_table_lookup(fs->nodes, &parent);
    if (p && !p->removed)
        n = child_unlocked(fs, p, name);
    if (!n && p && !p->removed && p->kind == N_DIR && strchr(name, '@')) {
        n = replay_child_unlocked(fs, p->dir, name, &error);
        if (!n) {
            failed = p->dir;
            failed->refs++; /* for the report, after the fs lock */
        }
    }
    if (n && !n->removed)
        reply_entry_unlocked(req, n);
    else
        fuse_reply_err(req, ENOENT);
    g_mutex_unlock(&fs->lock);
    if (failed)
        report_replay_error(fs, failed, error);
}

static void forget_one(CrtFs *fs, fuse_ino_t ino, uint64_t nlookup)
{
    Dir *unref = NULL;
    Node *n;

    g_mutex_lock(&fs->lock);
    n = g_hash_table_lookup(fs->nodes, &ino);
    if (n && n->nlookup > 0) {
        n->nlookup -= MIN(nlookup, n->nlookup);
        if (n->nlookup == 0)
            unref = n->dir;
    }
    g_mutex_unlock(&fs->lock);
    if (unref)
        crt_fs_dir_unref(fs, unref);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(fs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *list)
{
    for (size_t i = 0; i < count; i++)
        forget_one(fs_of(req), list[i].ino, list[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    CrtFs *fs = fs_of(req);
    struct stat st;
    Node *n;

    g_mutex_lock(&fs->lock);
    n = g_hash_table_lookup(fs->nodes, &ino);
    if (n)
        fill_stat(n, &st);
    g_mutex_unlock(&fs->lock);
    if (n)
        fuse_reply_attr(req, &st, 0);
    else
        fuse_reply_err(req, ENOENT);
}

/* chmod and chown are kept and, with default_permissions, enforced by the
 * kernel; truncation and times are accepted and ignored (`echo x > f`
 * truncates). */
static int setattr_unlocked(fuse_req_t req, Node *n, struct stat *attr, int to_set)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    gboolean owner = ctx->uid == 0 || ctx->uid == n->uid;

    if (n->kind == N_ROOT || n->kind == N_VERSION || n->kind == N_METRICS ||
        n->kind == N_RELOAD)
        return (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
                   ? EPERM
                   : 0;
    if ((to_set & FUSE_SET_ATTR_MODE) && !owner)
        return EPERM;
    if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && ctx->uid != 0)
        return EPERM;
    if (to_set & FUSE_SET_ATTR_MODE)
        n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID)
        n->uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        n->gid = attr->st_gid;
    clock_gettime(CLOCK_REALTIME, &n->ctime);
    return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    CrtFs *fs = fs_of(req);
    struct stat st;
    int err = ENOENT;
    Node *n;

    g_mutex_lock(&fs->lock);
    n = g_hash_table_lookup(fs->nodes, &ino);
    if (n && !n->removed) /* a replay name is its file */
        err = setattr_unlocked(req, n->base ? n->base : n, attr, to_set);
    if (err == 0)
        fill_stat(n, &st);
    g_mutex_unlock(&fs->lock);
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_attr(req, &st, 0);
}

/* --- directories -------------------------------------------------------- */

typedef struct {
    GByteArray *buf; /* entries as fuse_add_direntry lays them out */
    GArray *ends;    /* size_t: where each entry ends in buf */
} Listing;

static void add_entry(fuse_req_t req, Listing *ls, const char *name, const Node *n,
                      off_t next)
{
    struct stat st = {.st_ino = n->ino, .st_mode = n->mode};
    size_t len = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    guint at = ls->buf->len;
    size_t end = at + len;

    g_byte_array_set_size(ls->buf, (guint)end);
    fuse_add_direntry(req, (char *)ls->buf->data + at, len, name, &st, next);
    g_array_append_val(ls->ends, end);
}

/* The whole listing, built per call: directories are small. */
static void listing_unlocked(fuse_req_t req, CrtFs *fs, Node *dir, Listing *buf)
{
    off_t i = 0;

    add_entry(req, buf, ".", dir, ++i);
    add_entry(req, buf, "..", fs->root, ++i);
    if (dir->kind == N_ROOT) {
        GHashTableIter it;
        gpointer v;

        add_entry(req, buf, "version", fs->version, ++i);
        add_entry(req, buf, "metrics", fs->metrics, ++i);
        add_entry(req, buf, "reload", fs->reload, ++i);
        g_hash_table_iter_init(&it, fs->dirs);
        while (g_hash_table_iter_next(&it, NULL, &v))
            add_entry(req, buf, ((Dir *)v)->name, ((Dir *)v)->node, ++i);
        return;
    }
    for (guint k = 0; k < dir->dir->files->len; k++) {
        Node *n = g_ptr_array_index(dir->dir->files, k);

        if (n != dir->dir->node && !n->base &&
            (n->kind == N_CONFIG) == (dir->kind == N_CONFIG_DIR))
            add_entry(req, buf, n->name, n, ++i);
    }
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    CrtFs *fs = fs_of(req);
    Listing ls = {g_byte_array_new(), g_array_new(FALSE, FALSE, sizeof(size_t))};
    size_t start = 0, end = 0;
    gboolean ok;
    Node *n;

    g_mutex_lock(&fs->lock);
    n = g_hash_table_lookup(fs->nodes, &ino);
    ok = n && S_ISDIR(n->mode) && !n->removed;
    if (ok)
        listing_unlocked(req, fs, n, &ls);
    g_mutex_unlock(&fs->lock);
    if (!ok) {
        fuse_reply_err(req, n ? ENOTDIR : ENOENT);
    } else {
        /* Entry `off` onwards, as many whole entries as fit. */
        if (off > 0 && (guint)off <= ls.ends->len)
            start = end = g_array_index(ls.ends, size_t, off - 1);
        else if (off > 0)
            start = end = ls.buf->len;
        for (guint k = (guint)MAX(off, 0); k < ls.ends->len; k++) {
            size_t e = g_array_index(ls.ends, size_t, k);

            if (e - start > size)
                break;
            end = e;
        }
        fuse_reply_buf(req, (char *)ls.buf->data + start, end - start);
    }
    g_byte_array_free(ls.buf, TRUE);
    g_array_free(ls.ends, TRUE);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    CrtFs *fs = fs_of(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int err = parent == FUSE_ROOT_ID ? crt_target_name_check(name) : EPERM;
    Dir *d;

    g_mutex_lock(&fs->lock);
    if (!err && fs->shutting_down)
        err = ESHUTDOWN;
    if (!err && g_hash_table_contains(fs->dirs, name))
        err = EEXIST;
    if (!err && g_hash_table_size(fs->dirs) >= fs->opts.max_targets)
        err = ENOSPC;
    if (err) {
        g_mutex_unlock(&fs->lock);
        fuse_reply_err(req, err);
        return;
    }
    d = dir_new_unlocked(fs, name, ctx->uid, ctx->gid);
    d->node->mode = S_IFDIR | (mode & 07777 & ~ctx->umask);
    reply_entry_unlocked(req, d->node);
    g_mutex_unlock(&fs->lock);
}

/* --- removed directories: the kernel's names ---------------------------
 *
 * The kernel keeps the names it looked up in a directory that is removed
 * while one of its files is open (a reader of `data`, say): they stay in
 * its cache, unused, until memory runs short, and with them our nodes, the
 * directory, its channel and its buffers, since we free those only when the
 * kernel forgets them.  A directory removed and made again all day would
 * grow the daemon without end.  So after a removal we tell the kernel that
 * each name is gone (FUSE_NOTIFY_DELETE): it drops them and forgets the
 * nodes once their files are closed.
 *
 * The notices go out from a thread of their own, in order: the kernel
 * takes the directory's lock for them, which it holds while the rmdir that
 * caused them is being answered, and maybe while another request on one
 * of its files is. */

typedef struct {
    fuse_ino_t parent, child;
    char name[];
} Unlink;

static void unlink_one(gpointer data, gpointer user_data)
{
    CrtFs *fs = user_data;
    Unlink *u = data;

    /* ENOENT: the kernel had not cached that name (or the rmdir took it). */
    fuse_lowlevel_notify_delete(fs->se, u->parent, u->child, u->name, strlen(u->name));
    g_free(u);
}

void crt_fs_set_session(CrtFs *fs, struct fuse_session *se)
{
    fs->se = se;
    if (se && !fs->unlinker)
        fs->unlinker = g_thread_pool_new(unlink_one, fs, 1, FALSE, NULL);
}

static void queue_unlink(CrtFs *fs, fuse_ino_t parent, const Node *n)
{
    size_t len = strlen(n->name) + 1;
    Unlink *u = g_malloc(sizeof *u + len);

    u->parent = parent;
    u->child = n->ino;
    memcpy(u->name, n->name, len);
    g_thread_pool_push(fs->unlinker, u, NULL);
}

/* The names of a removed directory, deepest first; fs lock held. */
static void queue_unlinks_unlocked(CrtFs *fs, Dir *d)
{
    if (!fs->unlinker || fs->shutting_down)
        return;
    for (guint i = 0; i < d->files->len; i++) {
        Node *n = g_ptr_array_index(d->files, i);

        if (n->kind == N_CONFIG)
            queue_unlink(fs, d->config->ino, n);
    }
    for (guint i = 0; i < d->files->len; i++) {
        Node *n = g_ptr_array_index(d->files, i);

        if (n->kind != N_CONFIG && n != d->node)
            queue_unlink(fs, d->node->ino, n);
    }
    /* A directory an rmdir removed is gone from the kernel already; one
     * that a reload removed is not. */
    queue_unlink(fs, FUSE_ROOT_ID, d->node);
}

/* No more notices; the ones queued are sent first unless `drop`.  Before
 * the request threads stop, so that every lock the kernel took for a
 * request gets released. */
static void unlinker_stop(CrtFs *fs, gboolean drop)
{
    if (fs->unlinker)
        g_thread_pool_free(fs->unlinker, drop, TRUE);
    fs->unlinker = NULL;
}

/* Wait for every `lines` write to reply (the directories are shut down,
 * so their sequences stop at once). */
static void lines_pool_stop(CrtFs *fs)
{
    GThreadPool *pool;

    g_mutex_lock(&fs->lock);
    pool = fs->lines_pool;
    fs->lines_pool = NULL; /* no job is pushed from now on */
    g_mutex_unlock(&fs->lock);
    if (pool)
        g_thread_pool_free(pool, FALSE, TRUE);
}

/* Take a directory out of the tree: stop its target (and wait), end every
 * read, and let go of the tree's reference. */
static void dir_remove(CrtFs *fs, Dir *d)
{
    crt_channel_shutdown(d->ch);
    crt_fs_dir_flush(d);
    g_mutex_lock(&fs->lock);
    g_hash_table_remove(fs->dirs, d->name);
    d->removed = TRUE;
    for (guint i = 0; i < d->files->len; i++)
        ((Node *)g_ptr_array_index(d->files, i))->removed = TRUE;
    queue_unlinks_unlocked(fs, d);
    g_mutex_unlock(&fs->lock);
    crt_fs_dir_unref(fs, d);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    CrtFs *fs = fs_of(req);
    Dir *d = NULL;

    g_mutex_lock(&fs->lock);
    if (parent == FUSE_ROOT_ID)
        d = g_hash_table_lookup(fs->dirs, name);
    if (d && !d->removed)
        d->refs++; /* held across the blocking stop */
    g_mutex_unlock(&fs->lock);
    if (!d) {
        fuse_reply_err(req, parent == FUSE_ROOT_ID ? ENOENT : EPERM);
        return;
    }
    dir_remove(fs, d);
    crt_fs_dir_unref(fs, d);
    fuse_reply_err(req, 0);
}

static void op_refuse(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EPERM);
}

/* A file that is not there cannot be made.  config/ holds one file per key,
 * so a name that is not a key is missing (ENOENT, with the reason in
 * `state`); nowhere else may files be created (EPERM). */
static void refuse_new_file(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    CrtFs *fs = fs_of(req);
    Dir *d = NULL;
    char *msg;
    Node *p;

    g_mutex_lock(&fs->lock);
    p = g_hash_table_lookup(fs->nodes, &parent);
    if (p && p->kind == N_CONFIG_DIR && !p->removed) {
        d = p->dir;
        d->refs++;
    }
    g_mutex_unlock(&fs->lock);
    if (!d) {
        fuse_reply_err(req, EPERM);
        return;
    }
    msg = g_strdup_printf("config/%s: no such key (the keys are the files of config/)",
                          name);
    crt_channel_set_error(d->ch, msg);
    g_free(msg);
    crt_fs_dir_unref(fs, d);
    fuse_reply_err(req, ENOENT);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    refuse_new_file(req, parent, name);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
    refuse_new_file(req, parent, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    fuse_reply_err(req, EPERM);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* Control writes must reach us one by one, as written. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

/* --- config file ---------------------------------------------------------- */

/* The config file's booleans, as config/ reads them. */
static gboolean is_true(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};

    for (size_t i = 0; v && i < G_N_ELEMENTS(yes); i++) {
        if (g_ascii_strcasecmp(g_strstrip((char *)v), yes[i]) == 0)
            return TRUE;
    }
    return FALSE;
}

/* The files' owner, group and the mode of `data` and `records`, as the
 * group's owner, group and mode keys say (the udev way: who may read a
 * stream is set where the target is declared); the daemon's and 0444 by
 * default. */
static int file_access(GKeyFile *kf, const char *group, CrtFileAccess *access,
                       GError **error)
{
    static const char *const keys[] = {"owner", "group", "mode"};
    int r = 0;

    *access = (CrtFileAccess){geteuid(), getegid(), 0444};
    for (size_t i = 0; r == 0 && i < G_N_ELEMENTS(keys); i++) {
        char *v = g_key_file_get_string(kf, group, keys[i], NULL);

        if (v && crt_config_is_access_key(keys[i], v))
            r = crt_config_parse_access(keys[i], g_strstrip(v), access, error);
        g_free(v);
    }
    return r;
}

/* A group's keys as written, to tell whether a reload changes it. */
static char *group_text(GKeyFile *kf, const char *group)
{
    char **keys = g_key_file_get_keys(kf, group, NULL, NULL);
    GString *s = g_string_new(NULL);

    for (guint i = 0; keys && keys[i]; i++) {
        char *v = g_key_file_get_value(kf, group, keys[i], NULL);

        g_string_append_printf(s, "%s=%s\n", keys[i], v ? v : "");
        g_free(v);
    }
    g_strfreev(keys);
    return g_string_free(s, FALSE);
}

/* Owner, group and mode on a directory's nodes (fs lock held). */
static void set_access_unlocked(Dir *d, const CrtFileAccess *a)
{
    d->node->uid = a->uid;
    d->node->gid = a->gid;
    for (guint i = 0; i < d->files->len; i++) {
        Node *n = g_ptr_array_index(d->files, i);

        n->uid = a->uid;
        n->gid = a->gid;
        if (crt_fs_stream_kind(n->kind))
            n->mode = S_IFREG | (a->mode & 0444); /* only reading means anything there */
    }
}

/* A group's keys, target and autostart applied to `d`, which is stopped or
 * may stream on (then keys that cannot change live fail).  Returns 0 or the
 * first error. */
static int apply_group(CrtFs *fs, Dir *d, GKeyFile *kf, const char *group,
                       gboolean set_target, GError **error)
{
    char **keys = g_key_file_get_keys(kf, group, NULL, NULL);
    char *target = NULL, *split_max = NULL;
    gboolean autostart = FALSE;
    int r = 0;

    for (guint i = 0; r == 0 && keys && keys[i]; i++) {
        /* get_string undoes the file's escapes (\n, \r, \s in a payload). */
        char *v = g_key_file_get_string(kf, group, keys[i], NULL);

        if (strcmp(keys[i], "target") == 0)
            target = g_strdup(v);
        else if (strcmp(keys[i], "autostart") == 0)
            autostart = is_true(v);
        else if (strcmp(keys[i], "split_max") == 0)
            split_max = g_strdup(v); /* after out_size, wherever the file has it */
        else if (!crt_config_is_access_key(keys[i], v))
            r = crt_channel_config_set(d->ch, keys[i], v ? v : "", error);
        g_free(v);
    }
    if (r == 0 && split_max)
        r = crt_channel_config_set(d->ch, "split_max", split_max, error);
    g_free(split_max);
    if (r == 0 && set_target)
        r = crt_fs_explain_busy(
            fs, d, target ? target : "",
            crt_channel_set_target(d->ch, target ? target : "", NULL, error), error);
    /* A stream the file started and a reload left running stays the file's. */
    if (r == 0 && autostart && crt_channel_state(d->ch) != CRT_STATE_STREAMING) {
        r = crt_channel_start(d->ch, error);
        d->config_started = r == 0;
    } else if (!autostart || r < 0) {
        d->config_started = FALSE;
    }
    g_free(target);
    g_strfreev(keys);
    return r;
}

static int load_group(CrtFs *fs, GKeyFile *kf, const char *group, GError **error)
{
    CrtFileAccess access;
    Dir *d;
    int r = crt_target_name_check(group) ? -EINVAL : 0;

    if (r < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "[%s]: not a valid target name", group);
        return r;
    }
    r = file_access(kf, group, &access, error);
    g_mutex_lock(&fs->lock);
    d = dir_new_unlocked(fs, group, access.uid, access.gid);
    set_access_unlocked(d, &access);
    d->group_text = group_text(kf, group);
    g_mutex_unlock(&fs->lock);
    if (r == 0)
        r = apply_group(fs, d, kf, group, g_key_file_has_key(kf, group, "target", NULL),
                        error);
    if (r < 0 && error && *error)
        g_prefix_error(error, "[%s]: ", group);
    return r;
}

/* The first error is the caller's, the others are logged. */
static void keep_first(int r, GError *err, int *first, GError **error)
{
    if (r >= 0)
        return;
    if (*first == 0) {
        *first = r;
        g_propagate_error(error, err);
    } else {
        g_warning("config: %s", err->message);
        g_error_free(err);
    }
}

/* Every group gets its directory even when an earlier one failed (a target
 * that cannot be opened now keeps its directory and says why in `state`);
 * the first error is returned. */
int crt_fs_load_config(CrtFs *fs, GKeyFile *kf, GError **error)
{
    char **groups = g_key_file_get_groups(kf, NULL);
    int first = 0;

    for (guint i = 0; groups[i]; i++) {
        GError *err = NULL;
        int r = load_group(fs, kf, groups[i], &err);

        keep_first(r, err, &first, error);
    }
    g_strfreev(groups);
    return first;
}

/* Whether applying the group's new keys needs its stream stopped: a key
 * that cannot change while streaming has a new value (`old_text` is the
 * group as group_text() wrote it last time).  Live keys, the access keys
 * and autostart change under a running stream; a new target replaces the
 * old one by itself. */
static gboolean needs_stop(const char *old_text, GKeyFile *kf, const char *group)
{
    char **lines = g_strsplit(old_text ? old_text : "", "\n", -1);
    char **keys = g_key_file_get_keys(kf, group, NULL, NULL);
    gboolean stop = FALSE;

    for (guint i = 0; !stop && keys && keys[i]; i++) {
        const char *k = keys[i];
        char *v = g_key_file_get_value(kf, group, k, NULL);
        char *line = g_strdup_printf("%s=%s", k, v ? v : "");

        if (strcmp(k, "target") != 0 && strcmp(k, "autostart") != 0 &&
            !crt_config_is_access_key(k, v) && !crt_config_key_is_live(k))
            stop = !g_strv_contains((const char *const *)lines, line);
        g_free(line);
        g_free(v);
    }
    g_strfreev(keys);
    g_strfreev(lines);
    return stop;
}

/* A group that changed, applied to its directory. */
static int reload_group(CrtFs *fs, Dir *d, GKeyFile *kf, const char *group,
                        GError **error)
{
    char *old_target = crt_channel_target_text(d->ch);
    char *new_target = g_key_file_get_string(kf, group, "target", NULL);
    gboolean restart = d->config_started &&
                       crt_channel_state(d->ch) == CRT_STATE_STREAMING &&
                       needs_stop(d->group_text, kf, group);
    CrtFileAccess access;
    int r;

    /* The target is set again only when its spec changed: an unchanged one
     * keeps its descriptors, tty settings and connection. */
    g_strstrip(old_target);
    if (new_target)
        g_strstrip(new_target);
    r = file_access(kf, group, &access, error);
    if (r == 0) {
        g_mutex_lock(&fs->lock);
        set_access_unlocked(d, &access);
        g_mutex_unlock(&fs->lock);
        if (restart)
            r = crt_channel_stop(d->ch, TRUE, error);
    }
    if (r == 0)
        r = apply_group(fs, d, kf, group,
                        g_strcmp0(old_target, new_target ? new_target : "") != 0, error);
    if (r < 0 && error && *error)
        g_prefix_error(error, "[%s]: ", group);
    g_free(old_target);
    g_free(new_target);
    return r;
}

int crt_fs_reload_config(CrtFs *fs, GKeyFile *kf, GError **error)
{
    char **groups = g_key_file_get_groups(kf, NULL);
    GPtrArray *dirs = crt_fs_dirs_ref(fs);
    int first = 0;

    for (guint i = 0; i < dirs->len; i++) {
        Dir *d = g_ptr_array_index(dirs, i);

        if (d->group_text && !g_key_file_has_group(kf, d->name)) {
            g_message("config: [%s] is gone: removing %s", d->name, d->name);
            dir_remove(fs, d);
        }
        crt_fs_dir_unref(fs, d);
    }
    g_ptr_array_free(dirs, TRUE);
    for (guint i = 0; groups[i]; i++) {
        GError *err = NULL;
        char *text = group_text(kf, groups[i]);
        Dir *d;
        int r = 0;

        g_mutex_lock(&fs->lock);
        d = g_hash_table_lookup(fs->dirs, groups[i]);
        if (d)
            d->refs++;
        g_mutex_unlock(&fs->lock);
        if (!d) {
            g_message("config: [%s] is new", groups[i]);
            r = load_group(fs, kf, groups[i], &err);
        } else if (g_strcmp0(d->group_text, text) != 0) {
            g_message("config: [%s] changed", groups[i]);
            r = reload_group(fs, d, kf, groups[i], &err);
            g_free(d->group_text);
            d->group_text = g_strdup(text);
        }
        if (d)
            crt_fs_dir_unref(fs, d);
        keep_first(r, err, &first, error);
        g_free(text);
    }
    g_strfreev(groups);
    return first;
}

void crt_fs_set_reload_result(CrtFs *fs, const char *file, gboolean ok, const char *text)
{
    gint64 now = g_get_real_time();

    g_mutex_lock(&fs->lock);
    fs->reload_status.ok = ok;
    fs->reload_status.time_us = now;
    if (ok)
        fs->reload_status.success_us = now;
    g_free(fs->reload_file);
    fs->reload_file = g_strdup(file);
    g_free(fs->reload_text);
    fs->reload_text = g_strdup(text);
    g_mutex_unlock(&fs->lock);
}

void crt_fs_reload_status(CrtFs *fs, CrtReloadStatus *out)
{
    g_mutex_lock(&fs->lock);
    *out = fs->reload_status;
    g_mutex_unlock(&fs->lock);
}

char *crt_fs_reload_text(CrtFs *fs)
{
    char *s, *at;

    g_mutex_lock(&fs->lock);
    at = crt_channel_time_text(fs->reload_status.time_us ? fs->reload_status.time_us
                                                         : fs->reload_status.success_us);
    if (!fs->reload_status.time_us)
        s = g_strdup_printf("none\ntime: %s\nresult: no reload since the mount\n", at);
    else
        s = g_strdup_printf("%s\ntime: %s\nfile: %s\nresult: %s\n",
                            fs->reload_status.ok ? "ok" : "failed", at,
                            fs->reload_file ? fs->reload_file : "none", fs->reload_text);
    g_mutex_unlock(&fs->lock);
    g_free(at);
    return s;
}

void crt_fs_sleep_before(gpointer data)
{
    CrtFs *fs = data;
    GPtrArray *dirs = crt_fs_dirs_ref(fs);

    for (guint i = 0; i < dirs->len; i++) {
        Dir *d = g_ptr_array_index(dirs, i);
        if (crt_channel_purges_on_suspend(d->ch) &&
            crt_channel_state(d->ch) == CRT_STATE_STREAMING) {
            d->sleep_suspended = crt_channel_suspend(d->ch, NULL) == 0;
            g_message("%s: suspended for the system sleep", d->name);
        }
        crt_fs_dir_unref(fs, d);
    }
    g_ptr_array_free(dirs, TRUE);
}

void crt_fs_sleep_after(gpointer data)
{
    CrtFs *fs = data;
    GPtrArray *dirs = crt_fs_dirs_ref(fs);

    for (guint i = 0; i < dirs->len; i++) {
        Dir *d = g_ptr_array_index(dirs, i);

        if (d->sleep_suspended) {
            d->sleep_suspended = FALSE;
            if (crt_channel_resume(d->ch, NULL) == 0)
                g_message("%s: resumed after the system sleep", d->name);
        }
        crt_fs_dir_unref(fs, d);
    }
    g_ptr_array_free(dirs, TRUE);
}

void crt_fs_shutdown(CrtFs *fs)
{
    GPtrArray *dirs;

    g_mutex_lock(&fs->lock);
    fs->shutting_down = TRUE; /* no mkdir from now on */
    g_mutex_unlock(&fs->lock);
    dirs = crt_fs_dirs_ref(fs);
    for (guint i = 0; i < dirs->len; i++) {
        dir_remove(fs, g_ptr_array_index(dirs, i));
        crt_fs_dir_unref(fs, g_ptr_array_index(dirs, i));
    }
    g_ptr_array_free(dirs, TRUE);
    lines_pool_stop(fs);
    unlinker_stop(fs, FALSE);
}

/* After the session is gone no kernel reference is left to honour: free the
 * directories that only the kernel's lookups kept. */
void crt_fs_free(CrtFs *fs)
{
    GHashTable *left = g_hash_table_new(NULL, NULL);
    GHashTableIter it;
    gpointer v;

    if (!fs)
        return;
    lines_pool_stop(fs);
    unlinker_stop(fs, TRUE); /* the session is gone: nobody to tell */
    g_hash_table_iter_init(&it, fs->nodes);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        if (((Node *)v)->dir)
            g_hash_table_add(left, ((Node *)v)->dir);
    }
    g_hash_table_iter_init(&it, left);
    while (g_hash_table_iter_next(&it, &v, NULL))
        dir_free(v);
    g_hash_table_destroy(left);
    g_hash_table_destroy(fs->dirs);
    g_free(fs->root);
    g_free(fs->version);
    g_free(fs->metrics);
    g_free(fs->reload);
    g_free(fs->reload_file);
    g_free(fs->reload_text);
    g_hash_table_destroy(fs->nodes);
    g_mutex_clear(&fs->lock);
    g_free(fs);
}

/* The one table of what the filesystem answers: the tree here, open files
 * in fs-io.c. */
static const struct fuse_lowlevel_ops fs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readdir = op_readdir,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .unlink = op_refuse,
    .create = op_create,
    .mknod = op_mknod,
    .rename = op_rename,
    .open = crt_fs_op_open,
    .read = crt_fs_op_read,
    .write = crt_fs_op_write,
    .poll = crt_fs_op_poll,
    .release = crt_fs_op_release,
    .opendir = crt_fs_op_opendir,
};

const struct fuse_lowlevel_ops *crt_fs_ops(void)
{
    return &fs_ops;
}
