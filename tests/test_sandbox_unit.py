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
    # the demo's, the tests' two xdist workers', CI's and the bench's prefixes all run on one machine at once
    prefixes = ("pinned", "ptest", "ptest0", "ptest1", "ci", "pbench", "pzdt")
    subnets = {core.subnet_base(p) for p in prefixes}
    assert len(subnets) == len(prefixes)
    assert all(s.startswith("10.") for s in subnets)
    longest = "abcdefghij"
    assert len(f"{longest}br") <= 15 and len(f"{longest}v99") <= 15


def test_mirror_comes_from_the_environment_override(monkeypatch):
    monkeypatch.setenv("PINNED_SANDBOX_MIRROR", "http://mirror.invalid/debian/")
    monkeypatch.setenv("PINNED_SANDBOX_SECURITY_MIRROR", "http://mirror.invalid/debian-security")
    assert core.mirrors() == ("http://mirror.invalid/debian", "http://mirror.invalid/debian-security")


def test_each_suite_takes_the_mirror_apt_lists_for_it_else_the_machines_own(monkeypatch):
    monkeypatch.delenv("PINNED_SANDBOX_MIRROR", raising=False)
    monkeypatch.delenv("PINNED_SANDBOX_SECURITY_MIRROR", raising=False)
    sources = [("http://sec.invalid/debian-security", ["bookworm-security"]),
               ("http://main.invalid/debian/", ["bookworm", "bookworm-updates"])]
    monkeypatch.setattr(core, "apt_sources", lambda: sources)
    # A Debian 12 machine lists bookworm only: trixie comes from the same mirror.
    assert core.mirrors("bookworm") == ("http://main.invalid/debian", "http://sec.invalid/debian-security")
    assert core.mirrors("trixie") == ("http://main.invalid/debian", "http://sec.invalid/debian-security")
    sources.append(("http://other.invalid/debian", ["trixie"]))
    assert core.mirrors("trixie")[0] == "http://other.invalid/debian"
    sources[:] = [("http://sec.invalid/debian-security", ["bookworm-security"])]
    try:
        core.mirrors("trixie")
    except core.SandboxError as exc:
        assert "PINNED_SANDBOX_MIRROR" in str(exc)
    else:
        raise AssertionError("a security mirror alone is no Debian mirror")


def test_images_and_sources_are_per_suite(monkeypatch, tmp_path):
    monkeypatch.setenv("PINNED_SANDBOX_CACHE", str(tmp_path))
    assert core.base_image("trixie") == tmp_path / "base-trixie"
    assert core.warm_layer("bookworm") == tmp_path / "warm-bookworm"
    assert core.DEFAULT_SUITE in core.SUITES and set(core.SUITES) == {"bookworm", "trixie"}
    try:
        core.base_image("sid")
    except core.SandboxError as exc:
        assert "bookworm, trixie" in str(exc)
    else:
        raise AssertionError("an unknown suite was accepted")
    text = core.apt_sources_file("trixie", "http://m.invalid/debian", "http://m.invalid/debian-security")
    stanzas = [dict(line.split(": ", 1) for line in block.splitlines()) for block in text.strip().split("\n\n")]
    assert [s["Suites"] for s in stanzas] == ["trixie trixie-updates", "trixie-security"]
    assert [s["URIs"] for s in stanzas] == ["http://m.invalid/debian", "http://m.invalid/debian-security"]


def test_hosts_json_records_each_hosts_suite(monkeypatch, tmp_path):
    monkeypatch.setenv("PINNED_SANDBOX_STATE", str(tmp_path))
    (tmp_path / "p1").mkdir()
    sb = core.Sandbox(prefix="p1", subnet="10.1.2.0/24", bridge="p1br", ssh_key="k",
                      hosts=[host("a", 1), core.HostInfo(name="b", address="10.1.2.12", roles=["web"], image="base",
                                                         netns="p-b", veth="pv2", suite="trixie")])
    sb.save()
    loaded = core.Sandbox.load("p1")
    assert [h.suite for h in loaded.hosts] == ["bookworm", "trixie"]
    # A hosts.json written before suites were a choice: its hosts ran Debian 12.
    data = (tmp_path / "p1" / "hosts.json").read_text().replace('"suite": "trixie"', '"suite": "bookworm"')
    (tmp_path / "p1" / "hosts.json").write_text(data.replace(',\n      "suite": "bookworm"', ""))
    assert "suite" not in (tmp_path / "p1" / "hosts.json").read_text()
    assert [h.suite for h in core.Sandbox.load("p1").hosts] == ["bookworm", "bookworm"]
