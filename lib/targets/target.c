/* crtfs - targets: request types, the one spec parser, and the lifetime of a
 * CrtTarget (see include/crtfs/target.h and lib/targets/target-private.h).
 *
 * Every kind is a small ops table in its own file (target-path.c,
 * target-socket.c, target-rfc2217.c, target-exec.c, target-sim.c); this file only chooses the
 * table and owns what all kinds share: the reference count, the loop
 * reference and the byte counters.  It is also the one place that decides
 * how a spec opens: plain, or wrapped in the `wait` decorator
 * (target-wait.c) around the plain kind; and it answers the questions every
 * target takes (presence, the file it holds) through the ops slots, so a
 * decorator answers them for its inner target.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>

#include "target-private.h"

/* ---- request types ---------------------------------------------------- */

static const struct {
    const char *name;
    CrtRequestType type;
} request_types[] = {
    {"read", CRT_REQUEST_READ},
    {"write", CRT_REQUEST_WRITE},
    {"ioctl", CRT_REQUEST_IOCTL},
    {"internal-ioctl", CRT_REQUEST_INTERNAL_IOCTL},
};

int crt_request_type_from_string(const char *s, CrtRequestType *out)
{
    g_return_val_if_fail(out != NULL, -EINVAL);

    for (size_t i = 0; s && i < G_N_ELEMENTS(request_types); i++) {
        if (strcmp(s, request_types[i].name) == 0) {
            *out = request_types[i].type;
            return 0;
        }
    }
    return -EINVAL;
}

const char *crt_request_type_to_string(CrtRequestType type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(request_types); i++) {
        if (request_types[i].type == type)
            return request_types[i].name;
    }
    return "invalid";
}

gboolean crt_request_type_has_input(CrtRequestType type)
{
    return type == CRT_REQUEST_WRITE || type == CRT_REQUEST_IOCTL ||
           type == CRT_REQUEST_INTERNAL_IOCTL;
}

gboolean crt_request_type_has_output(CrtRequestType type)
{
    return type == CRT_REQUEST_READ || type == CRT_REQUEST_IOCTL ||
           type == CRT_REQUEST_INTERNAL_IOCTL;
}

const char *crt_target_kind_to_string(CrtTargetKind kind)
{
    switch (kind) {
    case CRT_TARGET_PATH:
        return "path";
    case CRT_TARGET_UNIX:
        return "unix";
    case CRT_TARGET_TCP:
        return "tcp";
    case CRT_TARGET_EXEC:
        return "exec";
    case CRT_TARGET_SIM:
        return "sim";
    case CRT_TARGET_UDEV:
        return "udev";
    case CRT_TARGET_RFC2217:
        return "rfc2217";
    }
    return "unknown";
}

/* ---- targets ---------------------------------------------------------- */

static const CrtTargetOps *ops_for_kind(CrtTargetKind kind)
{
    switch (kind) {
    case CRT_TARGET_PATH:
        return &crt_target_path_ops;
    case CRT_TARGET_UNIX:
        return &crt_target_unix_ops;
    case CRT_TARGET_TCP:
        return &crt_target_tcp_ops;
    case CRT_TARGET_EXEC:
        return &crt_target_exec_ops;
    case CRT_TARGET_SIM:
        return &crt_target_sim_ops;
    case CRT_TARGET_UDEV:
        break; /* resolved to a path first: open_identity */
    case CRT_TARGET_RFC2217:
        return &crt_target_rfc2217_ops;
    }
    return NULL;
}

static void target_free(CrtTarget *t)
{
    g_free(t->text);
    g_free(t->node);
    g_free(t->identity);
    crt_loop_unref(t->loop);
    g_mutex_clear(&t->lock);
    g_mutex_clear(&t->watch_lock);
    g_mutex_clear(&t->split_lock);
    g_cond_clear(&t->cond);
    g_free(t);
}

/* A kind's open cleans up after itself when it fails: the target is then
 * freed here without close or destroy. */
CrtTarget *crt_target_new_impl(const CrtTargetSpec *spec, CrtLoop *loop,
                               const CrtTargetOps *ops, gpointer impl)
{
    CrtTarget *t = g_new0(CrtTarget, 1);

    t->ops = ops;
    t->impl = impl;
    t->ref = 1;
    t->loop = loop ? crt_loop_ref(loop) : crt_loop_default();
    t->kind = spec->kind;
    t->text = g_strdup(spec->text ? spec->text : crt_target_kind_to_string(spec->kind));
    t->read_fd = t->write_fd = -1;
    g_mutex_init(&t->lock);
    g_mutex_init(&t->watch_lock);
    g_mutex_init(&t->split_lock);
    g_cond_init(&t->cond);
    return t;
}

static int open_identity(const CrtTargetSpec *spec, CrtLoop *loop,
                         const CrtTargetCreds *creds, CrtTarget **out, GError **error);

/* The plain kind of `spec`: its ops open it, once, with no `wait`. */
static int open_kind(const CrtTargetSpec *spec, CrtLoop *loop,
                     const CrtTargetCreds *creds, CrtTarget **out, GError **error)
{
    if (spec->kind == CRT_TARGET_UDEV)
        return open_identity(spec, loop, creds, out, error);

    const CrtTargetOps *ops = ops_for_kind(spec->kind);
    g_return_val_if_fail(ops != NULL, -EINVAL);

    CrtTarget *t = crt_target_new_impl(spec, loop, ops, NULL);

    *out = NULL;
    int r = ops->open(t, spec, creds, error);
    if (r < 0) {
        if (error != NULL && *error == NULL)
            crt_set_error(error, -r, "cannot open %s: %s", t->text, g_strerror(-r));
        target_free(t);
        return r;
    }
    if (spec->chardelay_us && t->fdd)
        crt_fd_set_chardelay(t, spec->chardelay_us);
    *out = t;
    return 0;
}

/* Whether `fd` is the device `devnum` (the node is not someone else's now:
 * it could have been removed and reused between resolving and opening):
 * the node still names that device, and `fd` is what the node names.  By
 * the node rather than fstat(fd) alone, so that an emulated node
 * (umockdev's, a symlink to a pty) is judged by what it says it is. */
static gboolean fd_is_device(int fd, const char *node, dev_t devnum)
{
    struct stat st;

    return stat(node, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == devnum &&
           crt_fd_names_path(fd, node);
}

/* A udev spec: resolve it to the one tty it matches, now (so a `wait`
 * target resolves at every reopen: its opener comes here each time), and
 * open that node as a path with the spec's tty options.  The target is of
 * kind udev, describes itself with the spec as written, and names the node
 * in its presence. */
static int open_identity(const CrtTargetSpec *spec, CrtLoop *loop,
                         const CrtTargetCreds *creds, CrtTarget **out, GError **error)
{
    CrtTargetSpec path_spec;
    char *node = NULL;
    dev_t devnum = 0;
    int r = crt_target_udev_resolve(spec, &node, &devnum, error);

    *out = NULL;
    if (r < 0)
        return r;
    crt_target_spec_copy(&path_spec, spec);
    path_spec.kind = CRT_TARGET_PATH;
    path_spec.path = g_strdup(node);
    r = open_kind(&path_spec, loop, creds, out, error);
    crt_target_spec_clear(&path_spec);
    if (r < 0) {
        g_free(node);
        return r;
    }
    if (!fd_is_device((*out)->read_fd, node, devnum)) {
        char *identity = crt_target_udev_identity(spec);
        r = crt_set_error(error, ENOENT,
                          "%s is no longer the tty that matched %s (it changed while "
                          "being opened)",
                          node, identity);
        g_free(identity);
        g_free(node);
        crt_target_unref(*out);
        *out = NULL;
        return r;
    }
    (*out)->kind = CRT_TARGET_UDEV;
    (*out)->identity = crt_target_udev_identity(spec);
    (*out)->node = node;
    return 0;
}

/* The default CrtTargetOpenFn; `data` is the creds of crt_target_open_as. */
static int open_plain(const CrtTargetSpec *spec, CrtLoop *loop, CrtTarget **out,
                      GError **error, gpointer data)
{
    return open_kind(spec, loop, data, out, error);
}

/* Every open comes here, and only here is it decided how: a `wait` spec is
 * the wait decorator around the plain kind that `open_fn` opens, any other
 * spec is what `open_fn` opens. */
int crt_target_open_full(const CrtTargetSpec *spec, CrtLoop *loop,
                         CrtTargetOpenFn open_fn, gpointer data, GDestroyNotify destroy,
                         CrtTarget **out, GError **error)
{
    int r;

    g_return_val_if_fail(spec != NULL && out != NULL, -EINVAL);
    if (!open_fn) {
        /* The default opener needs no data: it can go now. */
        if (destroy)
            destroy(data);
        open_fn = open_plain;
        data = NULL;
        destroy = NULL;
    }
    if (spec->wait)
        return crt_target_wait_open(spec, loop, open_fn, data, destroy, out, error);
    r = open_fn(spec, loop, out, error, data);
    if (destroy)
        destroy(data);
    return r;
}

int crt_target_open_as(const CrtTargetSpec *spec, CrtLoop *loop,
                       const CrtTargetCreds *creds, CrtTarget **out, GError **error)
{
    g_return_val_if_fail(spec != NULL && out != NULL, -EINVAL);
    /* A `wait` target opens again long after this call, when `creds` may
     * be gone; it names a path or a socket, which runs nothing, so it
     * needs none. */
    return crt_target_open_full(spec, loop, open_plain,
                                spec->wait ? NULL : (gpointer)creds, NULL, out, error);
}

int crt_target_open(const CrtTargetSpec *spec, CrtLoop *loop, CrtTarget **out,
                    GError **error)
{
    return crt_target_open_as(spec, loop, NULL, out, error);
}

int crt_target_open_spec(const char *line, CrtLoop *loop, CrtTarget **out, GError **error)
{
    CrtTargetSpec spec;
    int r;

    g_return_val_if_fail(out != NULL, -EINVAL);
    *out = NULL;
    r = crt_target_spec_parse(line, &spec, error);
    if (r < 0)
        return r;
    r = crt_target_open(&spec, loop, out, error);
    crt_target_spec_clear(&spec);
    return r;
}

CrtTarget *crt_target_ref(CrtTarget *target)
{
    g_return_val_if_fail(target != NULL, NULL);
    g_atomic_int_inc(&target->ref);
    return target;
}

static void close_on_loop(gpointer data)
{
    crt_target_close(data);
}

void crt_target_unref(CrtTarget *target)
{
    g_return_if_fail(target != NULL);
    if (!g_atomic_int_dec_and_test(&target->ref))
        return;
    /* A line watch runs on a thread of the kind's; it ends before close. */
    crt_target_lines_release(target);
    /* `closed` belongs to the loop thread, so ask there rather than read it
     * here; crt_loop_call runs inline when we already are on it. */
    crt_loop_call(target->loop, close_on_loop, target);
    /* Blocking work on the pool (ioctls) still uses the descriptors; a
     * worker decrements `running` and broadcasts `cond` under `lock` when it
     * is done with them. */
    g_mutex_lock(&target->lock);
    while (g_atomic_int_get(&target->running) > 0)
        g_cond_wait(&target->cond, &target->lock);
    g_mutex_unlock(&target->lock);
    target->ops->destroy(target);
    target_free(target);
}

void crt_target_kick(CrtTarget *t)
{
    if (!t->closed && t->ops->kick)
        t->ops->kick(t);
}

void crt_target_submit(CrtTarget *t, CrtIo *io)
{
    io->target = t;
    t->ops->submit(t, io);
}

gboolean crt_target_cancel(CrtTarget *t, CrtIo *io, int status)
{
    return t->ops->cancel(t, io, status);
}

void crt_target_close(CrtTarget *t)
{
    if (t->closed)
        return;
    t->closed = TRUE;
    t->ops->close(t);
}

const char *crt_target_describe(CrtTarget *target)
{
    g_return_val_if_fail(target != NULL, NULL);
    return target->text;
}

CrtTargetKind crt_target_kind(CrtTarget *target)
{
    g_return_val_if_fail(target != NULL, 0);
    return target->kind;
}

int crt_target_fd(CrtTarget *target)
{
    g_return_val_if_fail(target != NULL, -1);
    return target->read_fd;
}

gboolean crt_target_is_stale(CrtTarget *target)
{
    g_return_val_if_fail(target != NULL, FALSE);
    return target->ops->stale != NULL && target->ops->stale(target);
}

void crt_target_get_counters(CrtTarget *target, CrtTargetCounters *counters)
{
    g_return_if_fail(target != NULL && counters != NULL);

    memset(counters, 0, sizeof *counters);
    counters->bytes_read = __atomic_load_n(&target->bytes_read, __ATOMIC_RELAXED);
    counters->bytes_written = __atomic_load_n(&target->bytes_written, __ATOMIC_RELAXED);
    counters->messages = __atomic_load_n(&target->messages, __ATOMIC_RELAXED);
    counters->messages_cut_size =
        __atomic_load_n(&target->messages_cut_size, __ATOMIC_RELAXED);
    counters->messages_cut_wait =
        __atomic_load_n(&target->messages_cut_wait, __ATOMIC_RELAXED);
    if (target->ops->counters != NULL)
        target->ops->counters(target, counters);
}

void crt_target_set_split(CrtTarget *target, const CrtSplit *split)
{
    static const CrtSplit none = {0};

    g_return_if_fail(target != NULL);
    if (!split)
        split = &none;
    g_mutex_lock(&target->split_lock);
    target->split = *split;
    g_atomic_int_set(&target->split_framed, split->mode != CRT_SPLIT_NONE);
    g_atomic_int_inc(&target->split_gen);
    g_mutex_unlock(&target->split_lock);
    /* A decorator passes it on (to the inner target open now; it gives
     * the ones it opens later the split it holds then). */
    if (target->ops->set_split)
        target->ops->set_split(target, split);
}

void crt_target_get_split(CrtTarget *target, CrtSplit *out)
{
    g_return_if_fail(target != NULL && out != NULL);
    g_mutex_lock(&target->split_lock);
    *out = target->split;
    g_mutex_unlock(&target->split_lock);
}

gboolean crt_target_holds_file(CrtTarget *target, const char *path)
{
    g_return_val_if_fail(target != NULL, FALSE);
    if (target->ops->holds_file != NULL)
        return target->ops->holds_file(target, path);
    return crt_fd_names_path(target->read_fd >= 0 ? target->read_fd : target->write_fd,
                             path);
}

CrtPresence crt_target_presence(CrtTarget *target, char **reason)
{
    g_return_val_if_fail(target != NULL, CRT_PRESENCE_PRESENT);
    if (reason)
        *reason = NULL;
    if (target->ops->presence == NULL) {
        if (reason && target->node)
            *reason = crt_target_node_text(target);
        return CRT_PRESENCE_PRESENT;
    }
    return target->ops->presence(target, reason);
}

char *crt_target_node_text(CrtTarget *target)
{
    if (target->node == NULL)
        return NULL;
    return g_strdup_printf("present (%s, matched %s)", target->node, target->identity);
}

int crt_target_spec_node(const CrtTargetSpec *spec, char **node, GError **error)
{
    dev_t devnum;

    g_return_val_if_fail(spec != NULL && node != NULL, -EINVAL);
    *node = NULL;
    if (spec->kind == CRT_TARGET_PATH) {
        *node = g_strdup(spec->path);
        return 0;
    }
    if (spec->kind == CRT_TARGET_UDEV)
        return crt_target_udev_resolve(spec, node, &devnum, error);
    return crt_set_error(error, EINVAL, "a %s target names no file",
                         crt_target_kind_to_string(spec->kind));
}
