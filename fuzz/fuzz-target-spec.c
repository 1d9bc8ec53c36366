/* crtfs fuzzing - target specs: crt_target_spec_parse() on any line.
 *
 * Beyond "no crash, no leak", a parse must keep its promises: -EINVAL comes
 * with a message and leaves nothing to clear; a spec that parses has its
 * fields in range, parses again from its own text to the same spec, and
 * copies and clears cleanly.
 *
 * fuzz-sources: libcrtfs_a
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include <crtfs/target.h>

#include "fuzz.h"

static void assert_str_equal(const char *a, const char *b)
{
    g_assert_true((a == NULL) == (b == NULL));
    if (a != NULL)
        g_assert_cmpstr(a, ==, b);
}

static void assert_spec_equal(const CrtTargetSpec *a, const CrtTargetSpec *b)
{
    g_assert_cmpint(a->kind, ==, b->kind);
    assert_str_equal(a->text, b->text);
    assert_str_equal(a->path, b->path);
    assert_str_equal(a->host, b->host);
    g_assert_cmpuint(a->port, ==, b->port);
    assert_str_equal(a->command, b->command);
    g_assert_cmpuint(a->baud, ==, b->baud);
    g_assert_cmpint(a->raw, ==, b->raw);
    g_assert_cmpuint(a->data_bits, ==, b->data_bits);
    g_assert_cmpint(a->parity, ==, b->parity);
    g_assert_cmpint(a->parity_set, ==, b->parity_set);
    g_assert_cmpuint(a->stop_bits, ==, b->stop_bits);
    g_assert_cmpint(a->flow, ==, b->flow);
    g_assert_cmpint(a->flow_set, ==, b->flow_set);
    g_assert_cmpint(a->shared, ==, b->shared);
    g_assert_cmpint(a->wait, ==, b->wait);
    g_assert_cmpint(a->sim_gen, ==, b->sim_gen);
    g_assert_cmpuint(a->sim_rate, ==, b->sim_rate);
    g_assert_cmpuint(a->sim_size, ==, b->sim_size);
    g_assert_cmpuint(a->sim_delay_min, ==, b->sim_delay_min);
    g_assert_cmpuint(a->sim_delay_max, ==, b->sim_delay_max);
    g_assert_cmpuint(a->sim_fail_after, ==, b->sim_fail_after);
    g_assert_cmpint(a->sim_fail_errno, ==, b->sim_fail_errno);
    g_assert_cmpint(a->sim_fail_fatal, ==, b->sim_fail_fatal);
    g_assert_cmpuint(a->sim_limit, ==, b->sim_limit);
    g_assert_cmpint(a->usb_ids, ==, b->usb_ids);
    g_assert_cmpuint(a->usb_vendor, ==, b->usb_vendor);
    g_assert_cmpuint(a->usb_product, ==, b->usb_product);
    assert_str_equal(a->usb_serial, b->usb_serial);
    g_assert_cmpint(a->usb_interface, ==, b->usb_interface);
    assert_str_equal(a->usb_path, b->usb_path);
    g_assert_true((a->match == NULL) == (b->match == NULL));
    for (guint i = 0; a->match && (a->match[i] || b->match[i]); i++)
        assert_str_equal(a->match[i], b->match[i]);
}

/* The ranges target.h and the man page give for each field. */
static void assert_spec_in_range(const CrtTargetSpec *s, const char *line)
{
    char *trimmed = g_strstrip(g_strdup(line));

    g_assert_cmpstr(s->text, ==, trimmed);
    g_free(trimmed);
    g_assert_null(strpbrk(s->text, "\r\n"));
    switch (s->kind) {
    case CRT_TARGET_PATH:
        g_assert_true(s->path != NULL && s->path[0] == '/');
        g_assert_null(strpbrk(s->path, " \t"));
        break;
    case CRT_TARGET_UNIX:
        g_assert_nonnull(s->path);
        g_assert_true(s->path[0] == '/' || (s->path[0] == '@' && s->path[1] != '\0'));
        break;
    case CRT_TARGET_TCP:
    case CRT_TARGET_RFC2217:
        g_assert_true(s->host != NULL && s->host[0] != '\0');
        g_assert_cmpuint(s->port, >=, 1);
        break;
    case CRT_TARGET_EXEC:
        g_assert_true(s->command != NULL && s->command[0] != '\0');
        g_assert_false(g_ascii_isspace(s->command[0]));
        break;
    case CRT_TARGET_SIM:
        g_assert_cmpint(s->sim_gen, <=, CRT_SIM_GEN_ECHO);
        break;
    case CRT_TARGET_UDEV:
        /* Something to match, every KEY=VALUE with both halves. */
        g_assert_true(s->usb_ids || s->match || s->usb_path || s->usb_serial);
        g_assert_cmpint(s->usb_interface, >=, -1);
        g_assert_cmpint(s->usb_interface, <=, 255);
        for (guint i = 0; s->match && s->match[i]; i++) {
            const char *eq = strchr(s->match[i], '=');
            g_assert_true(eq != NULL && eq != s->match[i] && eq[1] != '\0');
        }
        break;
    default:
        g_assert_not_reached();
    }
    g_assert_true(s->data_bits == 0 || (s->data_bits >= 5 && s->data_bits <= 8));
    g_assert_cmpuint(s->stop_bits, <=, 2);
    g_assert_cmpint(s->parity, <=, CRT_PARITY_ODD);
    g_assert_cmpint(s->flow, <=, CRT_FLOW_XONXOFF);
    g_assert_cmpuint(s->baud, <=, 4000000);
    g_assert_cmpuint(s->sim_rate, <=, 1000000);
    g_assert_cmpuint(s->sim_size, <=, 1048576);
    g_assert_cmpuint(s->sim_delay_min, <=, s->sim_delay_max);
    g_assert_cmpuint(s->sim_delay_max, <=, 3600000);
    g_assert_cmpint(s->sim_fail_errno, >=, 1);
    g_assert_cmpint(s->sim_fail_errno, <=, 4095);
}

static void check_good(const CrtTargetSpec *spec, const char *line)
{
    CrtTargetSpec again, copy;
    GError *error = NULL;

    assert_spec_in_range(spec, line);
    /* The text a spec keeps is what `target` shows and what `start` opens
     * again: it must mean the same spec. */
    g_assert_cmpint(crt_target_spec_parse(spec->text, &again, &error), ==, 0);
    g_assert_no_error(error);
    assert_spec_equal(&again, spec);
    crt_target_spec_clear(&again);
    crt_target_spec_copy(&copy, spec);
    assert_spec_equal(&copy, spec);
    crt_target_spec_clear(&copy);
}

static void check_bad(const CrtTargetSpec *spec, GError *error)
{
    static const CrtTargetSpec zero;

    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr(error->message, !=, "");
    /* A failed parse leaves nothing to clear. */
    g_assert_true(memcmp(spec, &zero, sizeof zero) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CrtTargetSpec spec;
    GError *error = NULL;
    char *line;
    int r;

    if (size > FUZZ_MAX_INPUT)
        return -1;
    line = fuzz_string(data, size);
    r = crt_target_spec_parse(line, &spec, &error);
    g_assert_true(r == 0 || r == -EINVAL);
    if (r == 0) {
        g_assert_no_error(error);
        check_good(&spec, line);
        crt_target_spec_clear(&spec);
    } else {
        check_bad(&spec, error);
        g_clear_error(&error);
    }
    /* Callers that want no message get the same answer. */
    g_assert_cmpint(crt_target_spec_parse(line, &spec, NULL), ==, r);
    if (r == 0)
        crt_target_spec_clear(&spec);
    g_free(line);
    return 0;
}
