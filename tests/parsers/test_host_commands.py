"""commands: the host-side redaction filter (run locally against a fake `wg`), batch/split_batch."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mesh_tasks.host import commands as c
from mesh_tasks.host.commands import BatchError, HostCommand, Section, batch, split_batch
from mesh_tasks.host.parsers import (
    ParseError,
    parse_bfd_peers,
    parse_ospf_neighbors,
    parse_route_get,
    parse_routes,
    parse_wg_dump,
)

FIX = Path(__file__).parent / "fixtures"
needs_sh = pytest.mark.skipif(not (shutil.which("sh") and shutil.which("awk")), reason="needs sh and awk")

PRIV = base64.b64encode(b"\x11" * 32).decode()
PSK = base64.b64encode(b"\x22" * 32).decode()
PUB = base64.b64encode(b"\x33" * 32).decode()
PEER = base64.b64encode(b"\x44" * 32).decode()
RAW_DUMP = (
    f"wg0\t{PRIV}\t{PUB}\t51820\toff\n"
    f"wg0\t{PEER}\t{PSK}\t198.18.200.2:51820\t10.0.0.0/8\t1795619256\t10\t20\t25\n"
    f"wg1\t(none)\t(none)\t0\toff\n"
    f"wg1\t{PUB}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
)


def fake_wg(tmp_path: Path, stdout: str, rc: int = 0) -> dict[str, str]:
    (tmp_path / "out").write_text(stdout)
    script = tmp_path / "wg"
    script.write_text(f"#!/bin/sh\ncat '{tmp_path / 'out'}'\nexit {rc}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}


def run(shell: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", shell], capture_output=True, text=True, env=env, check=False)


@needs_sh
def test_wg_dump_filter_redacts_on_the_host(tmp_path: Path) -> None:
    done = run(c.WG_DUMP.shell, fake_wg(tmp_path, RAW_DUMP))
    assert done.returncode == 0
    for secret in (PRIV, PSK):
        assert secret not in done.stdout
    dump = parse_wg_dump(done.stdout)
    assert [(i.name, i.has_private_key) for i in dump.interfaces] == [("wg0", True), ("wg1", False)]
    assert [p.has_preshared_key for p in dump.peers] == [True, False]
    assert dump.interfaces[0].public_key == PUB


@needs_sh
def test_wg_dump_filter_keeps_wg_exit_status(tmp_path: Path) -> None:
    done = run(c.WG_DUMP.shell, fake_wg(tmp_path, "", rc=1))
    assert done.returncode == 1


@needs_sh
def test_wg_dump_filter_masks_unknown_lines(tmp_path: Path) -> None:
    done = run(c.WG_DUMP.shell, fake_wg(tmp_path, f"wg0\t{PRIV}\tsomething\n"))
    assert PRIV not in done.stdout
    with pytest.raises(ParseError, match="host-side filter"):
        parse_wg_dump(done.stdout)


def test_fixed_commands_are_what_the_lab_ran() -> None:
    assert c.OSPF_NEIGHBORS.shell == "vtysh -c 'show ip ospf neighbor json'"
    assert c.BFD_PEERS.shell == "vtysh -c 'show bfd peers json'"
    assert c.IP_ROUTES.shell == "vtysh -c 'show ip route json'"
    assert c.route_get("10.2.0.1") == HostCommand("route_get:10.2.0.1", "ip -j route get 10.2.0.1")
    assert c.route_get("fd00::0001").shell == "ip -j route get fd00::1"
    assert c.wg_allowed_ips("wg-b").shell == "wg show wg-b allowed-ips"


@pytest.mark.parametrize("bad", ["10.0.0.1; reboot", "host.example", "10.0.0.0/8", ""])
def test_route_get_takes_only_an_address(bad: str) -> None:
    with pytest.raises(ValueError):
        c.route_get(bad)


@pytest.mark.parametrize("bad", ["wg0; reboot", "a-name-too-long-x", "", "wg 0", "$(id)"])
def test_wg_allowed_ips_takes_only_an_interface_name(bad: str) -> None:
    with pytest.raises(ValueError):
        c.wg_allowed_ips(bad)


def test_command_validation() -> None:
    with pytest.raises(ValueError):
        HostCommand("two\nlines", "true")
    with pytest.raises(ValueError):
        HostCommand("x", "echo a\necho b")
    with pytest.raises(ValueError):
        batch([HostCommand("x", "true"), HostCommand("x", "false")])
    with pytest.raises(ValueError):
        batch([])
    with pytest.raises(ValueError):
        batch([HostCommand("x", "true")], token="no-dashes")
    with pytest.raises(ValueError):
        c.frr_reload_test("/etc/frr/frr.conf; reboot")


# ------------------------------------------------------------------ split_batch on real netmiko output


def test_split_netmiko_verify_batch() -> None:
    out = (FIX / "netmiko/batch_verify.txt").read_text()
    assert out.startswith("printf")  # the command echo netmiko leaves (wrapped, not stripped)
    sections = split_batch(out, expected=c.VERIFY_COMMANDS)
    assert {k: v.rc for k, v in sections.items()} == {
        "wg_dump": 0,
        "ospf_neighbors": 0,
        "bfd_peers": 0,
        "ip_routes": 0,
    }
    assert parse_wg_dump(sections["wg_dump"].text).interfaces[0].name == "wg-b"
    assert parse_ospf_neighbors(sections["ospf_neighbors"].text)[0].full
    assert parse_bfd_peers(sections["bfd_peers"].text)[0].up
    assert parse_routes(sections["ip_routes"].text)


def test_split_netmiko_where_batch() -> None:
    sections = split_batch((FIX / "netmiko/batch_where.txt").read_text())
    assert sections["route_get:10.98.0.1"] == Section(2, "RTNETLINK answers: Invalid argument\n")
    assert parse_route_get(sections["route_get:10.98.0.1"].text).error == "Invalid argument"
    assert parse_route_get(sections["route_get:10.2.0.1"].text).device == "wg-b"
    assert sections["wg_allowed_ips:wg-nope"].rc == 1


# ------------------------------------------------------------------ batch -> sh -> split, byte exact

CASES = [
    HostCommand("no_newline", "printf 'a\\nb'"),
    HostCommand("newline", "printf 'a\\nb\\n'"),
    HostCommand("empty", "true"),
    HostCommand("blank_lines", "printf '\\n\\n'"),
    HostCommand("fails", "echo oops >&2; exit 3"),
    HostCommand("pipe", "printf 'x\\n' | cat"),
    HostCommand("reads_stdin", "cat"),
]


@needs_sh
def test_batch_runs_in_sh_and_splits_exactly() -> None:
    done = run(batch(CASES))
    sections = split_batch("prompt$ noise\n" + done.stdout + "prompt$ ", expected=CASES)
    assert sections == {
        "no_newline": Section(0, "a\nb"),
        "newline": Section(0, "a\nb\n"),
        "empty": Section(0, ""),
        "blank_lines": Section(0, "\n\n"),
        "fails": Section(3, "oops\n"),
        "pipe": Section(0, "x\n"),
        "reads_stdin": Section(0, ""),  # stdin is /dev/null, so nothing hangs
    }


@needs_sh
def test_terminal_noise_is_ignored() -> None:
    done = run(batch(CASES))
    # what a PTY does to it: CRLF, bracketed-paste escapes around the output, echo and prompt
    noisy = (
        "\x1b[?2004l\r" + batch(CASES)[:70] + "\r\n" + done.stdout.replace("\n", "\r\n") + "\x1b[?2004hroot@mtp-a:~# "
    )
    assert split_batch(noisy, expected=CASES) == split_batch(done.stdout)


def test_missing_and_truncated_sections() -> None:
    good = "\n@@mtq7-begin a\nx\n@@mtq7-end a rc=0\n"
    assert split_batch(good, expected=["a"]) == {"a": Section(0, "x")}
    with pytest.raises(BatchError, match="no output for b"):
        split_batch(good, expected=["a", "b"])
    with pytest.raises(BatchError, match="truncated"):
        split_batch("\n@@mtq7-begin a\nx\n")
    with pytest.raises(BatchError, match="no end marker before"):
        split_batch("@@mtq7-begin a\n@@mtq7-begin b\n@@mtq7-end b rc=0\n")
    with pytest.raises(BatchError, match="closed by"):
        split_batch("@@mtq7-begin a\n@@mtq7-end b rc=0\n")
    with pytest.raises(BatchError, match="twice"):
        split_batch(good + good)
    assert split_batch(good, token="other") == {}


def test_markers_are_not_in_the_command_echo() -> None:
    line = batch([HostCommand("wg_dump", "true")])
    assert "@@mtq7-begin" not in line and "@@mtq7-end" not in line


safe_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\x1b"), max_size=200)


@given(st.lists(st.tuples(safe_text, st.integers(0, 255)), min_size=1, max_size=5))
def test_split_recovers_any_output(results: list[tuple[str, int]]) -> None:
    for text, _ in results:
        assume(all("@@mtq7-" not in line for line in text.split("\n")))
    simulated = "".join(
        f"\n@@mtq7-begin c{i}\n{text}\n@@mtq7-end c{i} rc={rc}\n" for i, (text, rc) in enumerate(results)
    )
    assert split_batch(simulated) == {f"c{i}": Section(rc, t) for i, (t, rc) in enumerate(results)}
