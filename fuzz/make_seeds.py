#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Seeds are real inputs where the repo has them (keepalived's captured adverts,
the contrib and fixture configs) and small hand-made ones otherwise, each framed
the way its target's entry in `splitguard::fuzzing` / `splitguard_watchdog::fuzzing`
reads its input. Run from anywhere; it only adds or rewrites files named `seed-*`
(inputs that fuzz runs found and that were kept are left alone).
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import pathlib
import struct
import urllib.parse

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"

# Must match watchdog/src/fuzzing.rs.
TOKEN = b"twilio-auth-token"
URL = "https://sg.example.invalid/reply/twilio"
SECRET = b"generic-secret"
NOW = 1_800_000_000


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def meta(path):
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def ipv4_header(src, dst, payload_len, ihl=5, ttl=255):
    total = ihl * 4 + payload_len
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0xC0, total, 1, 0, ttl, 112, 0,
                    ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return h + b"\x01" * (ihl * 4 - 20)


def advert(version, vrid, prio, count_addrs, interval, auth_type=0, auth=b"", src=None,
           dst=None, pseudo=True):
    """A VRRP message as keepalived builds it (for hand-made variants)."""
    addrs = b"".join(ipaddress.ip_address(a).packed for a in count_addrs)
    if version == 2:
        hdr = struct.pack("!BBBBBBH", 0x21, vrid, prio, len(count_addrs), auth_type, interval, 0)
        msg = hdr + addrs + auth.ljust(8, b"\0")
        pseudo_hdr = b""
    else:
        hdr = struct.pack("!BBBBHH", 0x31, vrid, prio, len(count_addrs), interval & 0xFFF, 0)
        msg = hdr + addrs
        s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
        if len(s) == 16:
            pseudo_hdr = s + d + struct.pack("!I", len(msg)) + b"\0\0\0\x70"
        elif pseudo:
            pseudo_hdr = s + d + struct.pack("!BBH", 0, 112, len(msg))
        else:
            pseudo_hdr = b""
    c = csum(pseudo_hdr + msg)
    return msg[:6] + struct.pack("!H", c) + msg[8:]


def ipv6_header(src, dst, payload_len, next_header=112, hop_limit=255):
    """A fixed IPv6 header as keepalived sends it (traffic class 0xc0)."""
    return struct.pack("!IHBB16s16s", (6 << 28) | (0xC0 << 20), payload_len, next_header,
                       hop_limit, ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed)


def first_frame(pcap_path):
    """The first frame of a little-endian pcap file (Ethernet and all)."""
    data = pcap_path.read_bytes()
    incl_len, = struct.unpack_from("<I", data, 24 + 8)
    return data[24 + 16:24 + 16 + incl_len]


def vrrp_seeds():
    fixtures = ROOT / "tests/fixtures/keepalived"
    for bin_path in sorted(fixtures.glob("*.bin")):
        name = bin_path.stem
        m = meta(fixtures / f"{name}.meta")
        vrrp = bin_path.read_bytes()
        src, dst = ipaddress.ip_address(m["src"]), ipaddress.ip_address(m["dst"])
        if m["family"] == "ipv4":
            put("vrrp_packet", f"{name}-datagram", b"\x00" + ipv4_header(m["src"], m["dst"], len(vrrp)) + vrrp)
            put("vrrp_packet", f"{name}-endpoints", b"\x02" + src.packed + dst.packed + vrrp)
        else:
            put("vrrp_packet", f"{name}-endpoints", b"\x04" + src.packed + dst.packed + vrrp)
    s4, g4 = "192.0.2.5", "224.0.0.18"
    v2_none = advert(2, 1, 100, ["192.0.2.3"], 1)
    put("vrrp_packet", "v2-noauth-options-padding",
        b"\x00" + ipv4_header(s4, g4, len(v2_none), ihl=6) + v2_none + b"\0" * 6)
    put("vrrp_packet", "v2-noaddrs", b"\x02" + bytes([192, 0, 2, 5, 224, 0, 0, 18]) + advert(2, 9, 0, [], 3))
    put("vrrp_packet", "v2-ah", b"\x02" + bytes([192, 0, 2, 5, 224, 0, 0, 18]) + advert(2, 9, 255, ["192.0.2.9"], 1, auth_type=2))
    v3 = advert(3, 52, 100, ["192.0.2.3", "192.0.2.4"], 100, src=s4, dst=g4, pseudo=False)
    put("vrrp_packet", "v3-ipv4-no-pseudo-header", b"\x03" + bytes([192, 0, 2, 5, 224, 0, 0, 18]) + v3)
    v6src, v6dst = "fe80::1", "ff02::12"
    addrs6 = [f"2001:db8::{i}" for i in range(1, 5)]
    v3_6 = advert(3, 200, 254, addrs6, 4095, src=v6src, dst=v6dst)
    put("vrrp_packet", "v3-ipv6-4addrs", b"\x04" + ipaddress.ip_address(v6src).packed + ipaddress.ip_address(v6dst).packed + v3_6)
    put("vrrp_packet", "truncated", b"\x02" + bytes([192, 0, 2, 5, 224, 0, 0, 18]) + v2_none[:7])
    put("vrrp_packet", "empty", b"")


def copy_files(target, paths):
    for p in paths:
        rel = p.relative_to(ROOT).as_posix().replace("/", "_")
        put(target, rel, p.read_bytes())


def config_seeds():
    copy_files("config", sorted((ROOT / "contrib/examples").glob("*.toml")))
    copy_files("config", sorted((ROOT / "contrib/keepalived").glob("*.toml")))
    copy_files("config", sorted((ROOT / "tests/fixtures/config").glob("*.toml")))


def import_seeds():
    copy_files("import_keepalived", sorted((ROOT / "contrib/keepalived").glob("*.conf")))
    copy_files("import_keepalived", sorted((ROOT / "tests/fixtures/import").rglob("*.conf")))


REPLIES = [
    "4821", "ACK 4821", "4821 ack", "4821.", "ok 4821", "4821 DEMOTE", "4821 demote 123456",
    "4821 RESUME 1234", "4821 MUTE 30m", "MUTE 4821 2h", "4821 mute 90 12345678", "mute 1d",
    "STATUS", "status 4242", "acknowledge, 48213; 9999", "release", "hello there", "",
    "\n\n> 4821 ACK\n4821 resume\n-- \nsig",
    "On Wed, 25 Nov 2026 splitguard wrote:\n> 4821", "Re: [SG-4821] ack", "4821 MUTE 0m",
    "4821 MUTE 99999999999999999999h",
]


def reply_text_seeds():
    for i, r in enumerate(REPLIES):
        put("reply_text", f"{i:02}", bytes([i % 2]) + r.encode())


MAILS = {
    "plain": """Return-Path: <Oncall@Example.COM>
From: On Call <Oncall@Example.COM>
To: splitguard <replies@example.com>
Subject: Re: [SG-4821] CRITICAL split_brain VIP 10.0.0.3 on lb02
Message-ID: <CAF+reply.1@mail.example.com>
In-Reply-To: <sg.lb02-1.1.mail0@splitguard.invalid>
References: <sg.lb02-1.1.mail0@splitguard.invalid>
Date: Wed, 25 Nov 2026 00:19:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

4821 ACK

On Wed, 25 Nov 2026 splitguard wrote:
> splitguard CRITICAL split_brain
""",
    "references": """From: a@example.com
Subject: Re: x
In-Reply-To: <sg.lb02-1.2.mail0@splitguard.invalid>
References: <sg.lb02-1.1.mail0@splitguard.invalid>
 <sg.lb02-1.2.mail0@splitguard.invalid>

ack
""",
    "qp-latin1": """From: =?UTF-8?Q?J=C3=B6rg?= <JOERG@example.de>
Subject: =?ISO-8859-1?Q?Re=3A_=5BSG-4821=5D_St=F6rung?=
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

4821 ACK =E4hm, ich k=FCmmere mich=
 drum
""",
    "base64-utf8": """From: ops@example.cn
Subject: =?UTF-8?B?UmU6IFtTRy00ODIxXSDmlYXpmpw=?=
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

NDgyMSDnoa7orqQK
""",
    "alternative": """From: b@example.com
Subject: Re: [SG-1234] warning
Message-ID: <alt@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="xx"

--xx
Content-Type: text/plain; charset=utf-8

1234 mute 2h 5555
--xx
Content-Type: text/html; charset=utf-8

<p>1234 mute 2h 5555</p>
--xx--
""",
    "html-only": """From: c@example.com
Subject: [SG-1234]
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><div>demote&nbsp;1234</div><blockquote>old</blockquote></body></html>
""",
    "auto-submitted": """From: vacation@example.com
Auto-Submitted: auto-replied
Subject: Out of office

I am away.
""",
    "report": """From: MAILER-DAEMON@example.com
Subject: Undelivered
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

failed
--b--
""",
    "null-return-path": "Return-Path: <>\nFrom: bounce@example.com\nSubject: x\n\nx\n",
    "precedence-bulk": "From: list@example.com\nPrecedence: bulk\nSubject: x\n\n4821\n",
    "no-from": "Subject: 4821\n\n4821\n",
    "iso-2022-jp": """From: =?ISO-2022-JP?B?GyRCJTUlJCVIGyhC?= <jp@example.jp>
Subject: =?ISO-2022-JP?B?UmU6IFtTRy00ODIxXQ==?=
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

4821 STATUS
""",
    "nested-multipart": """From: d@example.com
Subject: Re: [SG-4821]
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

resume 4821
--inner--
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAECAw==
--outer--
""",
}


def reply_mail_seeds():
    for name, mail in MAILS.items():
        put("reply_mail", name, mail.replace("\n", "\r\n"))
    put("reply_mail", "plain-lf", MAILS["plain"])


def twilio_sig(url, params):
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(TOKEN, data.encode(), hashlib.sha1).digest()).decode()


def generic_sig(ts, body):
    return "sha256=" + hmac.new(SECRET, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_seeds():
    forms = [
        [("MessageSid", "SM0123"), ("AccountSid", "AC0123"), ("From", "+15550002222"),
         ("To", "+15550001111"), ("Body", "4821 ACK"), ("NumMedia", "0")],
        [("From", "+15550002222"), ("Body", "4821 DEMOTE 1234"), ("MessageSid", "SM9")],
        [("Body", "Grüße: 4821 mute 30m & more=yes"), ("From", "+4915112345678")],
        [("Body", ""), ("From", "")],
    ]
    for i, params in enumerate(forms):
        body = urllib.parse.urlencode(params).encode()
        put("webhook_form", f"twilio-{i}", twilio_sig(URL, params).encode() + b"\n\n" + body)
    put("webhook_form", "twilio-bad-sig", b"AAAA\n\nFrom=%2B1555&Body=4821+ack&MessageSid=SMx")
    put("webhook_form", "twilio-raw", b"\n\nBody=%ZZ%e4%&&=&From==x+y%2")
    for i, doc in enumerate([{"from": "+15550002222", "text": "4821", "id": "g1"},
                             {"from": "a@b", "text": "STATUS 1234", "id": "x", "extra": [1, 2]}]):
        body = json.dumps(doc).encode()
        put("webhook_form", f"generic-{i}", f"{generic_sig(NOW, body)}\n{NOW}\n".encode() + body)
    body = b'{"from":"+1","text":"4821"}'
    put("webhook_form", "generic-missing-id", f"{generic_sig(NOW - 100, body)}\n{NOW - 100}\n".encode() + body)
    put("webhook_form", "generic-stale", f"{generic_sig(1000, body)}\n1000\n".encode() + body)
    put("webhook_form", "generic-huge-ts", b"sha256=00\n-9223372036854775808\n{}")


def ndp_seeds():
    target = bytes.fromhex("20010db8000000000000000000000003")
    mac = bytes.fromhex("020000000005")
    ns = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + target
    na = bytes([136, 0, 0, 0, 0x60, 0, 0, 0]) + target
    put("ndp", "ns-slla", ns + bytes([1, 1]) + mac)
    put("ndp", "ns-dad", ns)
    put("ndp", "na-tlla", na + bytes([2, 1]) + mac)
    put("ndp", "na-nonce-then-tlla", na + bytes([14, 1, 1, 2, 3, 4, 5, 6, 2, 1]) + mac)
    put("ndp", "na-zero-length-option", na + bytes([2, 0]) + mac)
    put("ndp", "na-option-overrun", na + bytes([2, 3]) + mac)
    put("ndp", "na-multicast-target", bytes([136, 0, 0, 0, 0, 0, 0, 0]) + bytes.fromhex("ff020000000000000000000000000001"))
    put("ndp", "echo-request", bytes([128, 0, 0, 0, 0, 1, 0, 1]) + b"splitguard-probe")
    put("ndp", "short", ns[:10])


def ipv6_advert_seeds():
    # Frames as the capture reads them: from the IPv6 header on (Ethernet's 14 bytes off).
    fixtures = ROOT / "tests/fixtures/keepalived"
    put("ipv6_advert", "keepalived-v3_ipv6", first_frame(fixtures / "v3_ipv6.pcap")[14:])
    put("ipv6_advert", "keepalived-v2_pass-ipv4", first_frame(fixtures / "v2_pass.pcap")[14:])
    src, group = "fe80::1", "ff02::12"
    addrs = [f"2001:db8::{i}" for i in range(1, 5)]
    v3 = advert(3, 200, 254, addrs, 4095, src=src, dst=group)
    put("ipv6_advert", "v3-4addrs", ipv6_header(src, group, len(v3)) + v3)
    put("ipv6_advert", "v3-padded", ipv6_header(src, group, len(v3)) + v3 + b"\0" * 6)
    uni = advert(3, 7, 100, ["fe80::7"], 100, src=src, dst="fe80::2")
    put("ipv6_advert", "v3-unicast-hop64", ipv6_header(src, "fe80::2", len(uni), hop_limit=64) + uni)
    no_pseudo = v3[:6] + struct.pack("!H", csum(v3[:6] + b"\0\0" + v3[8:])) + v3[8:]
    put("ipv6_advert", "v3-no-pseudo-header", ipv6_header(src, group, len(no_pseudo)) + no_pseudo)
    v2 = advert(2, 1, 100, ["192.0.2.3"], 1)
    put("ipv6_advert", "v2-over-ipv6", ipv6_header(src, group, len(v2)) + v2)
    put("ipv6_advert", "hop-by-hop-first", ipv6_header(src, group, len(v3), next_header=0) + v3)
    put("ipv6_advert", "payload-overrun", ipv6_header(src, group, len(v3) + 8) + v3)
    put("ipv6_advert", "short-header", ipv6_header(src, group, len(v3))[:30])


def witness_confirm_seeds():
    # Mode byte 0: a received datagram (see arbiter/src/witness/confirm.rs);
    # mode 1: fields to encode. Sealed with node/src/fuzzing.rs's WITNESS_KEY.
    key = b"splitguard-fuzz-witness-key"
    def datagram(name, nonce, echo, entries):
        flags = 1 if echo is not None else 0
        head = b"SGWC" + bytes([1, flags, len(name)]) + struct.pack("!HQQ", len(entries), nonce, echo or 0)
        body = head + name + b"".join(bytes([fam, vrid, fl]) for fam, vrid, fl in entries)
        return body + hmac.new(key, body, hashlib.sha256).digest()
    good = datagram(b"lb02", (7 << 32) | 1, (9 << 32) | 4, [(4, 51, 1), (6, 52, 0)])
    put("witness_confirm", "sealed", b"\x00" + good)
    put("witness_confirm", "sealed-no-echo", b"\x00" + datagram(b"lb01", 1, None, []))
    put("witness_confirm", "bad-tag", b"\x00" + good[:-1] + bytes([good[-1] ^ 1]))
    put("witness_confirm", "truncated", b"\x00" + good[:30])
    put("witness_confirm", "fields", b"\x01\x04lb02" + bytes(8) + bytes(8) + bytes([2, 51, 3, 52]))


def main():
    for target in ["vrrp_packet", "config", "import_keepalived", "reply_text", "reply_mail",
                   "webhook_form", "ndp", "ipv6_advert", "witness_confirm"]:
        d = CORPUS / target
        if d.exists():
            for old in d.glob("seed-*"):
                old.unlink()
    vrrp_seeds()
    config_seeds()
    import_seeds()
    reply_text_seeds()
    reply_mail_seeds()
    webhook_seeds()
    ndp_seeds()
    ipv6_advert_seeds()
    witness_confirm_seeds()


if __name__ == "__main__":
    main()
