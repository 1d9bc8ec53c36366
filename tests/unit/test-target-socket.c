/* crtfs tests - socket targets: unix (paths, abstract names, refusals)
 * and tcp connections, the fd driver's round trip, and echo streams and
 * transactions (internal ioctls) through the engine.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine-streams.h"
#include "target-private.h"
#include "target-fixture.h"

/* ---- sockets ---------------------------------------------------------- */

typedef struct {
    TuServer *server;
    guint want;
} ConnWait;

static gboolean has_connections(gpointer data)
{
    ConnWait *w = data;

    return tu_server_connections(w->server) >= w->want;
}

static void test_unix_connect(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    ConnWait w = {tu_echo_server_unix(path), 1};

    g_assert_nonnull(w.server);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_UNIX);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    TU_WAIT_FOR(has_connections(&w));
    crt_target_unref(t);
    tu_server_stop(w.server);
    g_free(spec);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

typedef struct {
    CrtIo io;
    gint done; /* atomic */
} TestIo;

static void test_io_done(CrtIo *io)
{
    TestIo *tio = (TestIo *)io;

    g_atomic_int_set(&tio->done, 1);
}

static gboolean io_is_done(gpointer data)
{
    return g_atomic_int_get(&((TestIo *)data)->done) != 0;
}

typedef struct {
    CrtTarget *t;
    CrtIo *io;
} SubmitCall;

static void submit_on_loop(gpointer data)
{
    SubmitCall *call = data;

    crt_target_submit(call->t, call->io);
}

static void submit(CrtTarget *t, TestIo *tio)
{
    SubmitCall call = {t, &tio->io};

    crt_loop_call(test_loop, submit_on_loop, &call);
}

/* A write and a read through the fd driver come back from the echo server,
 * and the byte counters see both. */
static void test_unix_echo_roundtrip(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    TuServer *server = tu_echo_server_unix(path);
    char out[64] = {0};
    TestIo w = {
        {.type = CRT_REQUEST_WRITE, .in = "ping", .in_len = 4, .done = test_io_done}};
    TestIo r = {{.type = CRT_REQUEST_READ,
                 .out = out,
                 .out_cap = sizeof out,
                 .done = test_io_done}};
    CrtTargetCounters c;

    g_assert_nonnull(server);
    CrtTarget *t = open_ok(spec);
    submit(t, &w);
    TU_WAIT_FOR(io_is_done(&w));
    g_assert_cmpint(w.io.status, ==, 0);
    g_assert_cmpuint(w.io.bytes_in, ==, 4);
    submit(t, &r);
    TU_WAIT_FOR(io_is_done(&r));
    g_assert_cmpint(r.io.status, ==, 0);
    g_assert_cmpmem(out, r.io.bytes_out, "ping", r.io.bytes_out);
    crt_target_get_counters(t, &c);
    g_assert_cmpuint(c.bytes_written, ==, 4);
    g_assert_cmpuint(c.bytes_read, ==, r.io.bytes_out);
    crt_target_unref(t);
    tu_server_stop(server);
    g_free(spec);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_unix_missing(void)
{
    char *dir = tu_tmpdir();
    char *spec = g_strdup_printf("unix:%s/nobody.sock", dir);
    char *msg = open_fails(spec, ENOENT);

    assert_contains(msg, dir);
    g_free(msg);
    g_free(spec);
    tu_rmrf(dir);
    g_free(dir);
}

/* A socket file left behind by a dead server refuses connections. */
static void test_unix_refused(void)
{
    char *dir = tu_tmpdir();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_snprintf(sa.sun_path, sizeof sa.sun_path, "%s/stale.sock", dir);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    close(fd);
    char *spec = g_strdup_printf("unix:%s", sa.sun_path);
    g_free(open_fails(spec, ECONNREFUSED));
    g_free(spec);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_unix_too_long(void)
{
    char *spec = g_strdup_printf("unix:/%0200d", 0);

    g_free(open_fails(spec, ENAMETOOLONG));
    g_free(spec);
}

static void test_unix_abstract(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *name = g_strdup_printf("crtfs-test-%d", (int)getpid());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));

    memcpy(sa.sun_path + 1, name, strlen(name));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, len), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    char *spec = g_strdup_printf("unix:@%s", name);
    CrtTarget *t = open_ok(spec);
    crt_target_unref(t);
    close(fd);
    g_free(spec);
    g_free(name);
}

static void check_tcp_connect(const char *host)
{
    guint16 port = 0;
    ConnWait w = {tu_echo_server_tcp(&port), 1};

    g_assert_nonnull(w.server);
    char *spec = g_strdup_printf("tcp:%s:%u", host, port);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_TCP);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    TU_WAIT_FOR(has_connections(&w));
    crt_target_unref(t);
    tu_server_stop(w.server);
    g_free(spec);
}

static void test_tcp_connect(void)
{
    check_tcp_connect("127.0.0.1");
}

/* `localhost` may resolve to ::1 first, where nobody listens: the next
 * address is tried. */
static void test_tcp_localhost(void)
{
    check_tcp_connect("localhost");
}

static void test_tcp_refused(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
    close(fd);
    char *where = g_strdup_printf("127.0.0.1:%u", ntohs(sa.sin_port));
    char *spec = g_strdup_printf("tcp:%s", where);
    char *msg = open_fails(spec, ECONNREFUSED);
    assert_contains(msg, where);
    g_free(msg);
    g_free(spec);
    g_free(where);
}

/* ---- through the engine ------------------------------------------------ */

static gboolean server_has_connection(gpointer data)
{
    return tu_server_connections(data) >= 1;
}

/* An echo server: writes through the engine come back to its
 * read stream. */
static void echo_through_engine(CrtLoop *loop, const char *spec, TuServer *server)
{
    gsize len = 64 * 1024, off = 0;
    guint8 *data = pattern_new(len, 7);
    Collector c;
    CrtEngine *e = collector_start(&c, loop, spec, 4096, FALSE);

    /* connect() returns once the kernel queued the connection; the
     * server's accept may come a little later. */
    TU_WAIT_FOR(server_has_connection(server));
    g_assert_cmpuint(tu_server_connections(server), ==, 1);
    while (off < len) {
        gsize chunk = (gsize)g_random_int_range(1, 2000);
        gsize n = MIN(len - off, chunk);
        size_t bytes = 0;

        g_assert_cmpint(crt_engine_send_sync(e, data + off, n, NULL, 0, CRT_REQUEST_WRITE,
                                             0, 0, &bytes),
                        ==, 0);
        g_assert_cmpuint(bytes, ==, n);
        off += n;
    }
    collector_expect(&c, data, len);
    collector_finish(e, &c);
    g_free(data);
}

static void test_real_unix(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    TuServer *server = tu_echo_server_unix(path);

    g_assert_nonnull(server);
    echo_through_engine(loop, spec, server);
    tu_server_stop(server);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

static void test_real_tcp(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    guint16 port = 0;
    TuServer *server = tu_echo_server_tcp(&port);
    char *spec;

    g_assert_nonnull(server);
    spec = g_strdup_printf("tcp:127.0.0.1:%u", port);
    echo_through_engine(loop, spec, server);
    tu_server_stop(server);
    g_free(spec);
}

/* Transactions (internal ioctls) on a socket that also carries a read
 * stream: each transaction gets exactly its own answer, and the stream gets
 * every other byte - none of the transactions', none lost to them. */
#define TXN_ROUNDS 40

static void test_real_transaction(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "echo.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    TuServer *server = tu_echo_server_unix(path);
    GString *stream = g_string_new(NULL);
    Collector c;
    CrtEngine *e;

    g_assert_nonnull(server);
    e = collector_start(&c, loop, spec, 256, FALSE);
    for (int n = 0; n < TXN_ROUNDS; n++) {
        char *ping = g_strdup_printf("PING-%d\n", n);
        char *pong = g_strdup_printf("PONG-%d\n", n);
        char *chunk = g_strdup_printf("stream-%04d:%0*d\n", n, 20 + n, n);
        char resp[64], resp2[64];
        size_t bytes = 0;
        SendRecord rec;
        CollectorHas quiet = {&c, stream->len};

        /* The stream has everything written so far: no stray bytes are in
         * the socket when the transaction starts, while the stream's four
         * reads wait at the target. */
        TU_WAIT_FOR(collector_has(&quiet));
        memset(resp, 0, sizeof resp);
        g_assert_cmpint(crt_engine_send_sync(e, ping, strlen(ping), resp, strlen(ping),
                                             CRT_REQUEST_INTERNAL_IOCTL, 0, 0, &bytes),
                        ==, 0);
        g_assert_cmpuint(bytes, ==, strlen(ping));
        g_assert_cmpstr(resp, ==, ping);

        /* Stream data written right behind a transaction: the echo brings
         * both back in one piece, and the transaction must take only its
         * own bytes. */
        send_record_init(&rec, loop);
        memset(resp2, 0, sizeof resp2);
        g_assert_cmpint(crt_engine_send_ex(e, pong, strlen(pong), resp2, strlen(pong),
                                           CRT_REQUEST_INTERNAL_IOCTL, 0, 0,
                                           CRT_COMPLETION_DEFAULT, record_send, &rec,
                                           NULL),
                        ==, 0);
        g_assert_cmpint(crt_engine_send(e, chunk, strlen(chunk), NULL, 0,
                                        CRT_REQUEST_WRITE, 0, 0, NULL, NULL),
                        ==, 0);
        g_string_append(stream, chunk);
        TU_WAIT_FOR(g_atomic_int_get(&rec.calls) >= 1);
        g_assert_cmpint(rec.status, ==, 0);
        g_assert_cmpuint(rec.out_read, ==, strlen(pong));
        g_assert_cmpstr(resp2, ==, pong);
        g_free(ping);
        g_free(pong);
        g_free(chunk);
    }
    collector_expect(&c, (const guint8 *)stream->str, stream->len);
    collector_finish(e, &c);
    tu_server_stop(server);
    g_string_free(stream, TRUE);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

/* A transaction submitted while stream bytes that arrived earlier are still
 * unread (the loop thread was busy) must not take them as its response:
 * they were there before the transaction was written, and the stream's
 * reads were waiting for them.  The peer here is driven by the test, and
 * the loop is held up on purpose with a crt_loop_call() that blocks. */
typedef struct {
    CrtLoop *loop;
    GMutex lock;
    GCond cond;
    gboolean started;
    gboolean release;
} LoopBlock;

static void loop_block_fn(gpointer data)
{
    LoopBlock *b = data;

    g_mutex_lock(&b->lock);
    b->started = TRUE;
    g_cond_broadcast(&b->cond);
    while (!b->release)
        g_cond_wait(&b->cond, &b->lock);
    g_mutex_unlock(&b->lock);
}

static gpointer loop_block_thread(gpointer data)
{
    LoopBlock *b = data;

    crt_loop_call(b->loop, loop_block_fn, b);
    return NULL;
}

static int unix_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpuint(strlen(path), <, sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    return fd;
}

/* Read exactly `len` bytes from a blocking descriptor, within the usual
 * bound. */
static void read_exactly(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
        n = read(fd, buf + got, len - got);
        g_assert_cmpint(n, >, 0);
        got += (size_t)n;
    }
}

/* Compare without aborting, so the case fails but cleans up. */
static gboolean expect_mem(const char *what, const void *got, size_t got_len,
                           const void *expected, size_t expected_len)
{
    char *graw, *xraw, *g, *x;

    if (got_len == expected_len && memcmp(got, expected, got_len) == 0)
        return TRUE;
    graw = g_strndup(got, got_len);
    xraw = g_strndup(expected, expected_len);
    g = g_strescape(graw, NULL);
    x = g_strescape(xraw, NULL);
    g_test_message("%s: got \"%s\", expected \"%s\"", what, g, x);
    g_free(graw);
    g_free(xraw);
    g_free(g);
    g_free(x);
    g_test_fail();
    return FALSE;
}

static void test_real_transaction_busy_loop(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "peer.sock", NULL);
    char *spec = g_strdup_printf("unix:%s", path);
    int listener = unix_listen(path);
    LoopBlock b = {.loop = loop};
    char resp[32], req[4];
    SendRecord rec;
    CollectorHas first = {NULL, 9}, all = {NULL, 14};
    GThread *blocker;
    Collector c;
    CrtEngine *e;
    int peer;

    g_mutex_init(&b.lock);
    g_cond_init(&b.cond);
    e = collector_start(&c, loop, spec, 256, FALSE);
    first.c = all.c = &c;
    peer = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    g_assert_cmpint(peer, >=, 0);

    /* Unsolicited data reaches the stream. */
    g_assert_cmpint(write(peer, "stream-1;", 9), ==, 9);
    TU_WAIT_FOR(collector_has(&first));

    /* More arrives while the loop is busy; then a transaction is sent. */
    blocker = g_thread_new("loop-blocker", loop_block_thread, &b);
    g_mutex_lock(&b.lock);
    while (!b.started)
        g_cond_wait(&b.cond, &b.lock);
    g_mutex_unlock(&b.lock);
    g_assert_cmpint(write(peer, "stream-2;", 9), ==, 9);
    send_record_init(&rec, loop);
    memset(resp, 0, sizeof resp);
    g_assert_cmpint(crt_engine_send_ex(e, "REQ\n", 4, resp, sizeof resp,
                                       CRT_REQUEST_INTERNAL_IOCTL, 0, 0,
                                       CRT_COMPLETION_DEFAULT, record_send, &rec, NULL),
                    ==, 0);
    g_mutex_lock(&b.lock);
    b.release = TRUE;
    g_cond_broadcast(&b.cond);
    g_mutex_unlock(&b.lock);
    g_thread_join(blocker);

    /* The peer answers the request it received. */
    read_exactly(peer, req, sizeof req);
    g_assert_cmpmem(req, sizeof req, "REQ\n", 4);
    g_assert_cmpint(write(peer, "RESP\n", 5), ==, 5);
    TU_WAIT_FOR(g_atomic_int_get(&rec.calls) >= 1);
    g_assert_cmpint(rec.status, ==, 0);
    TU_WAIT_FOR(collector_has(&all));
    g_usleep(50 * 1000);

    expect_mem("transaction response", resp, rec.out_read, "RESP\n", 5);
    g_mutex_lock(&c.lock);
    expect_mem("stream", c.data->data, c.data->len, "stream-1;stream-2;", 18);
    g_mutex_unlock(&c.lock);

    collector_finish(e, &c);
    close(peer);
    close(listener);
    g_mutex_clear(&b.lock);
    g_cond_clear(&b.cond);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/target/unix/connect", test_unix_connect);
    g_test_add_func("/target/unix/echo-roundtrip", test_unix_echo_roundtrip);
    g_test_add_func("/target/unix/missing", test_unix_missing);
    g_test_add_func("/target/unix/refused", test_unix_refused);
    g_test_add_func("/target/unix/too-long", test_unix_too_long);
    g_test_add_func("/target/unix/abstract", test_unix_abstract);
    g_test_add_func("/target/tcp/connect", test_tcp_connect);
    g_test_add_func("/target/tcp/localhost", test_tcp_localhost);
    g_test_add_func("/target/tcp/refused", test_tcp_refused);
    TU_TEST_ADD_ENGINE("/engine/real-targets/unix", test_real_unix);
    TU_TEST_ADD_ENGINE("/engine/real-targets/tcp", test_real_tcp);
    TU_TEST_ADD_ENGINE("/engine/real-targets/transaction", test_real_transaction);
    TU_TEST_ADD_ENGINE("/engine/real-targets/transaction-busy-loop",
                       test_real_transaction_busy_loop);
    return target_tests_run();
}
