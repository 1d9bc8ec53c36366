/* crtfs tests - exec targets: commands are reaped, killed when stubborn,
 * fed through stdin, cost nothing once gone, and stream their output to
 * its end through the engine.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine-streams.h"
#include "target-private.h"
#include "target-fixture.h"

/* ---- commands --------------------------------------------------------- */

static void test_exec_reaped(void)
{
    CrtTarget *t = open_ok("exec:echo hi");

    g_assert_cmpint(crt_target_kind(t), ==, CRT_TARGET_EXEC);
    char *got = read_some(crt_target_fd(t));
    g_assert_cmpstr(got, ==, "hi\n");
    crt_target_unref(t);
    assert_no_children();
    g_free(got);
}

static gboolean group_is_gone(gpointer data)
{
    return kill(-GPOINTER_TO_INT(data), 0) < 0 && errno == ESRCH;
}

/* A command that ignores SIGTERM, and its own child, are killed anyway. */
static void test_exec_stubborn(void)
{
    CrtTarget *t = open_ok("exec:trap '' TERM; echo $$; sleep 100; true");
    char *got = read_some(crt_target_fd(t)); /* the trap is set by now */
    int pgid = atoi(got);
    gint64 start = g_get_monotonic_time();

    g_assert_cmpint(pgid, >, 1);
    crt_target_unref(t);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
    assert_no_children();
    /* SIGKILL is delivered asynchronously, and the orphaned `sleep` is
     * reaped by init: the group disappears soon, not at once. */
    TU_WAIT_FOR(group_is_gone(GINT_TO_POINTER(pgid)));
    g_free(got);
}

/* The command's stdin and stdout are the target's two descriptors. */
static void test_exec_stdin(void)
{
    CrtTarget *t = open_ok("exec:read line; echo \"got $line\"");

    g_assert_cmpint(write(t->write_fd, "shout\n", 6), ==, 6);
    char *got = read_some(crt_target_fd(t));
    g_assert_cmpstr(got, ==, "got shout\n");
    crt_target_unref(t);
    assert_no_children();
    g_free(got);
}

/* Wait until the command behind `t` has closed its stdout. */
static void wait_hangup(CrtTarget *t)
{
    struct pollfd pfd = {.fd = crt_target_fd(t), .events = POLLIN};
    char buf[64];

    do {
        g_assert_cmpint(poll(&pfd, 1, TU_EVENTUALLY_MS), ==, 1);
    } while (read(pfd.fd, buf, sizeof buf) > 0);
}

static gint64 cpu_time_us(void)
{
    struct rusage ru;

    g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static gboolean presence_has(CrtTarget *t, const char *words)
{
    char *reason = NULL;
    gboolean has;

    crt_target_presence(t, &reason);
    has = reason && strstr(reason, words);
    g_free(reason);
    return has;
}

static gboolean shows_last_line(gpointer t)
{
    return presence_has(t, "| \"no newline\"");
}

/* The command's stderr is read (a daemon has none to inherit): its last
 * lines show in presence, control bytes escaped, and a last line without a
 * newline once the command closes stderr. */
static void test_exec_stderr(void)
{
    CrtTarget *t = open_ok("exec:printf 'one\\ntwo\\033[2J\\n' >&2; printf 'no newline' >&2; "
                           "exec sleep 30 2>/dev/null");
    char *reason = NULL;

    g_assert_true(tu_wait_until(shows_last_line, t, TU_EVENTUALLY_MS));
    crt_target_presence(t, &reason);
    g_assert_nonnull(strstr(reason, "running (pid "));
    g_assert_nonnull(
        strstr(reason, "; stderr: \"one\" | \"two\\x1b[2J\" | \"no newline\""));
    g_free(reason);
    crt_target_unref(t);
    assert_no_children();
}

/* A hung-up descriptor with no request waiting costs no CPU: nothing
 * polls it in a loop. */
static void test_exec_idle_after_exit(void)
{
    CrtTarget *t = open_ok("exec:true");

    wait_hangup(t);
    gint64 cpu = cpu_time_us();
    g_usleep(G_USEC_PER_SEC / 2);
    /* Idle is ~0; half of the wall time is a bound only a busy loop
     * reaches. */
    g_assert_cmpint(cpu_time_us() - cpu, <, G_USEC_PER_SEC / 4);
    crt_target_unref(t);
    assert_no_children();
}

/* Tearing down a target whose command is gone, or going, races nothing on the loop
 * thread; repeated to give a race a chance to show under a sanitizer. */
static void test_exec_unref_after_exit(void)
{
    for (int i = 0; i < 40; i++) {
        CrtTarget *t = open_ok("exec:true");

        /* Half the time the hang-up arrives during the teardown. */
        if (i % 2 == 0)
            wait_hangup(t);
        crt_target_unref(t);
    }
    assert_no_children();
}

/* ---- through the engine ------------------------------------------------ */

/* A command's output, to its end. */
static void test_real_exec_seq(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    GString *expected = g_string_new(NULL);
    Collector c;
    CrtEngine *e;

    for (int i = 1; i <= 100000; i++)
        g_string_append_printf(expected, "%d\n", i);
    e = collector_start(&c, loop, "exec:seq 1 100000", 4096, FALSE);
    TU_WAIT_FOR(g_atomic_int_get(&c.ended) >= 1);
    /* The end of the stream stops it without help. */
    tu_engine_wait_state(e, CRT_STATE_STOPPED);
    g_mutex_lock(&c.lock);
    g_assert_cmpmem(c.data->data, c.data->len, expected->str, expected->len);
    g_mutex_unlock(&c.lock);
    g_assert_cmpint(c.errors, ==, 0);
    collector_finish(e, &c);
    g_string_free(expected, TRUE);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    g_test_add_func("/target/exec/reaped", test_exec_reaped);
    g_test_add_func("/target/exec/stubborn", test_exec_stubborn);
    g_test_add_func("/target/exec/stdin", test_exec_stdin);
    g_test_add_func("/target/exec/stderr", test_exec_stderr);
    g_test_add_func("/target/exec/idle-after-exit", test_exec_idle_after_exit);
    g_test_add_func("/target/exec/unref-after-exit", test_exec_unref_after_exit);
    TU_TEST_ADD_ENGINE("/engine/real-targets/exec-seq", test_real_exec_seq);
    return target_tests_run();
}
