"""The shared folders' backup scripts (operations/remote/backup_shared.sh, restore_shared.sh), run here on real
files in a tmp folder as the host runs them (sh -c of the command pinned sends): an archive is complete or
absent, a restore writes back what the archive has and keeps what is newer, and an archive that would write
outside the folders is refused before anything is written."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

from pinned.operations.backups import backup_shared_command, restore_shared_command
from pinned.state.layout import Layout


def run(command) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60)


def folders(tmp_path: Path) -> tuple[Path, Path]:
    root, backups = tmp_path / "shared", tmp_path / "backups"
    (root / "media" / "uploads").mkdir(parents=True)
    (root / "media" / "uploads" / "a.jpg").write_bytes(b"A" * 100)
    (root / "exports").mkdir()
    (root / "exports" / "x.csv").write_text("1,2\n")
    return root, backups


def test_a_backup_is_one_complete_archive_of_the_folders_named_by_its_id(tmp_path):
    root, backups = folders(tmp_path)
    out = run(backup_shared_command(str(backups), str(root), ["media", "exports", "not-made-yet"]))
    assert out.returncode == 0, out.stderr
    backup_id, size = out.stdout.split()
    assert Layout("shop").is_shared_backup(backup_id) and re.fullmatch(r"\d{8}T\d{6}Z-shared\.tar\.gz", backup_id)
    archive = backups / backup_id
    assert archive.stat().st_size == int(size) and (archive.stat().st_mode & 0o777) == 0o600
    assert (backups.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in backups.iterdir()) == [backup_id]  # no partial file left
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "media/uploads/a.jpg" in names and "exports/x.csv" in names and not any("not-made" in n for n in names)


def test_a_restore_puts_back_what_was_lost_and_keeps_what_is_newer(tmp_path):
    root, backups = folders(tmp_path)
    backup_id = run(backup_shared_command(str(backups), str(root), ["media", "exports"])).stdout.split()[0]
    (root / "media" / "uploads" / "a.jpg").unlink()
    (root / "exports" / "x.csv").write_text("changed\n")
    (root / "media" / "uploads" / "new.jpg").write_bytes(b"N")
    out = run(restore_shared_command(str(backups / backup_id), str(root)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "restored 2 files"
    assert (root / "media" / "uploads" / "a.jpg").read_bytes() == b"A" * 100
    assert (root / "exports" / "x.csv").read_text() == "1,2\n"
    assert (root / "media" / "uploads" / "new.jpg").read_bytes() == b"N"


def evil_archive(path: Path, member: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))


def test_an_archive_with_a_path_outside_the_folders_is_refused_and_nothing_is_written(tmp_path):
    root, backups = folders(tmp_path)
    backups.mkdir()
    for number, member in enumerate(["../escaped", "media/../../escaped", "/tmp/escaped-abs"]):
        archive = backups / f"2026010{number}T000000Z-shared.tar.gz"
        evil_archive(archive, member)
        out = run(restore_shared_command(str(archive), str(root)))
        assert out.returncode == 1 and "outside the shared folders: nothing was changed" in out.stderr, out.stderr
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/escaped-abs").exists()


def test_a_partial_archive_is_refused(tmp_path):
    root, backups = folders(tmp_path)
    backup_id = run(backup_shared_command(str(backups), str(root), ["media"])).stdout.split()[0]
    data = (backups / backup_id).read_bytes()
    (backups / backup_id).write_bytes(data[: len(data) // 2])
    (root / "media" / "uploads" / "a.jpg").unlink()
    out = run(restore_shared_command(str(backups / backup_id), str(root)))
    assert out.returncode == 1 and "not a complete gzip file: nothing was changed" in out.stderr
    assert not (root / "media" / "uploads" / "a.jpg").exists()
