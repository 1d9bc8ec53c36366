/* crtfs tests - `wait` targets: a target absent at the start, arriving,
 * going away and coming back, with every byte in order and a marker for
 * each arrival and loss.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine-streams.h"
#include "target-fixture.h"

/* `wait`: a FIFO absent at the start, then created, written, removed and
 * created again: every byte arrives in order, and each arrival (EISCONN)
 * and removal (ENOENT) is a marker between them. */
static void test_real_fifo_wait(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    char *dir = tu_tmpdir();
    char *path = g_build_filename(dir, "fifo", NULL);
    char *spec = g_strconcat(path, " wait", NULL);
    gsize len = 128 * 1024;
    guint8 *data = pattern_new(len, 3);
    FifoWriter w = {path, data, len / 2};
    Collector c;
    CrtEngine *e = collector_start(&c, loop, spec, 4096, FALSE);

    g_assert_true(c.markers);
    for (int round = 0; round < 2; round++) {
        GThread *writer;

        g_assert_cmpint(mkfifo(path, 0600), ==, 0);
        writer = g_thread_new("fifo-writer", fifo_writer, &w); /* opens once crtfs has */
        g_thread_join(writer);
        collector_expect(&c, data, round == 0 ? len / 2 : len);
        g_assert_cmpint(unlink(path), ==, 0);
        collector_expect_marks(&c, round == 0 ? "EISCONN ENOENT"
                                              : "EISCONN ENOENT EISCONN ENOENT");
        w.data = data + len / 2;
        w.len = len - len / 2;
    }
    collector_finish(e, &c);
    g_free(data);
    tu_rmrf(dir);
    g_free(spec);
    g_free(path);
    g_free(dir);
}

int main(int argc, char **argv)
{
    target_tests_init(&argc, &argv);
    TU_TEST_ADD_ENGINE("/engine/real-targets/fifo-wait", test_real_fifo_wait);
    return target_tests_run();
}
