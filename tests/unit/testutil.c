/* crtfs tests - helpers shared by the unit test programs (testutil.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

char *tu_tmpdir(void)
{
    GError *error = NULL;
    char *dir = g_dir_make_tmp("crtfs-test-XXXXXX", &error);

    g_assert_no_error(error);
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw)
{
    if (remove(path) < 0)
        g_test_message("cannot remove %s: %s", path, g_strerror(errno));
    return 0;
}

void tu_rmrf(const char *dir)
{
    if (dir != NULL)
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- echo servers ----------------------------------------------------- */

typedef struct TuConn {
    TuServer *server;
    int fd; /* -1 once the echo thread has closed it (server lock) */
    GThread *thread;
} TuConn;

struct TuServer {
    int listen_fd; /* non-blocking, so a vanished client cannot hang accept */
    int wake[2];   /* tu_server_stop writes here to end the accept thread */
    char *path;    /* unix socket to unlink, or NULL */
    GThread *acceptor;
    GMutex lock; /* guards conns, every TuConn.fd and connections */
    GPtrArray *conns;
    guint connections;
};

static gboolean send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        buf += n;
        len -= (size_t)n;
    }
    return TRUE;
}

/* Echo until the client goes away, then close the connection at once, so
 * that a test counting descriptors sees the server give its side back. */
static gpointer echo_thread(gpointer data)
{
    TuConn *conn = data;
    char buf[4096];

    for (;;) {
        ssize_t n = recv(conn->fd, buf, sizeof buf, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || !send_all(conn->fd, buf, (size_t)n))
            break;
    }
    g_mutex_lock(&conn->server->lock);
    close(conn->fd);
    conn->fd = -1;
    g_mutex_unlock(&conn->server->lock);
    return NULL;
}

static void server_add_connection(TuServer *server, int fd)
{
    TuConn *conn = g_new0(TuConn, 1);

    conn->server = server;
    conn->fd = fd;
    g_mutex_lock(&server->lock);
    server->connections++;
    conn->thread = g_thread_new("tu-echo", echo_thread, conn);
    g_ptr_array_add(server->conns, conn);
    g_mutex_unlock(&server->lock);
}

static gpointer accept_thread(gpointer data)
{
    TuServer *server = data;
    struct pollfd pfd[2] = {
        {.fd = server->listen_fd, .events = POLLIN},
        {.fd = server->wake[0], .events = POLLIN},
    };

    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents != 0)
            break;
        int fd = accept4(server->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            server_add_connection(server, fd);
    }
    return NULL;
}

static TuServer *server_start(int listen_fd, const char *path)
{
    TuServer *server = g_new0(TuServer, 1);

    if (listen(listen_fd, 64) < 0 || pipe2(server->wake, O_CLOEXEC) < 0) {
        g_test_message("cannot start an echo server: %s", g_strerror(errno));
        close(listen_fd);
        g_free(server);
        return NULL;
    }
    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    server->listen_fd = listen_fd;
    server->path = g_strdup(path);
    g_mutex_init(&server->lock);
    server->conns = g_ptr_array_new();
    server->acceptor = g_thread_new("tu-accept", accept_thread, server);
    return server;
}

TuServer *tu_echo_server_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_return_val_if_fail(strlen(path) < sizeof sa.sun_path, NULL);
    strcpy(sa.sun_path, path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        g_test_message("cannot bind %s: %s", path, g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    return server_start(fd, path);
}

TuServer *tu_echo_server_tcp(guint16 *port_out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        g_test_message("cannot bind 127.0.0.1: %s", g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    *port_out = ntohs(sa.sin_port);
    return server_start(fd, NULL);
}

guint tu_server_connections(TuServer *server)
{
    g_mutex_lock(&server->lock);
    guint n = server->connections;
    g_mutex_unlock(&server->lock);
    return n;
}

guint tu_server_active(TuServer *server)
{
    guint n = 0;

    g_mutex_lock(&server->lock);
    for (guint i = 0; i < server->conns->len; i++)
        n += ((TuConn *)server->conns->pdata[i])->fd >= 0;
    g_mutex_unlock(&server->lock);
    return n;
}

void tu_server_stop(TuServer *server)
{
    if (server == NULL)
        return;
    while (write(server->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    g_thread_join(server->acceptor);
    /* No new connections now; shutdown() wakes each echo thread's recv. */
    for (guint i = 0; i < server->conns->len; i++) {
        TuConn *conn = server->conns->pdata[i];

        g_mutex_lock(&server->lock);
        if (conn->fd >= 0)
            shutdown(conn->fd, SHUT_RDWR);
        g_mutex_unlock(&server->lock);
        g_thread_join(conn->thread);
        g_free(conn);
    }
    g_ptr_array_free(server->conns, TRUE);
    close(server->listen_fd);
    close(server->wake[0]);
    close(server->wake[1]);
    if (server->path != NULL)
        unlink(server->path);
    g_free(server->path);
    g_mutex_clear(&server->lock);
    g_free(server);
}

/* ---- ptys and waiting ------------------------------------------------- */

int tu_openpty(int *master, char **slave_path)
{
    char name[128];
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, name, sizeof name) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    *master = fd;
    *slave_path = g_strdup(name);
    return 0;
}

gboolean tu_wait_tick(gint64 *deadline, guint timeout_ms, const char *expr,
                      const char *file, int line, const char *func)
{
    gint64 now = g_get_monotonic_time();

    if (*deadline == 0)
        *deadline = now + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
    if (now < *deadline) {
        g_usleep(1000);
        return TRUE;
    }
    if (expr != NULL) {
        char *msg = g_strdup_printf("still false after %u ms: %s", timeout_ms, expr);

        g_assertion_message(G_LOG_DOMAIN, file, line, func, msg);
        g_free(msg);
    }
    return FALSE;
}

gboolean tu_wait_until(gboolean (*cond)(gpointer data), gpointer data, guint timeout_ms)
{
    gint64 deadline = 0;

    while (!cond(data)) {
        if (!tu_wait_tick(&deadline, timeout_ms, NULL, NULL, 0, NULL))
            return FALSE;
    }
    return TRUE;
}

/* ---- failures seen on other threads ------------------------------------ */

static GMutex check_lock;
static char *check_first;   /* check_lock: the first failure, with its line */
static gint check_failures; /* atomic */

void tu_check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_atomic_int_inc(&check_failures);
    g_mutex_lock(&check_lock);
    if (check_first == NULL) {
        char *base = g_path_get_basename(file);

        check_first = g_strdup_printf("%s:%d: %s", base, line, msg);
        g_free(base);
    }
    g_mutex_unlock(&check_lock);
    g_free(msg);
}

void tu_checks_reset(void)
{
    g_mutex_lock(&check_lock);
    g_clear_pointer(&check_first, g_free);
    g_mutex_unlock(&check_lock);
    g_atomic_int_set(&check_failures, 0);
}

void tu_checks_assert_clean(void)
{
    char *first;

    g_mutex_lock(&check_lock);
    first = g_strdup(check_first);
    g_mutex_unlock(&check_lock);
    /* Prints the first failure a callback recorded. */
    g_assert_cmpstr(first, ==, NULL);
    g_assert_cmpint(g_atomic_int_get(&check_failures), ==, 0);
}

/* ---- the engine fixture ------------------------------------------------ */

void tu_engine_setup(TuEngine *f, gconstpointer data)
{
    tu_checks_reset();
    f->loop = crt_loop_new();
    crt_engine_config_init(&f->cfg);
    f->cfg.loop = f->loop;
    f->engine = NULL;
}

void tu_engine_teardown(TuEngine *f, gconstpointer data)
{
    g_clear_pointer(&f->engine, crt_engine_free);
    crt_loop_unref(f->loop);
    f->loop = NULL;
    tu_checks_assert_clean();
}

CrtEngine *tu_engine_open(TuEngine *f, const char *spec)
{
    g_assert_null(f->engine);
    f->engine = tu_engine_new(&f->cfg, spec);
    return f->engine;
}

CrtEngine *tu_engine_new(const CrtEngineConfig *cfg, const char *spec)
{
    CrtEngine *e = NULL;
    GError *error = NULL;
    int r = crt_engine_new(cfg, &e, &error);

    g_assert_no_error(error);
    g_assert_cmpint(r, ==, 0);
    g_assert_nonnull(e);
    if (spec != NULL)
        tu_engine_set_spec(e, spec);
    return e;
}

CrtTarget *tu_target_open(const char *spec, CrtLoop *loop)
{
    CrtTarget *t = NULL;
    GError *error = NULL;
    int r = crt_target_open_spec(spec, loop, &t, &error);

    g_assert_no_error(error);
    g_assert_cmpint(r, ==, 0);
    g_assert_nonnull(t);
    return t;
}

void tu_engine_set_spec(CrtEngine *e, const char *spec)
{
    CrtTarget *t = tu_target_open(spec, crt_engine_get_config(e)->loop);

    g_assert_cmpint(crt_engine_io_target_set(e, t), ==, 0);
}

void tu_engine_assert_drained(CrtEngine *e)
{
    CrtEngineStats st;

    crt_engine_get_stats(e, &st);
    g_assert_cmpuint(st.requests_in_flight, ==, 0);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
    g_assert_cmpuint(st.out_pool_free, ==, st.out_pool_size);
    g_assert_cmpuint(st.in_pool_free, ==, st.in_pool_size);
}

typedef struct {
    CrtEngine *engine;
    CrtEngineState state;
} StateIs;

static gboolean state_is(gpointer data)
{
    StateIs *w = data;

    return crt_engine_get_state(w->engine) == w->state;
}

void tu_engine_wait_state(CrtEngine *e, CrtEngineState state)
{
    StateIs w = {e, state};

    if (!tu_wait_until(state_is, &w, TU_EVENTUALLY_MS))
        TU_ASSERT_ENGINE_STATE(e, state);
}

static guint isolated_timeout_s;

static void run_isolated_case(gconstpointer data)
{
    const TuCase *c = data;

    if (g_test_subprocess()) {
        c->fn();
        return;
    }
    g_test_trap_subprocess(NULL, (guint64)isolated_timeout_s * G_USEC_PER_SEC,
                           G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
}

static const char *const fatal_warning_domains[] = {"crtfs", "GLib", "GLib-GIO",
                                                    "GLib-GObject"};

int tu_run_isolated(int *argc, char ***argv, const TuCase *cases, size_t n,
                    guint timeout_s)
{
    g_test_init(argc, argv, NULL);
    /* A target's errors are logged as warnings of the crtfs-target domain,
     * and the tests provoke them: warnings are fatal everywhere else. */
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    for (size_t i = 0; i < G_N_ELEMENTS(fatal_warning_domains); i++)
        g_log_set_fatal_mask(fatal_warning_domains[i], G_LOG_FATAL_MASK |
                                                           G_LOG_LEVEL_CRITICAL |
                                                           G_LOG_LEVEL_WARNING);
    isolated_timeout_s = timeout_s;
    /* The parent records a failed child and goes on to the next case. */
    if (!g_test_subprocess())
        g_test_set_nonfatal_assertions();
    for (size_t i = 0; i < n; i++)
        g_test_add_data_func(cases[i].path, &cases[i], run_isolated_case);
    return g_test_run();
}

void tu_counter_init(TuCounter *c)
{
    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    c->n = 0;
}

void tu_counter_clear(TuCounter *c)
{
    g_cond_clear(&c->cond);
    g_mutex_clear(&c->lock);
}

void tu_counter_bump(TuCounter *c)
{
    g_mutex_lock(&c->lock);
    c->n++;
    g_cond_broadcast(&c->cond);
    g_mutex_unlock(&c->lock);
}

guint tu_counter_get(TuCounter *c)
{
    guint n;

    g_mutex_lock(&c->lock);
    n = c->n;
    g_mutex_unlock(&c->lock);
    return n;
}

void tu_counter_wait(TuCounter *c, guint seen, guint ms)
{
    gint64 until = g_get_monotonic_time() + (gint64)ms * G_TIME_SPAN_MILLISECOND;

    g_mutex_lock(&c->lock);
    while (c->n == seen && g_cond_wait_until(&c->cond, &c->lock, until))
        ;
    g_mutex_unlock(&c->lock);
}

/* ---- line events ---------------------------------------------------------- */

void tu_line_events_init(TuLineEvents *e)
{
    g_mutex_init(&e->lock);
    e->events = g_array_new(FALSE, TRUE, sizeof(CrtLineEvent));
    e->thread = NULL;
    e->destroyed = 0;
}

void tu_line_events_clear(TuLineEvents *e)
{
    g_array_unref(e->events);
    g_mutex_clear(&e->lock);
}

void tu_line_events_record(CrtTarget *t, const CrtLineEvent *ev, gpointer data)
{
    TuLineEvents *e = data;

    g_mutex_lock(&e->lock);
    g_array_append_val(e->events, *ev);
    e->thread = g_thread_self();
    g_mutex_unlock(&e->lock);
}

void tu_line_events_destroy(gpointer data)
{
    g_atomic_int_inc(&((TuLineEvents *)data)->destroyed);
}

guint tu_line_events_count(TuLineEvents *e)
{
    guint n;

    g_mutex_lock(&e->lock);
    n = e->events->len;
    g_mutex_unlock(&e->lock);
    return n;
}

CrtLineEvent tu_line_events_at(TuLineEvents *e, guint i)
{
    CrtLineEvent ev;

    g_mutex_lock(&e->lock);
    g_assert_cmpuint(i, <, e->events->len);
    ev = g_array_index(e->events, CrtLineEvent, i);
    g_mutex_unlock(&e->lock);
    return ev;
}
