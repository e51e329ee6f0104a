"""Sandbox logic that needs no root: names, addresses, mirrors."""

from __future__ import annotations

from pinned.sandbox import core


def host(name, last):
    return core.HostInfo(name=name, address=f"10.1.2.{10 + last}", roles=["web"], image="warm",
                         netns=f"p-{name}", veth=f"pv{last}")


def test_hosts_booted_together_get_distinct_addresses():
    hosts = [host("a", 1)]
    for name in ("b", "c", "d"):
        hosts.append(host(name, core._host_index(hosts, name)))
    assert [h.address for h in hosts] == ["10.1.2.11", "10.1.2.12", "10.1.2.13", "10.1.2.14"]
    assert core._host_index(hosts, "c") == 3  # a running host keeps its address
    assert core._host_index([host("a", 1), host("c", 3)], "new") == 2  # the lowest free one


def test_prefixes_give_distinct_subnets_and_short_interface_names(monkeypatch):
    monkeypatch.delenv("PINNED_SANDBOX_SUBNET", raising=False)
    subnets = {core.subnet_base(p) for p in ("pinned", "ptest", "ci", "pbench", "pzdt")}
    assert len(subnets) == 5
    assert all(s.startswith("10.") for s in subnets)
    longest = "abcdefghij"
    assert len(f"{longest}br") <= 15 and len(f"{longest}v99") <= 15


def test_mirror_comes_from_the_environment_override(monkeypatch):
    monkeypatch.setenv("PINNED_SANDBOX_MIRROR", "http://mirror.invalid/debian/")
    monkeypatch.setenv("PINNED_SANDBOX_SECURITY_MIRROR", "http://mirror.invalid/debian-security")
    assert core.mirrors() == ("http://mirror.invalid/debian", "http://mirror.invalid/debian-security")
