/* crtfs tests - path targets: opening files, FIFOs and what is not a
 * device, ttys (termios, locks, sharing, counters), and streams through the
 * engine from a FIFO, a pty, /dev/zero and pty ioctls.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine-streams.h"
#include "target-private.h"
#include "target-fixture.h"
#include "uucp-lock.h"

/* ---- paths ------------------------------------------------------------ */

static void test_open_dev_null(void)
{
    CrtTarget *t = open_ok("/dev/null");
    CrtTargetCounters c;

    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_PATH);
    g_assert_cmpstr(crt_target_describe(t), ==, "/dev/null");
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    crt_target_get_counters(t, &c);
    g_assert_false(c.has_icount);
    g_assert_cmpuint(c.bytes_read, ==, 0);
    g_assert_cmpuint(c.bytes_written, ==, 0);
    g_assert_true(crt_target_ref(t) == t);
    crt_target_unref(t);
    crt_target_unref(t);
}

static void test_open_default_loop(void)
{
    CrtTarget *t = NULL;

    g_assert_cmpint(crt_target_open_spec("/dev/zero", NULL, &t, NULL), ==, 0);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    crt_target_unref(t);
}

static void test_open_missing(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "missing", NULL);
    char *msg = open_fails(path, ENOENT);

    assert_contains(msg, path);
    g_free(msg);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

static void test_open_directory(void)
{
    char *dir = tu_tmpdir();
    char *msg = open_fails(dir, EISDIR);

    assert_contains(msg, dir);
    g_free(msg);
    tu_rmrf(dir);
    g_free(dir);
}

/* A FIFO opens at once, without a writer on the other side. */
static void test_open_fifo(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "fifo", NULL);

    g_assert_cmpint(mkfifo(path, 0600), ==, 0);
    CrtTarget *t = open_ok(path);
    g_assert_cmpint(crt_target_fd(t), >=, 0);
    crt_target_unref(t);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

/* A socket given as a path is refused with a hint to write unix:. */
static void test_open_socket_as_path(void)
{
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "sock", NULL);
    TuServer *server = tu_echo_server_unix(path);

    g_assert_nonnull(server);
    char *msg = open_fails(path, ENXIO);
    assert_contains(msg, "unix:");
    g_free(msg);
    tu_server_stop(server);
    g_free(path);
    tu_rmrf(dir);
    g_free(dir);
}

/* ---- ttys ------------------------------------------------------------- */

/* The master of a pty reads the slave's termios: it sees our changes
 * whatever locks the target holds on the slave. */
static void test_tty_termios(void)
{
    Pty pty;
    struct termios before, during, after;

    pty_open(&pty);
    g_assert_cmpint(tcgetattr(pty.master, &before), ==, 0);
    g_assert_cmpint(before.c_lflag & ICANON, !=, 0); /* a fresh pty is cooked */

    char *spec = g_strdup_printf("%s raw baud=9600 8N1", pty.slave);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(tcgetattr(pty.master, &during), ==, 0);
    g_assert_cmpuint(cfgetospeed(&during), ==, B9600);
    g_assert_cmpuint(cfgetispeed(&during), ==, B9600);
    g_assert_cmpuint(during.c_cflag & CSIZE, ==, CS8);
    g_assert_cmpuint(during.c_cflag & (PARENB | CSTOPB), ==, 0);
    g_assert_cmpuint(during.c_cflag & (CLOCAL | CREAD), ==, CLOCAL | CREAD);
    g_assert_cmpuint(during.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), ==, 0);
    g_assert_cmpuint(during.c_oflag & OPOST, ==, 0);
    g_assert_cmpuint(during.c_cc[VMIN], ==, 1);
    g_assert_cmpuint(during.c_cc[VTIME], ==, 0);
    crt_target_unref(t);

    g_assert_cmpint(tcgetattr(pty.master, &after), ==, 0);
    g_assert_cmpuint(after.c_cflag, ==, before.c_cflag);
    g_assert_cmpuint(after.c_lflag, ==, before.c_lflag);
    g_assert_cmpuint(after.c_iflag, ==, before.c_iflag);
    g_assert_cmpuint(after.c_oflag, ==, before.c_oflag);
    g_assert_cmpuint(cfgetospeed(&after), ==, cfgetospeed(&before));
    g_free(spec);
    pty_close(&pty);
}

static void test_tty_parity_and_flow(void)
{
    Pty pty;
    struct termios tio;

    pty_open(&pty);
    char *spec = g_strdup_printf("%s baud=115200 7O2 rtscts", pty.slave);
    CrtTarget *t = open_ok(spec);
    g_assert_cmpint(tcgetattr(pty.master, &tio), ==, 0);
    g_assert_cmpuint(cfgetospeed(&tio), ==, B115200);
    /* A pty forces CS8 and clears PARENB whatever it is told, so only the
     * flags it keeps can be checked here. */
    g_assert_cmpuint(tio.c_cflag & (PARODD | CSTOPB), ==, PARODD | CSTOPB);
    g_assert_cmpuint(tio.c_cflag & CRTSCTS, ==, CRTSCTS);
    crt_target_unref(t);
    g_free(spec);
    pty_close(&pty);
}

/* A second opener is told who holds the tty; once released it may open. */
static void test_tty_lock(void)
{
    Pty pty;

    pty_open(&pty);
    CrtTarget *first = open_ok(pty.slave);
    char *msg = open_fails(pty.slave, EBUSY);
    char *pid = g_strdup_printf("%d", (int)getpid());

    assert_contains(msg, pty.slave);
    assert_contains(msg, pid);
    assert_contains(msg, "shared");
    crt_target_unref(first);

    CrtTarget *again = open_ok(pty.slave);
    crt_target_unref(again);
    g_free(pid);
    g_free(msg);
    pty_close(&pty);
}

/* Another program holding the tty with TIOCEXCL alone (no flock) keeps
 * even a root daemon out, and is found among the open descriptors. */
static void test_tty_foreign_exclusive(void)
{
    Pty pty;

    pty_open(&pty);
    int fd = open(pty.slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ioctl(fd, TIOCEXCL), ==, 0);
    char *msg = open_fails(pty.slave, EBUSY);
    char *pid = g_strdup_printf("pid %d", (int)getpid());
    assert_contains(msg, pid);
    /* On a pty the flag outlives the descriptor (the master keeps the tty
     * alive), so the holder clears it as a well-behaved program does. */
    g_assert_cmpint(ioctl(fd, TIOCNXCL), ==, 0);
    close(fd);

    CrtTarget *t = open_ok(pty.slave);
    crt_target_unref(t);
    g_free(pid);
    g_free(msg);
    pty_close(&pty);
}

/* LCK..NAME in `dir` for the device `dev` (/dev/pts/N -> LCK..pts_N). */
static char *uucp_file(const char *dir, const char *dev)
{
    const char *name = g_str_has_prefix(dev, "/dev/") ? dev + strlen("/dev/") : dev;
    char *flat = g_strdelimit(g_strdup(name), "/", '_');
    char *file = g_strdup_printf("%s/LCK..%s", dir, flat);

    g_free(flat);
    return file;
}

static void write_lock(const char *file, pid_t pid)
{
    char *text = g_strdup_printf("%10d\n", (int)pid);

    g_assert_true(g_file_set_contents(file, text, -1, NULL));
    g_free(text);
}

static void assert_ours(const char *file)
{
    char *text = NULL, *want = g_strdup_printf("%10d\n", (int)getpid());

    g_assert_true(g_file_get_contents(file, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, want);
    g_free(text);
    g_free(want);
}

/* UUCP lock files, in a directory of the test's own: ours while held (the
 * name as given and, for a symlink, the real device's), holding our pid;
 * another live process's keeps us out, naming it, and is left alone; a dead
 * process's is stale and taken over; no writable directory, no lock. */
static void test_tty_uucp_lock(void)
{
    Pty pty;
    char *dir = tu_tmpdir(), *link = g_build_filename(dir, "by-id-modem", NULL);
    char *given = uucp_file(dir, link), *real, *missing;
    char **locks = NULL;
    GError *error = NULL;
    pid_t dead;

    pty_open(&pty);
    real = uucp_file(dir, pty.slave);
    g_assert_cmpint(symlink(pty.slave, link), ==, 0);
    g_assert_cmpint(crt_uucp_lock_in(dir, link, &locks, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_cmpuint(g_strv_length(locks), ==, 2);
    assert_ours(given);
    assert_ours(real);
    crt_uucp_unlock(locks);
    g_strfreev(locks);
    g_assert_false(g_file_test(given, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(real, G_FILE_TEST_EXISTS));

    write_lock(real, getppid()); /* a live process that is not us */
    g_assert_cmpint(crt_uucp_lock_in(dir, link, &locks, &error), ==, -EBUSY);
    g_assert_null(locks);
    assert_contains(error->message, "UUCP lock file");
    assert_contains(error->message, real);
    g_clear_error(&error);
    g_assert_true(g_file_test(real, G_FILE_TEST_EXISTS));   /* not ours: left alone */
    g_assert_false(g_file_test(given, G_FILE_TEST_EXISTS)); /* none kept half-taken */

    dead = fork();
    if (dead == 0)
        _exit(0);
    g_assert_cmpint(waitpid(dead, NULL, 0), ==, dead);
    write_lock(real, dead); /* stale */
    g_assert_cmpint(crt_uucp_lock_in(dir, pty.slave, &locks, &error), ==, 0);
    g_assert_cmpuint(g_strv_length(locks), ==, 1);
    assert_ours(real);
    crt_uucp_unlock(locks);
    g_strfreev(locks);
    g_assert_false(g_file_test(real, G_FILE_TEST_EXISTS));

    missing = g_build_filename(dir, "no-such-dir", NULL);
    g_assert_cmpint(crt_uucp_lock_in(missing, pty.slave, &locks, &error), ==, 0);
    g_assert_no_error(error);
    g_assert_null(locks);
    g_free(missing);
    unlink(link);
    tu_rmrf(dir);
    g_free(given);
    g_free(real);
    g_free(link);
    g_free(dir);
    pty_close(&pty);
}

static void test_tty_shared(void)
{
    Pty pty;

    pty_open(&pty);
    char *spec = g_strdup_printf("%s shared", pty.slave);
    CrtTarget *a = open_ok(spec);
    CrtTarget *b = open_ok(spec);
    crt_target_unref(a);
    crt_target_unref(b);
    /* Shared openers leave no lock behind. */
    CrtTarget *c = open_ok(pty.slave);
    crt_target_unref(c);
    g_free(spec);
    pty_close(&pty);
}

/* A pty has no UART counters; asking must still be safe. */
static void test_tty_counters(void)
{
    Pty pty;
    CrtTargetCounters c;

    pty_open(&pty);
    CrtTarget *t = open_ok(pty.slave);
    crt_target_get_counters(t, &c);
    if (!c.has_icount) {
        g_assert_cmpuint(c.overruns, ==, 0);
        g_assert_cmpuint(c.framing, ==, 0);
        g_assert_cmpuint(c.parity, ==, 0);
        g_assert_cmpuint(c.breaks, ==, 0);
    }
    crt_target_unref(t);
    pty_close(&pty);
}

/* ---- through the engine ------------------------------------------------ */

static void test_real_fifo(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "fifo", NULL);
    gsize len = 256 * 1024;
    guint8 *data = pattern_new(len, 1);
    FifoWriter w = {path, data, len};
    Collector c;
    CrtEngine *e;
    GThread *writer;

    g_assert_cmpint(mkfifo(path, 0600), ==, 0);
    e = collector_start(&c, loop, path, 4096, FALSE);
    /* Two writers one after the other: the target holds both ends, so the
     * first one closing is no end of stream. */
    w.len = len / 2;
    writer = g_thread_new("fifo-writer", fifo_writer, &w);
    g_thread_join(writer);
    w.data = data + len / 2;
    w.len = len - len / 2;
    writer = g_thread_new("fifo-writer", fifo_writer, &w);
    g_thread_join(writer);
    collector_expect(&c, data, len);
    g_assert_cmpint(g_atomic_int_get(&c.ended), ==, 0);
    collector_finish(e, &c);
    g_free(data);
    tu_rmrf(dir);
    g_free(path);
    g_free(dir);
}

/* A pty slave configured raw, fed through the master. */
static void test_real_pty(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    gsize len = 16 * 1024;
    guint8 *data = pattern_new(len, 3);
    int master = -1;
    char *slave = NULL, *spec;
    Collector c;
    CrtEngine *e;

    g_assert_cmpint(tu_openpty(&master, &slave), ==, 0);
    spec = g_strdup_printf("%s raw baud=9600", slave);
    e = collector_start(&c, loop, spec, 4096, FALSE);
    /* A single read queued behind the stream's reads times out while the
     * line is silent, and leaves the queue intact. */
    {
        guint8 buf[16];
        size_t bytes = 1;

        g_assert_cmpint(crt_engine_send_sync(e, NULL, 0, buf, sizeof buf,
                                             CRT_REQUEST_READ, 0, 100, &bytes),
                        ==, -ETIMEDOUT);
        g_assert_cmpuint(bytes, ==, 0);
    }
    /* Every byte value passes a raw line unchanged. */
    write_all(master, data, len);
    collector_expect(&c, data, len);
    collector_finish(e, &c);
    close(master);
    g_free(spec);
    g_free(slave);
    g_free(data);
}

/* /dev/zero: every buffer all zero. */
static void test_real_dev_zero(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    Collector c;
    CrtEngine *e = collector_start(&c, loop, "/dev/zero", 4096, TRUE);

    TU_WAIT_FOR(g_atomic_int_get(&c.ok) >= 1000);
    collector_finish(e, &c);
}

/* Ioctls on a pty: one at a time, and as a stream. */
typedef struct {
    gint value;    /* atomic: the last FIONREAD answer */
    gint ok;       /* atomic */
    gint stopping; /* atomic */
} Fionread;

static CrtDisposition fionread_output(CrtEngine *e, const CrtOutput *o,
                                      gpointer user_data)
{
    Fionread *f = user_data;
    int v;

    if (o->status != 0) {
        CHECKF(o->status == -ECANCELED && g_atomic_int_get(&f->stopping), "status %d",
               o->status);
        return CRT_DISPOSITION_ENGINE_CONTINUE;
    }
    CHECKF(o->length == sizeof v, "length %zu", o->length);
    memcpy(&v, o->buffer, sizeof v);
    g_atomic_int_set(&f->value, v);
    g_atomic_int_inc(&f->ok);
    return CRT_DISPOSITION_ENGINE_CONTINUE;
}

typedef struct {
    Fionread *f;
    gint want;
} FionreadIs;

static gboolean fionread_is(gpointer data)
{
    FionreadIs *w = data;

    return g_atomic_int_get(&w->f->value) == w->want;
}

static void test_real_pty_ioctl(TuEngine *fx, gconstpointer unused)
{
    struct winsize set = {.ws_row = 33, .ws_col = 101, .ws_xpixel = 7, .ws_ypixel = 9};
    struct winsize got;
    guint8 junk[123];
    Fionread f = {.value = -1};
    FionreadIs w = {&f, sizeof junk};
    CrtEngineConfig cfg;
    CrtEngine *e;
    int master = -1;
    char *slave = NULL, *spec;
    size_t bytes = 0;

    g_assert_cmpint(tu_openpty(&master, &slave), ==, 0);
    spec = g_strdup_printf("%s raw", slave);
    g_assert_cmpint(ioctl(master, TIOCSWINSZ, &set), ==, 0);

    cfg = fx->cfg;
    e = tu_engine_new(&cfg, spec);
    memset(&got, 0, sizeof got);
    g_assert_cmpint(crt_engine_send_sync(e, NULL, 0, &got, sizeof got, CRT_REQUEST_IOCTL,
                                         TIOCGWINSZ, 0, &bytes),
                    ==, 0);
    g_assert_cmpuint(bytes, ==, sizeof got);
    g_assert_cmpuint(got.ws_row, ==, 33);
    g_assert_cmpuint(got.ws_col, ==, 101);
    g_assert_cmpuint(got.ws_xpixel, ==, 7);
    g_assert_cmpuint(got.ws_ypixel, ==, 9);
    crt_engine_free(e);

    /* FIONREAD as the streaming request: it sees what the master wrote
     * (nobody reads the slave). */
    cfg = fx->cfg;
    cfg.type = CRT_REQUEST_IOCTL;
    cfg.ioctl = FIONREAD;
    cfg.request_count = 1;
    cfg.in_size = 0;
    cfg.in_count = 0;
    cfg.out_size = sizeof(int);
    cfg.out_count = 2;
    cfg.buffer_output = fionread_output;
    cfg.user_data = &f;
    e = tu_engine_new(&cfg, spec);
    memset(junk, 'x', sizeof junk);
    write_all(master, junk, sizeof junk);
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    if (!tu_wait_until(fionread_is, &w, TU_EVENTUALLY_MS))
        g_assert_cmpint(g_atomic_int_get(&f.value), ==, sizeof junk);
    g_atomic_int_set(&f.stopping, 1);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);
    close(master);
    g_free(spec);
    g_free(slave);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/target/open/dev-null", test_open_dev_null);
    g_test_add_func("/target/open/default-loop", test_open_default_loop);
    g_test_add_func("/target/open/missing", test_open_missing);
    g_test_add_func("/target/open/directory", test_open_directory);
    g_test_add_func("/target/open/fifo", test_open_fifo);
    g_test_add_func("/target/open/socket-as-path", test_open_socket_as_path);
    g_test_add_func("/target/tty/termios", test_tty_termios);
    g_test_add_func("/target/tty/parity-and-flow", test_tty_parity_and_flow);
    g_test_add_func("/target/tty/lock", test_tty_lock);
    g_test_add_func("/target/tty/foreign-exclusive", test_tty_foreign_exclusive);
    g_test_add_func("/target/tty/shared", test_tty_shared);
    g_test_add_func("/target/tty/uucp-lock", test_tty_uucp_lock);
    g_test_add_func("/target/tty/counters", test_tty_counters);
    TU_TEST_ADD_ENGINE("/engine/real-targets/fifo", test_real_fifo);
    TU_TEST_ADD_ENGINE("/engine/real-targets/pty", test_real_pty);
    TU_TEST_ADD_ENGINE("/engine/real-targets/dev-zero", test_real_dev_zero);
    TU_TEST_ADD_ENGINE("/engine/real-targets/pty-ioctl", test_real_pty_ioctl);
    return target_tests_run();
}
