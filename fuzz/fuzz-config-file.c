/* crtfs fuzzing - the mount-time config file: crt_config_file_parse() of
 * daemon/config-file.c, which checks the whole file before the daemon mounts
 * (the GKeyFile, each group's name, crt_config_load_group() and the target
 * spec), on the input as the file's text.  Nothing is mounted; no file is
 * read.
 *
 * Promises checked: a refused file comes with a message; in a file that is
 * accepted every group is a valid directory name, loads on its own with
 * crt_config_load_group() to a target spec that parses (or none), and has
 * an engine view that is either accepted or refused with a message (a bad
 * combination only shows at `start`, so it does not fail the mount).
 *
 * fuzz-sources: libcrtfs_a libcrtfsd_a
 */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include <crtfs/target.h>

#include "config-file.h"
#include "fuzz.h"
#include "target-config.h"

static void check_group(GKeyFile *kf, const char *group)
{
    CrtConfig cfg;
    CrtEngineConfig ec;
    CrtTargetSpec spec;
    GError *error = NULL;
    char *target = (char *)"unset";
    gboolean autostart = 2;
    int r;

    g_assert_cmpint(crt_target_name_check(group), ==, 0);
    crt_config_init(&cfg);
    r = crt_config_load_group(&cfg, kf, group, &target, &autostart, &error);
    g_assert_no_error(error);
    g_assert_cmpint(r, ==, 0);
    g_assert_true(autostart == TRUE || autostart == FALSE);
    if (target != NULL) {
        g_assert_cmpstr(target, !=, "");
        g_assert_cmpint(crt_target_spec_parse(target, &spec, &error), ==, 0);
        g_assert_no_error(error);
        crt_target_spec_clear(&spec);
        g_free(target);
    }
    r = crt_config_to_engine(&cfg, &ec, &error);
    g_assert_true(r == 0 || r == -EINVAL);
    g_assert_true((r == 0) == (error == NULL));
    g_clear_error(&error);
    crt_config_clear(&cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *error = NULL;
    GKeyFile *kf;

    if (size > FUZZ_MAX_INPUT)
        return -1;
    kf = crt_config_file_parse((const char *)data, (gssize)size, &error);
    if (kf == NULL) {
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, !=, "");
        g_error_free(error);
        return 0;
    }
    g_assert_no_error(error);
    {
        char **groups = g_key_file_get_groups(kf, NULL);

        for (size_t i = 0; groups[i] != NULL; i++)
            check_group(kf, groups[i]);
        g_strfreev(groups);
    }
    g_key_file_unref(kf);
    return 0;
}
