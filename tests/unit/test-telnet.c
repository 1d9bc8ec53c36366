/* crtfs tests - the Telnet codec (lib/targets/telnet.c): IAC IAC and
 * subnegotiations decoded the same wherever the input is split, data
 * escaped, the answers to a real ser2net's greeting, refusals of options
 * nobody asked for (once), and no negotiation loops.
 */
#include "config.h"

#include <string.h>

#include "telnet.h"

enum { IAC = 255, WILL = 251, WONT = 252, DO = 253, DONT = 254, SB = 250, SE = 240 };

static const int wanted[] = {CRT_TNOPT_BINARY, CRT_TNOPT_SGA, CRT_TNOPT_COM_PORT, -1};
static const int wanted_remote[] = {CRT_TNOPT_BINARY, CRT_TNOPT_SGA, -1};

typedef struct {
    GByteArray *subnegs; /* option, len, payload ... for every one seen */
    guint count;
} Seen;

static void on_subneg(guint8 option, const guint8 *payload, size_t len,
                      gboolean truncated, gpointer data)
{
    Seen *s = data;
    guint8 head[2] = {option, (guint8)len};

    g_assert_false(truncated);
    g_byte_array_append(s->subnegs, head, 2);
    g_byte_array_append(s->subnegs, payload, (guint)len);
    s->count++;
}

static CrtTelnet *codec(Seen *s)
{
    s->subnegs = g_byte_array_new();
    s->count = 0;
    return crt_telnet_new(wanted, wanted_remote, on_subneg, s);
}

static void seen_clear(Seen *s)
{
    g_byte_array_unref(s->subnegs);
}

/* Decode `in` in the pieces `cuts` gives (ascending positions), data into
 * `out`; returns the data length. */
static size_t decode_cut(CrtTelnet *tn, const guint8 *in, size_t len, const size_t *cuts,
                         guint ncuts, guint8 *out)
{
    size_t from = 0, n = 0;
    guint8 *buf = g_malloc(len + 1);

    for (guint i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;

        /* In place, as the target decodes its read buffer. */
        memcpy(buf, in + from, to - from);
        size_t got = crt_telnet_decode(tn, buf, to - from, buf);
        memcpy(out + n, buf, got);
        n += got;
        from = to;
    }
    g_free(buf);
    return n;
}

static void check_every_split(const guint8 *in, size_t len, const guint8 *want,
                              size_t want_len, const guint8 *want_sub, size_t sub_len,
                              guint want_count)
{
    guint8 *out = g_malloc(len + 1);

    /* Every split into two pieces, and into three. */
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            Seen s;
            CrtTelnet *tn = codec(&s);
            size_t cuts[2] = {a, b};
            size_t n = decode_cut(tn, in, len, cuts, 2, out);

            g_assert_cmpmem(out, n, want, want_len);
            g_assert_cmpuint(s.count, ==, want_count);
            g_assert_cmpmem(s.subnegs->data, s.subnegs->len, want_sub, sub_len);
            g_assert_cmpuint(crt_telnet_pending(tn)->len, ==, 0);
            crt_telnet_free(tn);
            seen_clear(&s);
        }
    }
    /* And a byte at a time. */
    {
        Seen s;
        CrtTelnet *tn = codec(&s);
        size_t *cuts = g_new(size_t, len);
        size_t n;

        for (size_t i = 0; i < len; i++)
            cuts[i] = i;
        n = decode_cut(tn, in, len, cuts, (guint)len, out);
        g_assert_cmpmem(out, n, want, want_len);
        g_assert_cmpuint(s.count, ==, want_count);
        g_free(cuts);
        crt_telnet_free(tn);
        seen_clear(&s);
    }
    g_free(out);
}

static void test_iac_iac_split(void)
{
    static const guint8 in[] = {'a', IAC, IAC, 'b', IAC, IAC, IAC, IAC, 'c'};
    static const guint8 want[] = {'a', 0xff, 'b', 0xff, 0xff, 'c'};

    check_every_split(in, sizeof in, want, sizeof want, NULL, 0, 0);
}

static void test_subneg_split(void)
{
    /* A SET-BAUDRATE answer whose value holds 0xFF, between data bytes
     * that are 0xFF too. */
    static const guint8 in[] = {IAC, IAC, 'x', IAC, SB,  44,   101, 0,
                                IAC, IAC, 0,   0,   IAC, SE,   IAC, IAC,
                                'y', IAC, SB,  44,  107, 0x30, IAC, SE};
    static const guint8 want[] = {0xff, 'x', 0xff, 'y'};
    static const guint8 sub[] = {44, 5, 101, 0, 0xff, 0, 0, 44, 2, 107, 0x30};

    check_every_split(in, sizeof in, want, sizeof want, sub, sizeof sub, 2);
}

static void test_commands_consumed(void)
{
    /* NOP, AYT, GA, a stray SE, and a subnegotiation broken off by a
     * negotiation (which is still taken). */
    static const guint8 in[] = {'a', IAC, 241, 'b', IAC, 246, IAC, 249, IAC, SE,
                                'c', IAC, SB,  44,  1,   2,   IAC, DO,  24,  'd'};
    static const guint8 want[] = {'a', 'b', 'c', 'd'};
    static const guint8 answer[] = {IAC, WONT, 24};
    Seen s;
    CrtTelnet *tn = codec(&s);
    guint8 out[sizeof in];
    size_t n = crt_telnet_decode(tn, in, sizeof in, out);

    g_assert_cmpmem(out, n, want, sizeof want);
    g_assert_cmpuint(s.count, ==, 0);
    g_assert_cmpmem(crt_telnet_pending(tn)->data, crt_telnet_pending(tn)->len, answer,
                    sizeof answer);
    crt_telnet_free(tn);
    seen_clear(&s);
}

static void take_pending(CrtTelnet *tn, GByteArray *into)
{
    GByteArray *p = crt_telnet_pending(tn);

    if (into)
        g_byte_array_append(into, p->data, p->len);
    g_byte_array_set_size(p, 0);
}

/* What ser2net 4.3 sends first on a telnet(rfc2217) port, and what we
 * answer: only DONT ECHO (everything else agrees with what we asked). */
static void test_ser2net_greeting(void)
{
    static const guint8 start[] = {IAC, WILL, 0,  IAC, DO,  0,    IAC, WILL,
                                   3,   IAC,  DO, 3,   IAC, WILL, 44};
    static const guint8 greeting[] = {IAC,  WILL, 3,    IAC,  DO,  3,   IAC,
                                      WILL, 1,    IAC,  DONT, 1,   IAC, DO,
                                      0,    IAC,  WILL, 0,    IAC, DO,  44};
    static const guint8 answer[] = {IAC, DONT, 1};
    Seen s;
    CrtTelnet *tn = codec(&s);
    guint8 out[sizeof greeting];
    GByteArray *sent = g_byte_array_new();

    crt_telnet_start(tn);
    take_pending(tn, sent);
    g_assert_cmpmem(sent->data, sent->len, start, sizeof start);
    g_assert_false(crt_telnet_settled(tn));
    g_assert_cmpuint(crt_telnet_decode(tn, greeting, sizeof greeting, out), ==, 0);
    g_assert_cmpmem(crt_telnet_pending(tn)->data, crt_telnet_pending(tn)->len, answer,
                    sizeof answer);
    g_assert_true(crt_telnet_settled(tn));
    g_assert_true(crt_telnet_local_enabled(tn, CRT_TNOPT_COM_PORT));
    g_assert_true(crt_telnet_local_enabled(tn, CRT_TNOPT_BINARY));
    g_assert_true(crt_telnet_remote_enabled(tn, CRT_TNOPT_BINARY));
    g_assert_true(crt_telnet_remote_enabled(tn, CRT_TNOPT_SGA));
    g_assert_false(crt_telnet_remote_enabled(tn, CRT_TNOPT_ECHO));
    /* Saying it all again changes nothing and gets no answer. */
    take_pending(tn, NULL);
    crt_telnet_decode(tn, greeting, sizeof greeting, out);
    g_assert_cmpuint(crt_telnet_pending(tn)->len, ==, 0);
    g_byte_array_unref(sent);
    crt_telnet_free(tn);
    seen_clear(&s);
}

static void test_refuse_unknown_once(void)
{
    static const guint8 asks[] = {IAC, DO, 24, IAC, WILL, 31, IAC, DO, 1, IAC, WILL, 5};
    static const guint8 answer[] = {IAC, WONT, 24, IAC, DONT, 31,
                                    IAC, WONT, 1,  IAC, DONT, 5};
    Seen s;
    CrtTelnet *tn = codec(&s);
    guint8 out[sizeof asks];

    crt_telnet_decode(tn, asks, sizeof asks, out);
    g_assert_cmpmem(crt_telnet_pending(tn)->data, crt_telnet_pending(tn)->len, answer,
                    sizeof answer);
    take_pending(tn, NULL);
    /* A peer that asks again is not answered again. */
    crt_telnet_decode(tn, asks, sizeof asks, out);
    g_assert_cmpuint(crt_telnet_pending(tn)->len, ==, 0);
    /* Refusals of what is off anyway need no answer. */
    static const guint8 offs[] = {IAC, DONT, 24, IAC, WONT, 31, IAC, DONT, 77};
    crt_telnet_decode(tn, offs, sizeof offs, out);
    g_assert_cmpuint(crt_telnet_pending(tn)->len, ==, 0);
    crt_telnet_free(tn);
    seen_clear(&s);
}

static void test_comport_refused(void)
{
    static const guint8 refusal[] = {IAC, DONT, 44, IAC, DO,  0,    IAC, WILL,
                                     0,   IAC,  DO, 3,   IAC, WILL, 3};
    Seen s;
    CrtTelnet *tn = codec(&s);
    guint8 out[sizeof refusal];

    crt_telnet_start(tn);
    take_pending(tn, NULL);
    crt_telnet_decode(tn, refusal, sizeof refusal, out);
    g_assert_cmpuint(crt_telnet_pending(tn)->len, ==, 0);
    g_assert_true(crt_telnet_settled(tn));
    g_assert_false(crt_telnet_local_enabled(tn, CRT_TNOPT_COM_PORT));
    g_assert_true(crt_telnet_local_refused(tn, CRT_TNOPT_COM_PORT));
    /* An option that was on and is turned off is acknowledged, once. */
    static const guint8 off[] = {IAC, DONT, 3, IAC, DONT, 3};
    static const guint8 ack[] = {IAC, WONT, 3};
    crt_telnet_decode(tn, off, sizeof off, out);
    g_assert_cmpmem(crt_telnet_pending(tn)->data, crt_telnet_pending(tn)->len, ack,
                    sizeof ack);
    crt_telnet_free(tn);
    seen_clear(&s);
}

/* Two codecs talking: one wants options the other refuses or wants too;
 * the exchange ends within a few rounds, with both sides agreeing. */
static void test_no_loops(void)
{
    static const int a_local[] = {0, 3, 44, 24, -1};
    static const int a_remote[] = {0, 3, 1, -1};
    static const int b_local[] = {0, 3, -1};
    static const int b_remote[] = {0, 44, -1};
    CrtTelnet *a = crt_telnet_new(a_local, a_remote, NULL, NULL);
    CrtTelnet *b = crt_telnet_new(b_local, b_remote, NULL, NULL);
    GByteArray *wire = g_byte_array_new();
    guint8 out[256];
    guint rounds = 0;

    crt_telnet_start(a);
    crt_telnet_start(b);
    while (crt_telnet_pending(a)->len || crt_telnet_pending(b)->len) {
        g_assert_cmpuint(++rounds, <, 5);
        g_byte_array_set_size(wire, 0);
        take_pending(a, wire);
        g_assert_cmpuint(crt_telnet_decode(b, wire->data, wire->len, out), ==, 0);
        g_byte_array_set_size(wire, 0);
        take_pending(b, wire);
        g_assert_cmpuint(crt_telnet_decode(a, wire->data, wire->len, out), ==, 0);
    }
    g_assert_true(crt_telnet_settled(a));
    g_assert_true(crt_telnet_settled(b));
    g_assert_true(crt_telnet_local_enabled(a, 44) && crt_telnet_remote_enabled(b, 44));
    g_assert_true(crt_telnet_local_enabled(a, 0) && crt_telnet_remote_enabled(b, 0));
    g_assert_true(crt_telnet_local_enabled(b, 0) && crt_telnet_remote_enabled(a, 0));
    g_assert_false(crt_telnet_local_enabled(a, 24) || crt_telnet_remote_enabled(a, 1));
    g_assert_true(crt_telnet_local_refused(a, 24));
    g_byte_array_unref(wire);
    crt_telnet_free(a);
    crt_telnet_free(b);
}

static void make_binary(CrtTelnet *tn)
{
    static const guint8 yes[] = {IAC, DO, 0, IAC, WILL, 0};
    guint8 out[8];

    crt_telnet_start(tn);
    crt_telnet_decode(tn, yes, sizeof yes, out);
    take_pending(tn, NULL);
}

/* Every byte value survives encoding and decoding, in binary mode. */
static void test_all_bytes_round_trip(void)
{
    Seen s, r;
    CrtTelnet *tx = codec(&s), *rx = codec(&r);
    guint8 all[512];
    GByteArray *wire = g_byte_array_new();
    guint8 *out;
    size_t n;

    make_binary(tx);
    make_binary(rx);
    for (int i = 0; i < 512; i++)
        all[i] = (guint8)(i < 256 ? i : 511 - i);
    crt_telnet_encode(tx, all, sizeof all, wire);
    g_assert_cmpuint(wire->len, ==, sizeof all + 2); /* two 0xFF, doubled */
    out = g_malloc(wire->len);
    n = crt_telnet_decode(rx, wire->data, wire->len, out);
    g_assert_cmpmem(out, n, all, sizeof all);
    g_assert_cmpuint(r.count, ==, 0);
    g_free(out);
    g_byte_array_unref(wire);
    crt_telnet_free(tx);
    crt_telnet_free(rx);
    seen_clear(&s);
    seen_clear(&r);
}

/* Outside BINARY a bare CR goes as CR NUL, and comes back as CR. */
static void test_cr_nul_outside_binary(void)
{
    static const guint8 data[] = {'a', '\r', 'b', '\r', '\n', 0xff, '\r'};
    static const guint8 wire_want[] = {'a',  '\r', 0,    'b',  '\r',
                                       '\n', 0xff, 0xff, '\r', 0};
    Seen s;
    CrtTelnet *tn = codec(&s);
    GByteArray *wire = g_byte_array_new();
    guint8 out[sizeof wire_want];
    size_t n;

    crt_telnet_encode(tn, data, sizeof data, wire);
    g_assert_cmpmem(wire->data, wire->len, wire_want, sizeof wire_want);
    n = crt_telnet_decode(tn, wire->data, wire->len, out);
    g_assert_cmpmem(out, n, data, sizeof data);
    g_byte_array_unref(wire);
    crt_telnet_free(tn);
    seen_clear(&s);
}

static void test_subneg_encode(void)
{
    static const guint8 payload[] = {1, 0, 0, 0xff, 0};
    static const guint8 want[] = {IAC, SB, 44, 1, 0, 0, 0xff, 0xff, 0, IAC, SE};
    GByteArray *out = g_byte_array_new();

    crt_telnet_subneg(44, payload, sizeof payload, out);
    g_assert_cmpmem(out->data, out->len, want, sizeof want);
    g_byte_array_unref(out);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/telnet/iac-iac-every-split", test_iac_iac_split);
    g_test_add_func("/telnet/subneg-every-split", test_subneg_split);
    g_test_add_func("/telnet/commands-consumed", test_commands_consumed);
    g_test_add_func("/telnet/ser2net-greeting", test_ser2net_greeting);
    g_test_add_func("/telnet/refuse-unknown-once", test_refuse_unknown_once);
    g_test_add_func("/telnet/com-port-refused", test_comport_refused);
    g_test_add_func("/telnet/no-loops", test_no_loops);
    g_test_add_func("/telnet/all-bytes-round-trip", test_all_bytes_round_trip);
    g_test_add_func("/telnet/cr-nul-outside-binary", test_cr_nul_outside_binary);
    g_test_add_func("/telnet/subneg-encode", test_subneg_encode);
    return g_test_run();
}
