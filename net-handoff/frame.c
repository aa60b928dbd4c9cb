/*
 * frame.c: the announcement frames, built byte by byte (RFC 903 RARP as
 * QEMU's announce sends it; RFC 5227 gratuitous ARP request), and MAC text.
 *
 * Entry points: nh_frame_rarp, nh_frame_garp, nh_mac_parse, nh_mac_format.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "nh.h"

/* Ethernet header + ARP/RARP body: ff*6, src, type, htype 1, ptype IPv4,
 * hlen 6, plen 4, op, sha, spa, tha, tpa; zero padding to 60 bytes. */
static void arp_frame(uint8_t *f, uint16_t ethertype, uint16_t op, const uint8_t sha[6],
                      uint32_t spa_be, const uint8_t tha[6], uint32_t tpa_be)
{
    memset(f, 0, NH_FRAME_LEN);
    memset(f, 0xff, 6);
    memcpy(f + 6, sha, 6);
    f[12] = (uint8_t)(ethertype >> 8);
    f[13] = (uint8_t)ethertype;
    f[14] = 0x00, f[15] = 0x01;         /* hardware: Ethernet */
    f[16] = 0x08, f[17] = 0x00;         /* protocol: IPv4 */
    f[18] = 6, f[19] = 4;
    f[20] = (uint8_t)(op >> 8);
    f[21] = (uint8_t)op;
    memcpy(f + 22, sha, 6);
    memcpy(f + 28, &spa_be, 4);
    memcpy(f + 32, tha, 6);
    memcpy(f + 38, &tpa_be, 4);
}

void nh_frame_rarp(const uint8_t mac[6], uint8_t out[NH_FRAME_LEN])
{
    arp_frame(out, 0x8035, 3 /* reverse request */, mac, 0, mac, 0);
}

void nh_frame_garp(const uint8_t mac[6], uint32_t ip_be, uint8_t out[NH_FRAME_LEN])
{
    static const uint8_t zero[6];
    arp_frame(out, 0x0806, 1 /* request */, mac, ip_be, zero, ip_be);
}

int nh_mac_parse(const char *text, uint8_t mac_out[6])
{
    uint8_t m[6];
    if (!text || strlen(text) != 17)
        return -MIG_EPARSE;
    for (int i = 0; i < 6; i++) {
        int hi = mig__hexval(text[3 * i]), lo = mig__hexval(text[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-'))
            return -MIG_EPARSE;
        m[i] = (uint8_t)(hi << 4 | lo);
    }
    if (m[0] & 1) /* multicast/broadcast: never a vif's address */
        return -MIG_EPARSE;
    memcpy(mac_out, m, 6);
    return 0;
}

void nh_mac_format(const uint8_t mac[6], char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}
