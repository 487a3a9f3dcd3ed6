#!/usr/bin/env python3
"""Idle CPU of `splitguard watch` beside keepalived, against the tutorial's
backup-side loop (`while true; do ip a | grep VIP; done`), measured the same
way: each runs WINDOW seconds in the backup's namespace as a child of this
script, and its CPU (its own plus every reaped descendant's: getrusage of the
children) is divided by the wall time.

Builds its own namespaces (TEST-NET-1 only: lb01 .5, lb02 .6, VIP .3), runs
keepalived 2.2.7 on both nodes, and deletes everything at the end, also on
failure. Needs root, keepalived, and a release build of splitguard.

usage: contrib/bench/watch_vs_loop.py [--window 60] [--splitguard target/release/splitguard]
"""
import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("--window", type=float, default=60.0)
p.add_argument("--splitguard", default="target/release/splitguard")
args = p.parse_args()

tag = f"sgwl{os.getpid()}"
br, lb01, lb02 = f"{tag}br", f"{tag}a", f"{tag}b"
tmp = tempfile.mkdtemp(prefix=f"{tag}-")
procs = []


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def cleanup():
    for pr in procs:
        if pr.poll() is None:
            pr.kill()
            pr.wait()
    for ns in (br, lb01, lb02):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def ka_conf(node, prio):
    return (
        f"global_defs {{\n router_id {node}\n}}\nvrrp_instance VI_1 {{\n state BACKUP\n"
        f" interface eth0\n virtual_router_id 51\n priority {prio}\n advert_int 1\n"
        " authentication {\n  auth_type PASS\n  auth_pass 1111\n }\n"
        " virtual_ipaddress {\n  192.0.2.3/24 dev eth0 label eth0:1\n }\n}\n"
    )


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(argv):
    """CPU % of one core used by argv (and all it spawns) over the window."""
    before = children_cpu()
    start = time.monotonic()
    pr = subprocess.Popen(["ip", "netns", "exec", lb02] + argv,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    time.sleep(args.window)
    os.killpg(pr.pid, signal.SIGTERM)
    pr.wait()
    wall = time.monotonic() - start
    return 100.0 * (children_cpu() - before) / wall


try:
    for ns in (br, lb01, lb02):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", br, "link", "set", "br0", "up")
    for ns, addr in ((lb01, "192.0.2.5"), (lb02, "192.0.2.6")):
        port = f"p{ns[-1]}"
        sh("ip", "-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", br, "link", "set", port, "master", "br0")
        sh("ip", "-n", br, "link", "set", port, "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    for ns, node, prio in ((lb01, "lb01", 150), (lb02, "lb02", 100)):
        conf = os.path.join(tmp, f"{node}.conf")
        with open(conf, "w") as f:
            f.write(ka_conf(node, prio))
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, "keepalived", "--dont-fork", "--vrrp", "-f", conf,
             "-p", os.path.join(tmp, f"{node}.pid"), "-r", os.path.join(tmp, f"{node}-vrrp.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(6)
    watch_conf = os.path.join(tmp, "watch.toml")
    with open(watch_conf, "w") as f:
        f.write(f'node = "lb02"\nstate_dir = "{tmp}/state"\ncontrol_socket = "{tmp}/watch.sock"\n\n'
                '[[watch]]\nvip = "192.0.2.3"\ninterface = "eth0"\nrole = "backup"\n')
    watch = measure([os.path.abspath(args.splitguard), "watch", "-c", watch_conf])
    loop = measure(["bash", "-c", "while true; do ip a | grep 192.0.2.3; done"])
    print(f"window {args.window:.0f} s, keepalived pair, VIP on lb01, measured on lb02 (backup)")
    print(f"splitguard watch:         {watch:8.3f} % of one core")
    print(f"tutorial loop (ip a|grep): {loop:8.3f} % of one core")
    if watch > 0:
        print(f"loop / watch:             {loop / watch:8.0f} x")
finally:
    cleanup()
