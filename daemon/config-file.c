/* crtfs daemon - the mount-time configuration file (see config-file.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <crtfs/target.h>

#include "config-file.h"
#include "target-config.h"

static const char embedded_config[] = "[demo]\n"
                                      "target=sim:records rate=20\n"
                                      "autostart=true\n";

int crt_target_name_check(const char *name)
{
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
        return EINVAL;
    if (strlen(name) > NAME_MAX)
        return ENAMETOOLONG;
    if (strcmp(name, "version") == 0 || strcmp(name, "metrics") == 0 ||
        strcmp(name, "reload") == 0)
        return EEXIST;
    return 0;
}

/* One group: its name, its keys, its target spec. */
static gboolean check_group(GKeyFile *kf, const char *group, GError **error)
{
    char *target = NULL;
    gboolean autostart, ok;
    CrtConfig cfg;

    if (crt_target_name_check(group) != 0) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                    "[%s]: not a valid target name (a directory name other than version, "
                    "metrics and reload)",
                    group);
        return FALSE;
    }
    crt_config_init(&cfg);
    ok = crt_config_load_group(&cfg, kf, group, &target, &autostart, error) == 0;
    if (ok && target && *target) {
        CrtTargetSpec spec;

        ok = crt_target_spec_parse(target, &spec, error) == 0;
        if (ok)
            crt_target_spec_clear(&spec);
        else
            g_prefix_error(error, "[%s] target: ", group);
    }
    crt_config_clear(&cfg);
    g_free(target);
    return ok;
}

GKeyFile *crt_config_file_parse(const char *text, gssize len, GError **error)
{
    GKeyFile *kf = g_key_file_new();
    gboolean ok = g_key_file_load_from_data(kf, text, (gsize)len, G_KEY_FILE_NONE, error);
    char **groups = ok ? g_key_file_get_groups(kf, NULL) : NULL;

    for (guint i = 0; ok && groups[i]; i++)
        ok = check_group(kf, groups[i], error);
    g_strfreev(groups);
    if (!ok) {
        g_key_file_unref(kf);
        return NULL;
    }
    return kf;
}

GKeyFile *crt_config_file_load(const char *path, GError **error)
{
    char *text = NULL;
    gsize len = 0;
    GKeyFile *kf;

    if (!path)
        return crt_config_file_parse(embedded_config, -1, error);
    if (!g_file_get_contents(path, &text, &len, error))
        return NULL;
    kf = crt_config_file_parse(text, (gssize)len, error);
    g_free(text);
    return kf;
}
