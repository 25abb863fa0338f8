"""Build the three benchmark corpora, reproducibly, from what any Debian machine can install.

    shakespeare.txt   Tiny Shakespeare: the corpus embedded in charnn (1,115,394 characters)
    kjv.txt           the King James Bible, as the `bible` program of Debian's bible-kjv prints it
                      (its text is the package bible-kjv-text, stored compressed): every verse from
                      Genesis 1:1 to Revelation 22:21 at a fixed line width of 80 columns
    linux.txt         C source of the Linux kernel from Debian's linux-source: every .c and .h file
                      directly inside the folders LINUX_FOLDERS of /usr/src/linux-source-*.tar.xz
                      (the newest version there), in sorted path order, joined by a newline

    python tools/build_corpora.py                        all three into corpora/
    python tools/build_corpora.py --out DIR --only kjv   one of them
    apt-get install bible-kjv linux-source               what the last two need

Each corpus is printed with its size in characters and bytes and its sha256 (of the UTF-8 file), so
two machines can check they train on the same text; linux.txt also with the version of the Debian
package it came from, since each point release of the kernel changes the text a little. A missing
package is a one-line error naming the apt-get command, exit status 2.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

NAMES = ("shakespeare", "kjv", "linux")
BIBLE_RANGE = "Gen1:1-Rev22:21"
BIBLE_COLUMNS = 80
LINUX_FOLDERS = ("kernel/sched", "mm")          # their .c and .h files (not those of subfolders): a few MB
LINUX_SUFFIXES = (".c", ".h")
LINUX_GLOB = "linux-source-*.tar.xz"


class BuildError(Exception):
    """A corpus cannot be built here (a package is missing): one line, exit status 2."""


def shakespeare() -> str:
    from charnn.data import default_corpus_path

    return default_corpus_path().read_text(encoding="utf-8")


def kjv(program: str | None = None) -> str:
    """The King James Bible as `bible -l80 Gen1:1-Rev22:21` prints it (the width fixed, not $COLUMNS)."""
    exe = program or shutil.which("bible")
    if exe is None:
        raise BuildError("the King James Bible needs the `bible` program and its text: apt-get install bible-kjv "
                         "(it brings bible-kjv-text)")
    try:
        out = subprocess.run([exe, f"-l{BIBLE_COLUMNS}", BIBLE_RANGE], capture_output=True, check=False,
                             env={"PATH": "/usr/bin:/bin", "COLUMNS": str(BIBLE_COLUMNS), "LC_ALL": "C"})
    except OSError as exc:
        raise BuildError(f"cannot run {exe}: {exc.strerror or exc}: apt-get install bible-kjv") from None
    text = out.stdout.decode("utf-8")
    if out.returncode != 0 or "In the beginning God created" not in text:
        raise BuildError(f"`{exe}` did not print the Bible (exit {out.returncode}): reinstall it with "
                         f"apt-get install --reinstall bible-kjv bible-kjv-text")
    return text


def _version(path: Path) -> tuple[int, ...]:
    m = re.match(r"linux-source-([\d.]+)\.tar\.xz$", path.name)
    return tuple(int(x) for x in m.group(1).split(".") if x) if m else ()


def linux_tarball(src_dir: Path = Path("/usr/src")) -> Path:
    """The newest /usr/src/linux-source-*.tar.xz."""
    found = sorted(src_dir.glob(LINUX_GLOB), key=lambda p: (_version(p), p.name))
    if not found:
        raise BuildError(f"no {src_dir / LINUX_GLOB}: apt-get install linux-source")
    return found[-1]


def debian_version(package: str) -> str | None:
    """The installed version of a Debian package, or None where dpkg cannot say. The linux corpus
    changes with the package's point release (6.1.176 and 6.1.192 differ), so it is printed with it."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = proc.stdout.strip() if proc.returncode == 0 else ""
    return version or None


def linux_member(name: str) -> str | None:
    """The path inside the source tree of a tarball member that belongs to the corpus, else None."""
    parts = name.removeprefix("./").split("/", 1)  # drop the top folder, linux-source-X.Y/
    if len(parts) != 2:
        return None
    rel = parts[1]
    folder, _, base = rel.rpartition("/")
    return rel if folder in LINUX_FOLDERS and base.endswith(LINUX_SUFFIXES) else None


def linux(tarball: Path) -> tuple[str, list[str]]:
    """(the corpus, the files it joins) from a linux-source tarball, read as a stream."""
    files: dict[str, str] = {}
    with tarfile.open(tarball, "r|xz") as tar:
        for member in tar:
            rel = linux_member(member.name) if member.isfile() else None
            if rel is None:
                continue
            raw = tar.extractfile(member).read()
            files[rel] = raw.decode("utf-8", errors="replace")   # a stray Latin-1 byte becomes U+FFFD
    if not files:
        raise BuildError(f"{tarball} holds no .c/.h files in {', '.join(LINUX_FOLDERS)}: is it a linux-source tarball?")
    order = sorted(files)
    return "\n".join(files[k] for k in order), order


def write(out: Path, name: str, text: str) -> str:
    """Write OUT/NAME.txt (UTF-8) and return its line of the summary: name, characters, bytes, sha256."""
    data = text.encode("utf-8")
    (out / f"{name}.txt").write_bytes(data)
    return f"{name + '.txt':<16} {len(text):>10,} chars {len(data):>10,} bytes  sha256 {hashlib.sha256(data).hexdigest()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "corpora", help="folder to write the corpora into [corpora/]")
    ap.add_argument("--only", default=",".join(NAMES), help=f"comma-separated subset of {', '.join(NAMES)}")
    ap.add_argument("--src-dir", type=Path, default=Path("/usr/src"), help="where linux-source-*.tar.xz is [/usr/src]")
    ap.add_argument("--bible", default=None, help="the `bible` program [found on PATH]")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    try:
        unknown = [n for n in names if n not in NAMES]
        if unknown:
            raise BuildError(f"unknown corpus {unknown[0]!r}: choose from {', '.join(NAMES)}")
        args.out.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name == "shakespeare":
                print(write(args.out, name, shakespeare()), flush=True)
            elif name == "kjv":
                print(write(args.out, name, kjv(args.bible)), flush=True)
            else:
                tarball = linux_tarball(args.src_dir)
                text, files = linux(tarball)
                package = tarball.name.removesuffix(".tar.xz")
                version = debian_version(package)
                source = f"{tarball.name}, Debian's {package} {version}" if version else tarball.name
                print(write(args.out, name, text) + f"  ({len(files)} files of {source})", flush=True)
    except (BuildError, OSError, tarfile.TarError) as exc:
        print(f"build_corpora: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
