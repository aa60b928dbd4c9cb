/* Unit tests for net-handoff: RARP/GARP frames and OpenFlow 1.0 messages
 * checked byte by byte against the wire formats (RFC 903, RFC 826/5227,
 * OpenFlow 1.0.0 spec sections 5.3.3 and 5.3.6), MAC parsing, cookies, the
 * description a source sends (round trip and hostile input), and a whole
 * handoff in dry-run mode (the commands it would run, in order). */
#include <config.h>

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nh.h"

static const uint8_t MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x02, 0x10};

static void rarp_bytes(void **state)
{
    (void)state;
    /* broadcast dst, src MAC, 0x8035, htype 1, ptype 0x0800, 6, 4, op 3,
     * sha MAC, spa 0, tha MAC, tpa 0, zero padding to 60 */
    static const uint8_t want[NH_FRAME_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10, 0x80, 0x35,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x00, 0x00, 0x00};
    uint8_t f[NH_FRAME_LEN];
    memset(f, 0xaa, sizeof(f));
    nh_frame_rarp(MAC, f);
    assert_memory_equal(f, want, NH_FRAME_LEN);
    /* the frame the lab recipe measured with ovs-ofctl packet-out */
    static const char lab[] = "ffffffffffff0200000002108035000108000604000302000000021000000000"
                              "020000000210000000000000000000000000000000000000000000000000";
    for (unsigned i = 0; i < NH_FRAME_LEN; i++) {
        unsigned b;
        sscanf(lab + 2 * i, "%2x", &b);
        assert_int_equal(f[i], b);
    }
}

static void garp_bytes(void **state)
{
    (void)state;
    uint32_t ip;
    inet_pton(AF_INET, "10.2.0.10", &ip);
    static const uint8_t want[NH_FRAME_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10,
        10,   2,    0,    10,   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10,   2,    0,    10};
    uint8_t f[NH_FRAME_LEN];
    memset(f, 0xaa, sizeof(f));
    nh_frame_garp(MAC, ip, f);
    assert_memory_equal(f, want, NH_FRAME_LEN);
}

static void mac_text(void **state)
{
    (void)state;
    uint8_t m[6];
    char t[18];
    assert_int_equal(nh_mac_parse("02:00:00:00:02:10", m), 0);
    assert_memory_equal(m, MAC, 6);
    assert_int_equal(nh_mac_parse("02-00-00-00-02-10", m), 0);
    nh_mac_format(m, t);
    assert_string_equal(t, "02:00:00:00:02:10");
    assert_int_equal(nh_mac_parse("AA:BB:CC:DD:EE:F0", m), 0);
    nh_mac_format(m, t);
    assert_string_equal(t, "aa:bb:cc:dd:ee:f0");
    assert_int_equal(nh_mac_parse("01:00:5e:00:00:01", m), -MIG_EPARSE); /* multicast */
    assert_int_equal(nh_mac_parse("ff:ff:ff:ff:ff:ff", m), -MIG_EPARSE);
    assert_int_equal(nh_mac_parse("02:00:00:00:02", m), -MIG_EPARSE);
    assert_int_equal(nh_mac_parse("02:00:00:00:02:1g", m), -MIG_EPARSE);
    assert_int_equal(nh_mac_parse("02:00:00:00:02:100", m), -MIG_EPARSE);
    assert_int_equal(nh_mac_parse(NULL, m), -MIG_EPARSE);
}

static void flow_mod_bytes(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = nh_of_encode_flow_add(b, sizeof(b), 7, 0x4d4c123456000001ull, 100, MAC, -1, 10);
    assert_int_equal(n, 80);
    static const uint8_t want[80] = {
        0x01, 14, 0x00, 80, 0, 0, 0, 7,              /* OF1.0 FLOW_MOD, len 80, xid 7 */
        0x00, 0x3f, 0xff, 0xf7,                      /* wildcards: all but DL_DST (bit 3) */
        0, 0,                                        /* in_port */
        0, 0, 0, 0, 0, 0,                            /* dl_src */
        0x02, 0x00, 0x00, 0x00, 0x02, 0x10,          /* dl_dst */
        0, 0, 0, 0, 0, 0,                            /* vlan, pcp, pad, dl_type */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* tos, proto, pad, nw, tp */
        0x4d, 0x4c, 0x12, 0x34, 0x56, 0x00, 0x00, 0x01, /* cookie */
        0, 0, 0, 0, 0, 0,                            /* ADD, idle 0, hard 0 */
        0, 100,                                      /* priority */
        0xff, 0xff, 0xff, 0xff,                      /* buffer_id none */
        0xff, 0xff, 0, 0,                            /* out_port NONE, flags */
        0, 0, 0, 8, 0, 10, 0, 0};                    /* OUTPUT:10, max_len 0 */
    assert_memory_equal(b, want, 80);
    /* FLOOD for a source without an uplink */
    n = nh_of_encode_flow_add(b, sizeof(b), 8, 1, 100, MAC, -1, -1);
    assert_int_equal(b[76], 0xff);
    assert_int_equal(b[77], 0xfb);
    assert_int_equal(nh_of_encode_flow_add(b, 79, 9, 1, 100, MAC, -1, 1), 0); /* too small */
    /* onto a trunk for VLAN 10: SET_VLAN_VID(10), then OUTPUT:2 */
    n = nh_of_encode_flow_add(b, sizeof(b), 9, 1, 100, MAC, 10, 2);
    assert_int_equal(n, 88);
    assert_int_equal(b[3], 88);
    static const uint8_t vid[16] = {0, 1, 0, 8, 0, 10, 0, 0, 0, 0, 0, 8, 0, 2, 0, 0};
    assert_memory_equal(b + 72, vid, 16);
    /* to an access port: STRIP_VLAN, then OUTPUT:7 */
    n = nh_of_encode_flow_add(b, sizeof(b), 10, 1, 100, MAC, 0, 7);
    static const uint8_t strip[16] = {0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 8, 0, 7, 0, 0};
    assert_memory_equal(b + 72, strip, 16);
    /* a source without an uplink: SET_VLAN_VID(10), then one OUTPUT per
     * trunk port carrying VLAN 10 (not FLOOD: it would leave untagged) */
    const int trunks[2] = {2, 5};
    n = nh_of_encode_flow_add_ports(b, sizeof(b), 11, 1, 100, MAC, 10, trunks, 2);
    assert_int_equal(n, 96);
    assert_int_equal(b[3], 96);
    static const uint8_t multi[24] = {0, 1, 0, 8, 0, 10, 0, 0, 0, 0, 0, 8,
                                      0, 2, 0, 0, 0, 0, 0, 8, 0, 5, 0, 0};
    assert_memory_equal(b + 72, multi, 24);
    assert_int_equal(nh_of_encode_flow_add_ports(b, 95, 12, 1, 100, MAC, 10, trunks, 2), 0);
}

static void packet_out_bytes(void **state)
{
    (void)state;
    uint8_t b[256], f[NH_FRAME_LEN];
    nh_frame_rarp(MAC, f);
    size_t n = nh_of_encode_packet_out(b, sizeof(b), 0x01020304, 10, f, sizeof(f));
    assert_int_equal(n, 84);
    static const uint8_t want[24] = {0x01, 13,   0,    84,   1, 2, 3,  4, /* PACKET_OUT */
                                     0xff, 0xff, 0xff, 0xff,             /* no buffer */
                                     0,    10,                           /* in_port */
                                     0,    8,                            /* actions_len */
                                     0,    0,    0,    8,    0xff, 0xfa, 0, 0}; /* NORMAL */
    assert_memory_equal(b, want, 24);
    assert_memory_equal(b + 24, f, NH_FRAME_LEN);
}

static void cookies(void **state)
{
    (void)state;
    uint64_t a = nh_cookie("web01", 1), b = nh_cookie("web01", 2), c = nh_cookie("web02", 1);
    assert_int_equal(a >> 48, NH_COOKIE_TAG);
    assert_true(a != b);
    assert_int_equal(a & nh_cookie_domain_mask(), b & nh_cookie_domain_mask());
    assert_true((a & nh_cookie_domain_mask()) != (c & nh_cookie_domain_mask()));
    assert_int_equal(nh_cookie("web01", 0x1000001) & 0xffffff, 1);
    char t[160];
    nh_flow_text(t, sizeof(t), 0x4d4c000000000001ull, 100, MAC, -1, 7);
    assert_string_equal(t, "cookie=0x4d4c000000000001,priority=100,dl_dst=02:00:00:00:02:10,"
                           "actions=output:7");
    nh_flow_text(t, sizeof(t), 1, 100, MAC, 10, 2);
    assert_string_equal(t, "cookie=0x1,priority=100,dl_dst=02:00:00:00:02:10,"
                           "actions=mod_vlan_vid:10,output:2");
    nh_flow_text(t, sizeof(t), 1, 100, MAC, 0, 7);
    assert_string_equal(t, "cookie=0x1,priority=100,dl_dst=02:00:00:00:02:10,"
                           "actions=strip_vlan,output:7");
    const int trunks[2] = {2, 5};
    nh_flow_text_ports(t, sizeof(t), 1, 100, MAC, 10, trunks, 2);
    assert_string_equal(t, "cookie=0x1,priority=100,dl_dst=02:00:00:00:02:10,"
                           "actions=mod_vlan_vid:10,output:2,output:5");
}

/* Which ports carry the guest's VLAN to other hosts (ovs-vsctl's csv: the
 * bridge's ports, then Port name,tag,trunks, then Interface name,ofport). */
static void trunk_ports(void **state)
{
    (void)state;
    const char answer[] = "vifg\nlnk\nt2\nt3\ncvif\nxenbr0\n"
                          "t2,,10 20\nlnk,,\nother,,\nxenbr0,,\nvifg,10,\nt3,,30\ncvif,10,\n\n"
                          "xenbr0,65534\nlnk,2\nvifg,5\nt2,7\nt3,8\ncvif,1\nother,9\n";
    char out[sizeof(answer)];
    int ports[NH_MAX_FWD];
    unsigned n = 99;
    memcpy(out, answer, sizeof(answer));
    assert_int_equal(nh_ovs_parse_trunk_ports(out, "xenbr0", "vifg", 10, ports, &n), 0);
    assert_int_equal(n, 2); /* lnk (all VLANs) and t2 (10, 20); not the access ports,
                               not t3 (30 only), not another bridge's port, not LOCAL */
    assert_int_equal(ports[0], 2);
    assert_int_equal(ports[1], 7);
    memcpy(out, answer, sizeof(answer));
    assert_int_equal(nh_ovs_parse_trunk_ports(out, "xenbr0", "vifg", 0, ports, &n), 0);
    assert_int_equal(n, 1); /* untagged: only the trunk carrying every VLAN */
    assert_int_equal(ports[0], 2);
    char empty[] = "";
    assert_int_equal(nh_ovs_parse_trunk_ports(empty, "xenbr0", "vifg", 10, ports, &n), 0);
    assert_int_equal(n, 0);
}

static struct nh_handoff *source_with_vif(struct nh_opts *o)
{
    struct nh_handoff *h = NULL;
    uint32_t ips[2];
    inet_pton(AF_INET, "10.2.0.10", &ips[0]);
    inet_pton(AF_INET, "192.0.2.7", &ips[1]);
    assert_int_equal(nh_handoff_new(NULL, o, "web01", 5, &h), 0);
    assert_int_equal(nh_handoff_add_vif(h, MAC, "vif3.0", ips, 2), 0);
    return h;
}

static void description_round_trip(void **state)
{
    (void)state;
    struct nh_opts o;
    char *text = NULL, *text2 = NULL;
    struct nh_handoff *h, *d = NULL;
    nh_opts_init(&o);
    h = source_with_vif(&o);
    assert_int_equal(nh_handoff_encode(h, &text), 0);
    assert_non_null(strstr(text, "vif mac=02:00:00:00:02:10 name=vif3.0"));
    assert_non_null(strstr(text, "ip=10.2.0.10 ip=192.0.2.7"));
    assert_int_equal(nh_handoff_decode(NULL, &o, text, strlen(text), &d), 0);
    assert_int_equal(nh_handoff_nvifs(d), 1);
    assert_int_equal(nh_handoff_cookie(d), nh_handoff_cookie(h));
    assert_memory_equal(nh_handoff_vif(d, 0)->mac, MAC, 6);
    assert_int_equal(nh_handoff_vif(d, 0)->nips, 2);
    assert_int_equal(nh_handoff_encode(d, &text2), 0);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    nh_handoff_free(h);
    nh_handoff_free(d);
}

static void description_hostile(void **state)
{
    (void)state;
    struct nh_opts o;
    struct nh_handoff *d = NULL;
    nh_opts_init(&o);
    const char *bad[] = {
        "",
        "nh 2\ndomain a\ncookie 0x4d4c000000000001\n",
        "nh 1\ndomain a\n",                                              /* no cookie */
        "nh 1\ndomain a\ncookie 0x1234\n",                               /* not ours */
        "nh 1\ndomain a b\ncookie 0x4d4c000000000001\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=02:00:00:00:02:10\n", /* no name */
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=ff:ff:ff:ff:ff:ff name=x\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=02:00:00:00:02:10 name=x tag=5000\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=02:00:00:00:02:10 name=x;rm\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=02:00:00:00:02:10 name=x "
        "iface-id=\"q\"\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=02:00:00:00:02:10 name=x ip=1.2.3\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nvif mac=02:00:00:00:02:10 name=x what=1\n",
        "nh 1\ndomain a\ncookie 0x4d4c000000000001\nsomething else\n",
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = NULL;
        assert_int_equal(nh_handoff_decode(NULL, &o, bad[i], strlen(bad[i]), &d), -MIG_EPROTO);
        assert_null(d);
    }
    /* too many vifs, too long, embedded NUL */
    char big[NH_BLOB_MAX + 200] = "nh 1\ndomain a\ncookie 0x4d4c000000000001\n";
    for (int i = 0; i < NH_MAX_VIFS + 1; i++)
        strcat(big, "vif mac=02:00:00:00:02:10 name=x\n");
    assert_int_equal(nh_handoff_decode(NULL, &o, big, strlen(big), &d), -MIG_EPROTO);
    assert_int_equal(nh_handoff_decode(NULL, &o, "nh 1\0x", 6, &d), -MIG_EPROTO);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(nh_handoff_decode(NULL, &o, big, strlen(big), &d), -MIG_EPROTO);
}

/* A whole handoff in dry-run mode: every command, in order, both sides. */
static void dry_run_handoff(void **state)
{
    (void)state;
    char *out = NULL, *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    struct nh_opts o;
    struct nh_handoff *h, *d = NULL;
    nh_opts_init(&o);
    o.dry_run = f;
    o.rundir = "/run/ovs";
    o.uplink = "eth1";
    o.rounds = 3;
    h = source_with_vif(&o);
    assert_int_equal(nh_src_begin(h), 0);
    assert_int_equal(nh_handoff_encode(h, &text), 0);
    assert_int_equal(nh_handoff_decode(NULL, &o, text, strlen(text), &d), 0);
    assert_int_equal(nh_handoff_set_ifname(d, 0, "vif9.0"), 0);
    assert_int_equal(nh_dst_begin(d), 0);
    assert_int_equal(nh_dst_commit(d), 0);
    assert_int_equal(nh_src_commit(h), 0);
    assert_int_equal(nh_settle(d), 0);
    assert_int_equal(nh_settle(h), 0);
    fclose(f);
    const char *order[] = {
        "ovs-vsctl --timeout=10 port-to-br vif3.0 -- get Port vif3.0 tag",
        "ovs-vsctl --timeout=10 get Interface eth1 ofport",
        "ovsdb-client monitor unix:/run/ovs/db.sock Open_vSwitch Interface "
        "name,ofport,external_ids --format=json",
        "ovs-vsctl --timeout=10 port-to-br vif9.0",
        "ovs-ofctl add-flow xenbr0 cookie=0x4d4c",
        "dl_dst=02:00:00:00:02:10,actions=output:1\n",
        "ovs-ofctl packet-out xenbr0 'in_port=1 packet=ffffffffffff020000000210803500",
        "ovs-ofctl packet-out xenbr0 'in_port=1 packet=ffffffffffff02000000021008060001080006040001"
        "0200000002100a02000a0000000000000a02000a",
        "# after 50 ms:",
        "# after 100 ms:",
        "ovs-ofctl add-flow xenbr0 cookie=0x4d4c",
        "dl_dst=02:00:00:00:02:10,actions=output:2\n",
        "# settle 2000 ms",
        "ovs-ofctl del-flows xenbr0 cookie=0x4d4c",
        "/0xffffffffffffffff",
        "# settle 2000 ms",
        "ovs-ofctl del-flows xenbr0 cookie=0x4d4c",
    };
    const char *p = out;
    for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *q = strstr(p, order[i]);
        if (!q)
            fail_msg("missing or out of order: %s\n--- output:\n%s", order[i], out);
        p = q + strlen(order[i]);
    }
    free(text);
    free(out);
    nh_handoff_free(h);
    nh_handoff_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rarp_bytes),
        cmocka_unit_test(garp_bytes),
        cmocka_unit_test(mac_text),
        cmocka_unit_test(flow_mod_bytes),
        cmocka_unit_test(packet_out_bytes),
        cmocka_unit_test(cookies),
        cmocka_unit_test(description_round_trip),
        cmocka_unit_test(description_hostile),
        cmocka_unit_test(dry_run_handoff),
        cmocka_unit_test(trunk_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
