/* crtfs tests - bad engine set-ups: configurations crt_engine_new and
 * crt_engine_config_validate refuse with words, targets that cannot be
 * opened, starting without a target and twice.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <crtfs/crtfs.h>

#include "testutil.h"

/* ---- /engine/bad-config ------------------------------------------------------------ */

static void assert_error_message(GError *error)
{
    g_assert_nonnull(error);
    g_assert_nonnull(error->message);
    g_assert_cmpuint(strlen(error->message), >, 0);
}

/* crt_engine_new refuses with -EINVAL and words, and leaves *out alone. */
static void assert_new_invalid(const CrtEngineConfig *cfg)
{
    GError *error = NULL;
    CrtEngine *const sentinel = (CrtEngine *)&error;
    CrtEngine *e = sentinel;

    g_assert_cmpint(crt_engine_new(cfg, &e, &error), ==, -EINVAL);
    g_assert_true(e == sentinel);
    assert_error_message(error);
    g_test_message("crt_engine_new: %s", error->message);
    g_clear_error(&error);
    /* Without a GError it refuses all the same. */
    g_assert_cmpint(crt_engine_new(cfg, &e, NULL), ==, -EINVAL);
    g_assert_true(e == sentinel);
}

static void assert_invalid(const CrtEngineConfig *cfg)
{
    GError *error = NULL;

    g_assert_cmpint(crt_engine_config_validate(cfg, &error), ==, -EINVAL);
    assert_error_message(error);
    g_test_message("validate: %s", error->message);
    g_clear_error(&error);
    g_assert_cmpint(crt_engine_config_validate(cfg, NULL), ==, -EINVAL);
    assert_new_invalid(cfg);
}

typedef void (*ConfigBreaker)(CrtEngineConfig *cfg);

static void br_requests_zero(CrtEngineConfig *c)
{
    c->request_count = 0;
}

static void br_requests_huge(CrtEngineConfig *c)
{
    c->request_count = 100000;
}

static void br_ioctl_zero(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_IOCTL;
    c->ioctl = 0;
}

static void br_type_invalid(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_INVALID;
}

static void br_type_99(CrtEngineConfig *c)
{
    c->type = (CrtRequestType)99;
}

static void br_out_count_zero(CrtEngineConfig *c)
{
    c->out_count = 0;
    c->lookaside_output = FALSE;
}

static void br_in_count_zero(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_WRITE;
    c->in_size = 64;
    c->in_count = 0;
}

static void br_mode_invalid(CrtEngineConfig *c)
{
    c->mode = CRT_MODE_INVALID;
}

static void br_mode_99(CrtEngineConfig *c)
{
    c->mode = (CrtMode)99;
}

static void br_completion_7(CrtEngineConfig *c)
{
    c->completion = (CrtCompletion)7;
}

static void br_memory_5(CrtEngineConfig *c)
{
    c->out_memory = (CrtMemory)5;
}

/* Sizes and counts the buffer pools cannot hold. */
static void br_out_size_huge(CrtEngineConfig *c)
{
    c->out_size = (size_t)1 << 40;
}

static void br_out_total_huge(CrtEngineConfig *c)
{
    c->out_count = 65536;
    c->out_size = (size_t)1 << 20; /* 64 GiB in all */
}

static void br_out_size_overflow(CrtEngineConfig *c)
{
    c->out_count = 4;
    c->out_size = SIZE_MAX / 2 + 1; /* count x size wraps around */
}

static void br_out_context_overflow(CrtEngineConfig *c)
{
    c->out_size = 4096;
    c->out_context_size = SIZE_MAX - 64; /* size + context wraps around */
}

static void br_in_size_huge(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_WRITE;
    c->in_size = (size_t)1 << 40;
}

static void br_in_total_overflow(CrtEngineConfig *c)
{
    c->type = CRT_REQUEST_IOCTL;
    c->ioctl = CRT_SIM_IOCTL_SLEEP;
    c->in_count = 65536;
    c->in_size = SIZE_MAX / 65536 + 1;
}

static const ConfigBreaker config_breakers[] = {
    br_requests_zero, br_requests_huge,  br_ioctl_zero,    br_type_invalid,
    br_type_99,       br_out_count_zero, br_in_count_zero, br_mode_invalid,
    br_mode_99,       br_completion_7,   br_memory_5,
};

static const ConfigBreaker size_breakers[] = {
    br_out_size_huge,        br_out_total_huge, br_out_size_overflow,
    br_out_context_overflow, br_in_size_huge,   br_in_total_overflow,
};

static void test_bad_config(TuEngine *fx, gconstpointer unused)
{
    CrtLoop *loop = fx->loop;
    CrtEngineConfig cfg;
    CrtEngine *e;
    CrtTarget *t;
    GError *error = NULL;
    char *dir = tu_tmpdir();
    char *missing_sock = g_strdup_printf("unix:%s/missing.sock", dir);

    for (guint i = 0; i < G_N_ELEMENTS(config_breakers); i++) {
        cfg = fx->cfg;
        config_breakers[i](&cfg);
        g_test_message("config breaker %u", i);
        assert_invalid(&cfg);
    }
    for (guint i = 0; i < G_N_ELEMENTS(size_breakers); i++) {
        cfg = fx->cfg;
        size_breakers[i](&cfg);
        g_test_message("size breaker %u", i);
        assert_new_invalid(&cfg);
    }

    /* Look-aside output needs no preallocated buffer. */
    cfg = fx->cfg;
    cfg.out_count = 0;
    cfg.lookaside_output = TRUE;
    g_assert_cmpint(crt_engine_config_validate(&cfg, &error), ==, 0);
    g_assert_no_error(error);
    e = tu_engine_new(&cfg, NULL);
    crt_engine_free(e);

    /* Targets that cannot be opened: an error with words, no target. */
    t = (CrtTarget *)&error;
    g_assert_cmpint(
        crt_target_open_spec("/nonexistent-crtfs-dir/device", loop, &t, &error), ==,
        -ENOENT);
    assert_error_message(error);
    g_test_message("%s", error->message);
    g_clear_error(&error);
    g_assert_null(t);
    t = NULL;
    g_assert_cmpint(crt_target_open_spec(missing_sock, loop, &t, &error), <, 0);
    assert_error_message(error);
    g_test_message("%s", error->message);
    g_clear_error(&error);
    g_assert_null(t);
    g_assert_cmpint(crt_target_open_spec("bogus:thing", loop, &t, &error), ==, -EINVAL);
    assert_error_message(error);
    g_clear_error(&error);
    g_assert_null(t);

    /* Starting without a target, and twice. */
    cfg = fx->cfg;
    e = tu_engine_new(&cfg, NULL);
    g_assert_cmpint(crt_engine_start(e), ==, -ENOTCONN);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STOPPED);
    tu_engine_set_spec(e, "sim:counter rate=1000");
    g_assert_cmpint(crt_engine_start(e), ==, 0);
    g_assert_cmpint(crt_engine_start(e), ==, -EALREADY);
    TU_ASSERT_ENGINE_STATE(e, CRT_STATE_STREAMING);
    crt_engine_stop_and_wait(e);
    tu_engine_assert_drained(e);
    crt_engine_free(e);

    tu_rmrf(dir);
    g_free(dir);
    g_free(missing_sock);
}

/* crt_engine_config_validate is the check a configuration reader runs
 * before creating anything: sizes the pools will refuse must fail there
 * already, naming the member. */
static void test_bad_config_validate_sizes(TuEngine *fx, gconstpointer unused)
{
    CrtEngineConfig cfg;
    GError *error = NULL;
    guint accepted = 0;

    for (guint i = 0; i < G_N_ELEMENTS(size_breakers); i++) {
        int r;

        cfg = fx->cfg;
        size_breakers[i](&cfg);
        r = crt_engine_config_validate(&cfg, &error);
        if (r == -EINVAL && error != NULL && error->message[0] != '\0') {
            g_test_message("size breaker %u: %s", i, error->message);
        } else {
            g_test_message("size breaker %u: validate returned %d%s", i, r,
                           error ? "" : " and no error");
            accepted++;
        }
        g_clear_error(&error);
    }
    if (accepted > 0) {
        g_test_message("crt_engine_config_validate accepted %u of %u configurations that "
                       "crt_engine_new refuses",
                       accepted, (guint)G_N_ELEMENTS(size_breakers));
        g_test_fail();
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    TU_TEST_ADD_ENGINE("/engine/bad-config", test_bad_config);
    TU_TEST_ADD_ENGINE("/engine/bad-config/validate-sizes",
                       test_bad_config_validate_sizes);
    return g_test_run();
}
