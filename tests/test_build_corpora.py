"""tools/build_corpora.py: the King James Bible from Debian's bible-kjv, the kernel's C source from a
linux-source tarball (a small fake one here), sizes and sha256 printed, a missing package named."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import tarfile
from pathlib import Path

from system import binary

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_corpora", ROOT / "tools" / "build_corpora.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def _summary(out: str, name: str) -> tuple[int, int, str]:
    m = re.search(rf"^{name}\.txt\s+([\d,]+) chars\s+([\d,]+) bytes\s+sha256 ([0-9a-f]{{64}})", out, re.M)
    assert m, out
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), m.group(3)


def test_the_bible_is_every_verse_at_a_fixed_width(tmp_path, capsys, monkeypatch):
    binary("bible")                              # Debian's bible-kjv (with bible-kjv-text)
    monkeypatch.setenv("COLUMNS", "37")          # the terminal's width must not matter
    assert build.main(["--out", str(tmp_path / "a"), "--only", "kjv"]) == 0
    monkeypatch.setenv("COLUMNS", "200")
    assert build.main(["--out", str(tmp_path / "b"), "--only", "kjv"]) == 0
    out = capsys.readouterr().out
    text = (tmp_path / "a" / "kjv.txt").read_text(encoding="utf-8")
    assert (tmp_path / "b" / "kjv.txt").read_text(encoding="utf-8") == text
    assert text.startswith("\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n")
    assert text.rstrip().endswith("21 The grace of our Lord Jesus Christ be with you all. Amen.")
    assert len(re.findall(r"^\S.* \d+$", text, re.M)) == 1189                  # every chapter's heading
    assert max(len(line) for line in text.splitlines()) <= build.BIBLE_COLUMNS
    assert 4_000_000 < len(text) < 4_600_000
    data = text.encode("utf-8")
    assert _summary(out, "kjv") == (len(text), len(data), hashlib.sha256(data).hexdigest())


def _tarball(path: Path, top: str, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:xz") as tar:
        for rel, body in files.items():
            raw = body.encode("utf-8")
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def test_linux_takes_the_listed_folders_c_and_h_files_in_sorted_order(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    files = {"mm/slub.c": "int slub;\n", "kernel/sched/core.c": "void schedule(void) {}\n",
             "mm/internal.h": "#define MM 1\n", "mm/Makefile": "obj-y += x.o\n", "mm/damon/core.c": "nested\n",
             "kernel/fork.c": "not listed\n", "kernel/sched/sched.h": "struct rq;\n", "mm/vmscan.c": "long scanned;\n"}
    _tarball(src / "linux-source-6.10.tar.xz", "linux-source-6.10", files)
    _tarball(src / "linux-source-6.9.tar.xz", "linux-source-6.9", {"mm/old.c": "old\n"})   # older: ignored
    assert build.main(["--out", str(tmp_path / "out"), "--only", "linux", "--src-dir", str(src)]) == 0
    text = (tmp_path / "out" / "linux.txt").read_text(encoding="utf-8")
    order = ["kernel/sched/core.c", "kernel/sched/sched.h", "mm/internal.h", "mm/slub.c", "mm/vmscan.c"]
    assert text == "\n".join(files[k] for k in order)
    out = capsys.readouterr().out
    assert _summary(out, "linux") == (len(text), len(text.encode()), hashlib.sha256(text.encode()).hexdigest())
    assert "5 files of linux-source-6.10.tar.xz" in out


def test_a_missing_package_is_one_line_naming_apt_get(tmp_path, capsys, monkeypatch):
    assert build.main(["--out", str(tmp_path), "--only", "linux", "--src-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install linux-source" in err[0]
    assert build.main(["--out", str(tmp_path), "--only", "kjv", "--bible", str(tmp_path / "no-bible")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install bible-kjv" in err[0]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert build.main(["--out", str(tmp_path), "--only", "kjv"]) == 2
    assert "apt-get install bible-kjv" in capsys.readouterr().err


def test_shakespeare_is_the_embedded_corpus(tmp_path, capsys):
    assert build.main(["--out", str(tmp_path), "--only", "shakespeare"]) == 0
    from charnn.data import default_corpus_path

    assert (tmp_path / "shakespeare.txt").read_bytes() == default_corpus_path().read_bytes()
    assert _summary(capsys.readouterr().out, "shakespeare")[0] == 1_115_394


def test_the_debian_version_of_a_package_is_read_from_dpkg(monkeypatch):
    binary("dpkg-query")
    assert re.fullmatch(r"[0-9][0-9A-Za-z.+~:-]*", build.debian_version("dpkg") or "")
    assert build.debian_version("no-such-package-charnn") is None
    monkeypatch.setenv("PATH", "")                    # no dpkg-query at all: no version, no error
    assert build.debian_version("dpkg") is None
