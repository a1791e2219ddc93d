"""A site behind NAT, made of network namespaces: the public side (control plane, gateway,
clients), the site's router (masquerading, dropping every connection from outside) and a node on
the site's LAN. All traffic stays inside the namespaces made here; they are removed on exit.

    public 10.231.0.1 --- 10.231.0.2 router 192.168.231.1 --- 192.168.231.2 node
                                     MASQUERADE out, FORWARD in only for replies

The public side has a route to the LAN through the router, so an attempt to reach the node from
outside does reach the router, which drops it: what a site's NAT and firewall do.
"""

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

PUBLIC_IP = "10.231.0.1"
ROUTER_WAN_IP = "10.231.0.2"
ROUTER_LAN_IP = "192.168.231.1"
NODE_IP = "192.168.231.2"


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


class NatSite:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.public, self.router, self.node = (f"hg{tag}{n}" for n in ("pub", "rtr", "node"))

    def __enter__(self) -> Self:
        for ns in (self.public, self.router, self.node):
            sh("ip", "netns", "add", ns)
            self.run(ns, "ip", "link", "set", "lo", "up")
        self._link(self.public, "wan0", self.router, "wan1")
        self._link(self.router, "lan1", self.node, "lan0")
        self.run(self.public, "ip", "addr", "add", f"{PUBLIC_IP}/24", "dev", "wan0")
        self.run(self.router, "ip", "addr", "add", f"{ROUTER_WAN_IP}/24", "dev", "wan1")
        self.run(self.router, "ip", "addr", "add", f"{ROUTER_LAN_IP}/24", "dev", "lan1")
        self.run(self.node, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "lan0")
        self.run(self.node, "ip", "route", "add", "default", "via", ROUTER_LAN_IP)
        self.run(self.public, "ip", "route", "add", "192.168.231.0/24", "via", ROUTER_WAN_IP)
        self.run(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ipt = ("iptables", "-w")
        self.run(
            self.router, *ipt, "-t", "nat", "-A", "POSTROUTING", "-o", "wan1", "-j", "MASQUERADE"
        )
        self.run(self.router, *ipt, "-P", "FORWARD", "DROP")
        self.run(self.router, *ipt, "-A", "FORWARD", "-i", "lan1", "-o", "wan1", "-j", "ACCEPT")
        self.run(
            self.router, *ipt, "-A", "FORWARD", "-i", "wan1", "-o", "lan1",
            "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT",
        )  # fmt: skip
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for ns in (self.node, self.router, self.public):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def _link(self, a: str, a_name: str, b: str, b_name: str) -> None:
        sh("ip", "link", "add", a_name, "netns", a, "type", "veth", "peer", b_name, "netns", b)
        self.run(a, "ip", "link", "set", a_name, "up")
        self.run(b, "ip", "link", "set", b_name, "up")

    def run(self, ns: str, *args: str) -> str:
        return sh("ip", "netns", "exec", ns, *args)

    def popen(
        self, ns: str, args: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> "subprocess.Popen[bytes]":
        """A process in `ns` (`ip netns exec` execs it: the pid is the process's own)."""
        with log.open("ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", ns, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1", **(env or {})},
            )

    def listening(self, ns: str) -> list[str]:
        """The local addresses (host:port) that TCP sockets in `ns` listen on."""
        out = self.run(ns, "ss", "-ltnH")
        return [line.split()[3] for line in out.splitlines() if line.strip()]
