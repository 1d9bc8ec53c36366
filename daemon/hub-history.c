/* crtfs - a hub's history and its replays (see hub-history.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/error.h>

#include "hub-history.h"

struct CrtHistory {
    CrtHistoryLimits limits;
    /* A ring of items, oldest first: slots[(head + i) & (cap - 1)]. */
    CrtHistItem **slots;
    guint cap, head, len;
    size_t bytes; /* what the items cost (item_cost), at most limits.bytes */
};

int crt_replay_parse(const char *suffix, CrtReplaySpec *out, GError **error)
{
    CrtReplaySpec s = {0};

    if (strcmp(suffix, "all") == 0)
        s.mode = CRT_REPLAY_ALL;
    else if (g_ascii_string_to_unsigned(suffix, 10, 1, CRT_REPLAY_MAX_LAST, &s.last,
                                        NULL))
        s.mode = CRT_REPLAY_LAST;
    else if (crt_duration_parse_ms(suffix, CRT_KEEP_MAX_AGE_MS, &s.age_ms))
        s.mode = CRT_REPLAY_AGE;
    else
        return crt_set_error(error, EINVAL,
                             "\"@%.32s\" is not a replay: use @N (entries back from the "
                             "newest, 1 to 1000000000), @DURATION (a whole number with "
                             "ms, s, min or h, at most 7 days) or @all",
                             suffix);
    *out = s;
    return 0;
}

/* What an item costs the budget: its bytes and its bookkeeping, with two
 * ring slots (the ring doubles when it grows), so the budget bounds all of
 * the history's memory. */
static size_t item_cost(const CrtHistItem *it)
{
    return sizeof *it + 2 * sizeof(CrtHistItem *) + it->length +
           (it->event ? strlen(it->event) + 1 : 0);
}

static CrtHistItem *item_new(guint64 seq, gint64 time_ns, gint64 mono_ns, int status,
                             const char *event, const void *data, size_t length)
{
    CrtHistItem *it = g_malloc(sizeof *it + length);

    it->refs = 1;
    it->seq = seq;
    it->time_ns = time_ns;
    it->mono_ns = mono_ns;
    it->status = status;
    it->event = g_strdup(event);
    it->length = length;
    if (length > 0)
        memcpy(it->data, data, length);
    return it;
}

static void item_unref(CrtHistItem *it)
{
    if (it && --it->refs == 0) {
        g_free(it->event);
        g_free(it);
    }
}

static CrtHistItem *slot(const CrtHistory *h, guint i)
{
    return h->slots[(h->head + i) & (h->cap - 1)];
}

CrtHistory *crt_history_new(void)
{
    return g_new0(CrtHistory, 1);
}

static void drop_oldest(CrtHistory *h)
{
    CrtHistItem *it = slot(h, 0);

    h->bytes -= item_cost(it);
    h->head = (h->head + 1) & (h->cap - 1);
    h->len--;
    item_unref(it);
}

static void clear(CrtHistory *h)
{
    while (h->len > 0)
        drop_oldest(h);
}

void crt_history_free(CrtHistory *h)
{
    if (!h)
        return;
    clear(h);
    g_free(h->slots);
    g_free(h);
}

gboolean crt_history_on(const CrtHistory *h)
{
    return crt_history_limits_on(&h->limits);
}

void crt_history_expire(CrtHistory *h, gint64 now_ns)
{
    gint64 max_ns = (gint64)h->limits.age_ms * 1000000;

    while (h->limits.age_ms > 0 && h->len > 0 && now_ns - slot(h, 0)->time_ns >= max_ns)
        drop_oldest(h);
}

/* The oldest go until the limits hold. */
static void enforce(CrtHistory *h, gint64 now_ns)
{
    while (h->len > 0 && (h->bytes > h->limits.bytes ||
                          (h->limits.last > 0 && h->len > h->limits.last)))
        drop_oldest(h);
    crt_history_expire(h, now_ns);
}

void crt_history_set_limits(CrtHistory *h, const CrtHistoryLimits *limits, gint64 now_ns)
{
    h->limits = *limits;
    if (!crt_history_limits_on(limits))
        clear(h);
    enforce(h, now_ns);
}

/* Room for one more slot: the ring doubles, so growing is rare. */
static void reserve(CrtHistory *h)
{
    guint cap = h->cap ? h->cap * 2 : 64;
    CrtHistItem **slots;

    if (h->len < h->cap)
        return;
    slots = g_new(CrtHistItem *, cap);
    for (guint i = 0; i < h->len; i++)
        slots[i] = slot(h, i);
    g_free(h->slots);
    h->slots = slots;
    h->cap = cap;
    h->head = 0;
}

void crt_history_record(CrtHistory *h, guint64 seq, gint64 time_ns, gint64 mono_ns,
                        int status, const char *event, const void *data, size_t length)
{
    CrtHistItem *it;

    if (!crt_history_on(h))
        return;
    if (!data)
        length = 0; /* completions without a buffer carry no bytes */
    /* Numbers without gaps: a replay finds entry N at its place. */
    if (h->len > 0 && slot(h, h->len - 1)->seq + 1 != seq)
        clear(h);
    it = item_new(seq, time_ns, mono_ns, status, event, data, length);
    if (item_cost(it) > h->limits.bytes) {
        clear(h);
        item_unref(it);
        return;
    }
    reserve(h);
    h->slots[(h->head + h->len) & (h->cap - 1)] = it;
    h->len++;
    h->bytes += item_cost(it);
    enforce(h, time_ns);
}

guint crt_history_count(const CrtHistory *h)
{
    return h->len;
}

size_t crt_history_bytes(const CrtHistory *h)
{
    return h->bytes;
}

guint64 crt_history_oldest(const CrtHistory *h)
{
    return h->len > 0 ? slot(h, 0)->seq : 0;
}

guint64 crt_history_first_since(const CrtHistory *h, gint64 since_ns)
{
    guint lo = 0, hi = h->len;

    /* Times grow with the numbers (up to clock steps): a binary search. */
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;

        if (slot(h, mid)->time_ns < since_ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->len ? slot(h, lo)->seq : 0;
}

/* Entry `seq`, or NULL when not held. */
static CrtHistItem *lookup(const CrtHistory *h, guint64 seq)
{
    guint64 oldest = crt_history_oldest(h);

    if (h->len == 0 || seq < oldest || seq - oldest >= h->len)
        return NULL;
    return slot(h, (guint)(seq - oldest));
}

/* ---- replays ----------------------------------------------------------- */

static CrtHistItem *marker_new(const char *word, guint64 at, gint64 now_ns)
{
    char *event = g_strdup_printf("%s%" G_GUINT64_FORMAT, word, at);
    CrtHistItem *it = item_new(0, now_ns, g_get_monotonic_time() * 1000, 0, event, NULL, 0);

    g_free(event);
    return it;
}

CrtReplayCursor *crt_replay_cursor_new(guint64 from, guint64 end, gboolean markers,
                                       gint64 now_ns)
{
    CrtReplayCursor *c = g_new0(CrtReplayCursor, 1);

    c->next = from;
    c->end = MAX(from, end);
    if (markers) {
        c->before = marker_new("replay:from=", from, now_ns);
        c->after = marker_new("live:from=", c->end, now_ns);
    }
    return c;
}

void crt_replay_cursor_free(CrtReplayCursor *c)
{
    if (!c)
        return;
    item_unref(c->before);
    item_unref(c->after);
    item_unref(c->item);
    g_free(c);
}

CrtHistItem *crt_replay_cursor_current(CrtReplayCursor *c, CrtHistory *h, guint64 *lost)
{
    guint64 oldest;

    if (c->item)
        return c->item;
    if (c->before) {
        c->item = c->before;
        c->before = NULL;
        return c->item;
    }
    if (c->next < c->end) {
        oldest = crt_history_oldest(h);
        if (h->len == 0 || oldest >= c->end) {
            *lost += c->end - c->next; /* all gone */
            c->next = c->end;
        } else if (c->next < oldest) {
            *lost += oldest - c->next;
            c->next = oldest;
        }
    }
    if (c->next < c->end) {
        c->item = lookup(h, c->next++);
        g_assert(c->item); /* held, and numbered without gaps */
        c->item->refs++;
        return c->item;
    }
    c->item = c->after;
    c->after = NULL;
    return c->item;
}

void crt_replay_cursor_next(CrtReplayCursor *c)
{
    item_unref(c->item);
    c->item = NULL;
    c->offset = 0;
}
