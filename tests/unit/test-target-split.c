/* crtfs tests - message framing (split) in the shared fd driver, at the
 * CrtIo level over a unix socket whose far end the test holds: delimiter,
 * length, idle gap, maximum size and wait, several messages in one read
 * (the pushback), the end of stream with a partial message, a transaction
 * between framed reads, a cancelled message, a live change of the split and
 * the `wait` decorator passing the split on.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "target-fixture.h"
#include "target-private.h"

typedef struct {
    char *dir, *path;
    int listen_fd;
    int peer; /* the far end of the target's connection */
    CrtTarget *t;
} Link;

static int accept_peer(Link *l)
{
    int fd = accept(l->listen_fd, NULL, NULL);

    g_assert_cmpint(fd, >=, 0);
    return fd;
}

static void link_open(Link *l, const char *options)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *spec;

    l->dir = tu_tmpdir();
    l->path = g_build_filename(l->dir, "s.sock", NULL);
    g_strlcpy(sa.sun_path, l->path, sizeof sa.sun_path);
    l->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(bind(l->listen_fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
    g_assert_cmpint(listen(l->listen_fd, 4), ==, 0);
    spec = g_strdup_printf("unix:%s%s", l->path, options ? options : "");
    l->t = open_ok(spec);
    g_free(spec);
    l->peer = accept_peer(l);
}

static void link_close(Link *l)
{
    crt_target_unref(l->t);
    if (l->peer >= 0)
        close(l->peer);
    close(l->listen_fd);
    tu_rmrf(l->dir);
    g_free(l->dir);
    g_free(l->path);
}

static void set_split(Link *l, const char *text, guint max_size, guint max_wait_ms)
{
    CrtSplit s = {.max_size = max_size, .max_wait_ms = max_wait_ms};

    g_assert_cmpint(crt_split_parse(text, &s, NULL), ==, 0);
    crt_target_set_split(l->t, &s);
}

static void put(Link *l, const char *bytes)
{
    size_t n = strlen(bytes);

    g_assert_cmpint(write(l->peer, bytes, n), ==, (ssize_t)n);
}

/* ---- requests on the loop --------------------------------------------- */

typedef struct {
    CrtIo io;
    gint done; /* atomic */
    guint8 buf[512];
    CrtSendEnd end;
} Req;

static void req_done(CrtIo *io)
{
    g_atomic_int_set(&((Req *)io)->done, 1);
}

typedef struct {
    CrtTarget *t;
    CrtIo *io;
    int status; /* cancel */
} LoopCall;

static void submit_on_loop(gpointer data)
{
    LoopCall *c = data;

    crt_target_submit(c->t, c->io);
}

static void cancel_on_loop(gpointer data)
{
    LoopCall *c = data;

    crt_target_cancel(c->t, c->io, c->status);
}

static Req *read_submit(Link *l, size_t cap)
{
    Req *r = g_new0(Req, 1);
    LoopCall c = {l->t, &r->io, 0};

    g_assert_cmpuint(cap, <=, sizeof r->buf);
    r->io.type = CRT_REQUEST_READ;
    r->io.out = r->buf;
    r->io.out_cap = cap;
    r->io.done = req_done;
    crt_loop_call(test_loop, submit_on_loop, &c);
    return r;
}

static gboolean req_is_done(Req *r)
{
    return g_atomic_int_get(&r->done) != 0;
}

/* `r` completes with `bytes` (status 0); freed. */
static void expect_message(Req *r, const char *bytes)
{
    TU_WAIT_FOR(req_is_done(r));
    g_assert_cmpint(r->io.status, ==, 0);
    g_assert_cmpmem(r->buf, r->io.bytes_out, bytes, strlen(bytes));
    g_free(r);
}

static void expect_status(Req *r, int status)
{
    TU_WAIT_FOR(req_is_done(r));
    g_assert_cmpint(r->io.status, ==, status);
    g_assert_cmpuint(r->io.bytes_out, ==, 0);
    g_free(r);
}

/* Not complete after a while (what framing waits for has not come). */
static void expect_pending(Req *r)
{
    g_usleep(50 * 1000);
    g_assert_false(req_is_done(r));
}

static void expect_counts(Link *l, guint64 messages, guint64 cut_size, guint64 cut_wait)
{
    CrtTargetCounters c;

    crt_target_get_counters(l->t, &c);
    g_assert_cmpuint(c.messages, ==, messages);
    g_assert_cmpuint(c.messages_cut_size, ==, cut_size);
    g_assert_cmpuint(c.messages_cut_wait, ==, cut_wait);
}

/* ---- the cases -------------------------------------------------------- */

static void test_delim(void)
{
    Link l;
    Req *r[3];

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 0);
    for (int i = 0; i < 3; i++)
        r[i] = read_submit(&l, 64);
    put(&l, "one\ntwo\nthr");
    expect_message(r[0], "one\n");
    expect_message(r[1], "two\n");
    expect_pending(r[2]);
    put(&l, "ee");
    expect_pending(r[2]);
    put(&l, "\n");
    expect_message(r[2], "three\n");
    expect_counts(&l, 3, 0, 0);
    link_close(&l);
}

/* One read(2) of several messages: one completes, the rest wait in the
 * pushback and each later read takes one of them. */
static void test_pushback_several(void)
{
    Link l;
    Req *r;

    link_open(&l, NULL);
    set_split(&l, "delim=\\r\\n", 0, 0);
    r = read_submit(&l, 64);
    put(&l, "a\r\nbb\r\nccc\r\nd");
    expect_message(r, "a\r\n");
    expect_message(read_submit(&l, 64), "bb\r\n");
    expect_message(read_submit(&l, 64), "ccc\r\n");
    r = read_submit(&l, 64);
    expect_pending(r);
    put(&l, "\r\n");
    expect_message(r, "d\r\n");
    link_close(&l);
}

static void test_length(void)
{
    Link l;
    Req *r[4];

    link_open(&l, NULL);
    set_split(&l, "length=4", 0, 0);
    for (int i = 0; i < 4; i++)
        r[i] = read_submit(&l, 64);
    put(&l, "0123456789AB");
    expect_message(r[0], "0123");
    expect_message(r[1], "4567");
    expect_message(r[2], "89AB");
    put(&l, "x");
    expect_pending(r[3]);
    put(&l, "yzw");
    expect_message(r[3], "xyzw");
    link_close(&l);
}

/* Bytes 9 ms apart are one message under a 30 ms idle gap; 100 ms of
 * silence ends it. */
static void test_idle(void)
{
    Link l;
    Req *r[2];

    link_open(&l, NULL);
    set_split(&l, "idle=30ms", 0, 0);
    r[0] = read_submit(&l, 64);
    r[1] = read_submit(&l, 64);
    put(&l, "abc");
    g_usleep(9 * 1000);
    put(&l, "def");
    g_usleep(100 * 1000);
    put(&l, "ghi");
    expect_message(r[0], "abcdef");
    expect_message(r[1], "ghi");
    expect_counts(&l, 2, 0, 0);
    link_close(&l);
}

static void test_max_size(void)
{
    Link l;

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 4, 0);
    put(&l, "abcdefg\n");
    expect_message(read_submit(&l, 64), "abcd");
    expect_message(read_submit(&l, 64), "efg\n");
    expect_counts(&l, 2, 1, 0);
    /* the buffer is the limit too */
    set_split(&l, "delim=\\n", 0, 0);
    put(&l, "123456\n");
    expect_message(read_submit(&l, 3), "123");
    expect_message(read_submit(&l, 3), "456");
    expect_message(read_submit(&l, 3), "\n");
    expect_counts(&l, 5, 3, 0);
    link_close(&l);
}

static void test_max_wait(void)
{
    Link l;
    Req *r;
    gint64 start;

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 50);
    r = read_submit(&l, 64);
    start = g_get_monotonic_time();
    put(&l, "abc");
    expect_message(r, "abc");
    g_assert_cmpint(g_get_monotonic_time() - start, >=, 50 * 1000);
    expect_counts(&l, 1, 0, 1);
    link_close(&l);
}

/* The end of the stream completes the partial message with its bytes, and
 * the next read with the end. */
static void test_eof_partial(void)
{
    Link l;
    Req *r[3];

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 0);
    for (int i = 0; i < 2; i++)
        r[i] = read_submit(&l, 64);
    put(&l, "abc\nxy");
    close(l.peer);
    l.peer = -1;
    expect_message(r[0], "abc\n");
    expect_message(r[1], "xy");
    r[2] = read_submit(&l, 64);
    expect_status(r[2], -ENODATA);
    link_close(&l);
}

/* A transaction goes ahead of a message in progress; the message goes on
 * after the response with the bytes that followed it. */
static void test_transaction_between(void)
{
    Link l;
    Req *r, *txn = g_new0(Req, 1);
    LoopCall c;
    char q[8] = {0};

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 0);
    r = read_submit(&l, 64);
    put(&l, "par");
    expect_pending(r);
    txn->io.type = CRT_REQUEST_INTERNAL_IOCTL;
    txn->io.in = "Q?";
    txn->io.in_len = 2;
    txn->io.out = txn->buf;
    txn->io.out_cap = 64;
    txn->io.done = req_done;
    txn->end.until[0] = '!';
    txn->end.until_len = 1;
    txn->io.end = &txn->end;
    c = (LoopCall){l.t, &txn->io, 0};
    crt_loop_call(test_loop, submit_on_loop, &c);
    g_assert_cmpint(read(l.peer, q, 2), ==, 2);
    g_assert_cmpstr(q, ==, "Q?");
    put(&l, "ANS!tial\nnext\n");
    TU_WAIT_FOR(req_is_done(txn));
    g_assert_cmpint(txn->io.status, ==, 0);
    g_assert_cmpmem(txn->buf, txn->io.bytes_out, "ANS!", 4);
    expect_message(r, "partial\n");
    expect_message(read_submit(&l, 64), "next\n");
    g_free(txn);
    link_close(&l);
}

/* A cancelled message gives its bytes back to the stream. */
static void test_cancel_keeps_bytes(void)
{
    Link l;
    Req *r;
    LoopCall c;

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 0);
    r = read_submit(&l, 64);
    put(&l, "abc");
    expect_pending(r);
    c = (LoopCall){l.t, &r->io, -ECANCELED};
    crt_loop_call(test_loop, cancel_on_loop, &c);
    expect_status(r, -ECANCELED);
    r = read_submit(&l, 64);
    put(&l, "\n");
    expect_message(r, "abc\n");
    link_close(&l);
}

/* A new split applies from the next message; none reads as before. */
static void test_live_change(void)
{
    Link l;
    Req *r;

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 0);
    r = read_submit(&l, 64);
    put(&l, "abc");
    expect_pending(r);
    set_split(&l, "length=2", 0, 0);
    put(&l, "\nxyzw");
    expect_message(r, "abc\n"); /* the rule it began with */
    expect_message(read_submit(&l, 64), "xy");
    expect_message(read_submit(&l, 64), "zw");
    set_split(&l, "none", 0, 0);
    put(&l, "12345");
    expect_message(read_submit(&l, 64), "12345");
    expect_counts(&l, 3, 0, 0);
    /* a read that waits for its first byte takes a split set meanwhile */
    set_split(&l, "delim=\\n", 0, 0);
    r = read_submit(&l, 64);
    put(&l, "a\n");
    expect_message(r, "a\n");
    r = read_submit(&l, 64);
    expect_pending(r);
    set_split(&l, "length=3", 0, 0);
    put(&l, "bcd\n");
    expect_message(r, "bcd");
    set_split(&l, "none", 0, 0);
    expect_message(read_submit(&l, 64), "\n");
    expect_counts(&l, 5, 0, 0);
    link_close(&l);
}

/* The `wait` decorator frames through its inner target. */
static void test_wait_forwards(void)
{
    Link l;
    CrtSplit got;

    link_open(&l, " wait");
    set_split(&l, "delim=;", 0, 0);
    crt_target_get_split(l.t, &got);
    g_assert_cmpint(got.mode, ==, CRT_SPLIT_DELIM);
    put(&l, "a;bc;");
    expect_message(read_submit(&l, 64), "a;");
    expect_message(read_submit(&l, 64), "bc;");
    expect_counts(&l, 2, 0, 0);
    link_close(&l);
}

/* A buffer that comes late (bind fails, then a kick) still gets the
 * message waiting whole in the pushback: no readiness comes for it. */
static gint bind_allowed; /* atomic */

static gboolean late_bind(CrtIo *io)
{
    if (!g_atomic_int_get(&bind_allowed))
        return FALSE;
    io->out = ((Req *)io)->buf;
    return TRUE;
}

static void kick_on_loop(gpointer data)
{
    crt_target_kick(data);
}

static void test_kick_serves_pushback(void)
{
    Link l;
    Req *r, *late = g_new0(Req, 1);
    LoopCall c = {NULL, &late->io, 0};

    link_open(&l, NULL);
    set_split(&l, "delim=\\n", 0, 0);
    r = read_submit(&l, 64);
    put(&l, "a\nb\n");
    expect_message(r, "a\n");
    g_atomic_int_set(&bind_allowed, 0);
    late->io.type = CRT_REQUEST_READ;
    late->io.out_cap = 64;
    late->io.bind = late_bind;
    late->io.done = req_done;
    c.t = l.t;
    crt_loop_call(test_loop, submit_on_loop, &c);
    expect_pending(late);
    g_atomic_int_set(&bind_allowed, 1);
    crt_loop_call(test_loop, kick_on_loop, l.t);
    expect_message(late, "b\n");
    link_close(&l);
}

/* A `wait` target gives its split to the inner target it opens after a
 * loss, too. */
static void test_wait_reopened(void)
{
    Link l;
    Req *r;
    int status;

    link_open(&l, " wait");
    set_split(&l, "delim=;", 0, 0);
    close(l.peer);
    r = read_submit(&l, 64);
    TU_WAIT_FOR(req_is_done(r));
    status = r->io.status;
    g_assert_true(status == -ENODATA || status == -ECONNRESET);
    g_free(r);
    r = read_submit(&l, 64);
    l.peer = accept_peer(&l); /* the decorator connects again */
    put(&l, "x;yz;");
    /* The return is marked (-EISCONN) if the read was held for it. */
    TU_WAIT_FOR(req_is_done(r));
    if (r->io.status == -EISCONN) {
        g_free(r);
        r = read_submit(&l, 64);
    }
    expect_message(r, "x;");
    expect_message(read_submit(&l, 64), "yz;");
    link_close(&l);
}

/* One read(2) of 64 KiB holding 65536 one-byte messages, taken by a read
 * that submits itself again from its completion (as the engine does): no
 * nesting per message, and the budget goes on after other sources. */
typedef struct {
    CrtIo io;
    CrtTarget *t;
    guint8 buf[1 << 16];
    GString *got; /* the messages, joined */
    guint messages, wrong;
    gint finished; /* atomic */
} Chain;

static void chain_done(CrtIo *io)
{
    Chain *c = (Chain *)io;

    if (io->status != 0 || io->bytes_out != 1) {
        c->wrong++;
    } else {
        g_string_append_len(c->got, (const char *)c->buf, 1);
        c->messages++;
    }
    if (c->messages + c->wrong >= sizeof c->buf) {
        g_atomic_int_set(&c->finished, 1);
        return;
    }
    crt_target_submit(c->t, io);
}

static void test_many_messages_one_read(void)
{
    Chain *c = g_new0(Chain, 1);
    guint8 *blob = g_malloc(sizeof c->buf);
    LoopCall call;
    Link l;

    for (size_t i = 0; i < sizeof c->buf; i++)
        blob[i] = (guint8)(i * 7);
    link_open(&l, NULL);
    set_split(&l, "length=1", 0, 0);
    c->t = l.t;
    c->got = g_string_new(NULL);
    c->io.type = CRT_REQUEST_READ;
    c->io.out = c->buf;
    c->io.out_cap = sizeof c->buf;
    c->io.done = chain_done;
    for (size_t off = 0; off < sizeof c->buf;) {
        ssize_t n = write(l.peer, blob + off, sizeof c->buf - off);

        g_assert_cmpint(n, >, 0);
        off += (size_t)n;
        if (off == (size_t)n) {
            call = (LoopCall){l.t, &c->io, 0};
            crt_loop_call(test_loop, submit_on_loop, &call);
        }
    }
    TU_WAIT_FOR(g_atomic_int_get(&c->finished));
    g_assert_cmpuint(c->wrong, ==, 0);
    g_assert_cmpmem(c->got->str, c->got->len, blob, sizeof c->buf);
    expect_counts(&l, sizeof c->buf, 0, 0);
    link_close(&l);
    g_string_free(c->got, TRUE);
    g_free(c);
    g_free(blob);
}

/* The simulator keeps a split but does not frame (nor fail). */
static void test_sim_ignores(void)
{
    CrtTarget *t = open_ok("sim:zero");
    CrtSplit s = {0}, got;

    g_assert_cmpint(crt_split_parse("delim=\\n", &s, NULL), ==, 0);
    crt_target_set_split(t, &s);
    crt_target_get_split(t, &got);
    g_assert_cmpint(got.mode, ==, CRT_SPLIT_DELIM);
    crt_target_set_split(t, NULL);
    crt_target_get_split(t, &got);
    g_assert_cmpint(got.mode, ==, CRT_SPLIT_NONE);
    crt_target_unref(t);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/target-split/delim", test_delim);
    g_test_add_func("/target-split/pushback-several", test_pushback_several);
    g_test_add_func("/target-split/length", test_length);
    g_test_add_func("/target-split/idle", test_idle);
    g_test_add_func("/target-split/max-size", test_max_size);
    g_test_add_func("/target-split/max-wait", test_max_wait);
    g_test_add_func("/target-split/eof-partial", test_eof_partial);
    g_test_add_func("/target-split/transaction-between", test_transaction_between);
    g_test_add_func("/target-split/cancel-keeps-bytes", test_cancel_keeps_bytes);
    g_test_add_func("/target-split/live-change", test_live_change);
    g_test_add_func("/target-split/wait-forwards", test_wait_forwards);
    g_test_add_func("/target-split/kick-serves-pushback", test_kick_serves_pushback);
    g_test_add_func("/target-split/wait-reopened", test_wait_reopened);
    g_test_add_func("/target-split/many-messages-one-read", test_many_messages_one_read);
    g_test_add_func("/target-split/sim-ignores", test_sim_ignores);
    return target_tests_run();
}
